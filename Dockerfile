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

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/eck-metrics-guard /eck-metrics-guard
USER 65532:65532
ENTRYPOINT ["/eck-metrics-guard"]
CMD ["webhook"]
