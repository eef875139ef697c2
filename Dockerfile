# syntax=docker/dockerfile:1
# A static eck-metrics-guard on distroless, non-root. Built with the same flags as `make build`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app.Version=${VERSION}" \
    -o /out/eck-metrics-guard ./cmd/eck-metrics-guard

# The base is pinned by digest (tag@digest: the tag for readers, the digest for what is built).
# Renovate's docker manager and Dependabot's docker ecosystem bump the digest in place when the
# tag moves, once one of them is configured for this repository; never drop the digest, and
# check a new one with `crane digest gcr.io/distroless/static:nonroot`. Where this was pinned
# there was no registry access: the digest is the one Renovate pinned in kedacore/keda (commit
# ccde973, 2026-08-18), also used by other repositories, one noting it was checked against the
# registry on 2026-08-14.
FROM gcr.io/distroless/static:nonroot@sha256:f7f8f729987ad0fdf6b05eeeae94b26e6a0f613bdf46feea7fc40f7bd72953e6
COPY --from=build /out/eck-metrics-guard /eck-metrics-guard
USER 65532:65532
ENTRYPOINT ["/eck-metrics-guard"]
CMD ["webhook"]
