# eck-metrics-guard: `make help` lists the targets.

LOCALBIN ?= $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Build flags shared by `make build` and the Dockerfile: a static, reproducible binary.
GO_BUILD_FLAGS = -trimpath -ldflags "-s -w -X github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app.Version=$(VERSION)"

export KUBEBUILDER_ASSETS ?= $(LOCALBIN)

# The pinned tools and the test control plane; included first, so that the rules below can
# name their binaries as prerequisites. Their help sections come last.
include test/tools/controlplane.mk
include test/tools/certmanager.mk
include test/tools/eck.mk
include test/tools/prometheus.mk
include test/tools/packaging.mk
include test/tools/eckcharts.mk
include test/tools/gitops.mk
include test/tools/demo.mk
include test/tools/vuln.mk

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9\/.-]+:.*?##/ { printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w cmd internal test

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: ## Fail if gofmt would change a file or go vet finds a problem.
	@test -z "$$(gofmt -l cmd internal test)" || { echo "gofmt would change:"; gofmt -l cmd internal test; exit 1; }
	go vet ./...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the API's deepcopy code, the CRDs in config/crd and the RBAC role in config/rbac from the kubebuilder markers, and copy them into the chart.
	$(CONTROLLER_GEN) object paths=./internal/api/...
	$(CONTROLLER_GEN) crd paths=./internal/api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=eck-metrics-guard paths=./internal/... output:rbac:artifacts:config=config/rbac
	$(MAKE) --no-print-directory chart-sync

.PHONY: verify-manifests
verify-manifests: manifests ## Fail if the generated files differ from what is committed.
	@test -z "$$(git status --porcelain -- config/ charts/ internal/api/)" || { git status --short -- config/ charts/ internal/api/; git diff -- config/ charts/ internal/api/; echo "generated files are out of date: run make manifests and commit"; exit 1; }

# Every test event of the last `make test` (go test -json), which the summary is made from.
TEST_JSON ?= $(CURDIR)/testbin/test.json
# Packages whose tests may never skip: the end-to-end suites (and their framework).
GO_MODULE = $(shell go list -m)
NO_SKIPS  = $(GO_MODULE)/test/

# The pinned binaries make test needs, built once into ./bin. The longest build first, so that
# `make -j2 test-tools` (what .ci/run does on a cold machine) starts it at once.
TEST_TOOLS = prometheus controlplane cert-manager eck-operator prometheus-operator helm helm4 kustomize gotestsum

.PHONY: test-tools
test-tools: $(TEST_TOOLS) ## Build every pinned binary make test needs into ./bin (make -j2 test-tools builds two at a time).

.PHONY: test
test: test-tools eck-manifests lint verify-manifests verify-chart vulncheck ## Run every test: unit, golden and the end-to-end suites against a real kube-apiserver, and govulncheck; ends with a summary per package, and fails if an end-to-end test skipped.
	@mkdir -p $(dir $(TEST_JSON))
	@status=0; $(GOTESTSUM) --format pkgname --jsonfile $(TEST_JSON) -- -count=1 ./... || status=$$?; \
	go run ./test/tools/testsummary -no-skips $(NO_SKIPS) -trim $(GO_MODULE)/ $(TEST_JSON) || status=1; \
	exit $$status

.PHONY: test-unit
test-unit: eck-manifests ## Run the tests that need no control plane (with the rendered ECK manifests).
	go test ./internal/... ./cmd/...

.PHONY: golden
golden: eck-manifests ## Rewrite the golden files from the current output (review the diff!).
	UPDATE_GOLDEN=1 go test ./internal/render/...

.PHONY: fuzz
fuzz: ## Fuzz the eck.yaml editor, the admission handler (and its patch against the full diff's), the patch, inject and the policy decision, FUZZTIME each (default 60s); make test runs their seeds.
	go test -run='^$$' -fuzz=FuzzApply -fuzztime=$(or $(FUZZTIME),60s) ./internal/eckconfig/
	go test -run='^$$' -fuzz=FuzzHandle -fuzztime=$(or $(FUZZTIME),60s) ./internal/webhook/
	go test -run='^$$' -fuzz=FuzzCheapPatch -fuzztime=$(or $(FUZZTIME),60s) ./internal/webhook/
	go test -run='^$$' -fuzz=FuzzTemplate -fuzztime=$(or $(FUZZTIME),60s) ./internal/patch/
	go test -run='^$$' -fuzz=FuzzInject -fuzztime=$(or $(FUZZTIME),60s) ./internal/render/
	go test -run='^$$' -fuzz=FuzzDecide -fuzztime=$(or $(FUZZTIME),60s) ./internal/policy/

.PHONY: bench
bench: ## Run the benchmarks: every Go benchmark, then the load tool against the guard and a null webhook (docs/benchmarks.md).
	go test -run='^$$' -bench=. -benchmem ./internal/...
	go run ./test/load
	go run ./test/load -overload

.PHONY: bench-quick
bench-quick: ## A short benchmark run (CI): the stages of the hot path once each, and the load tool's quick mode.
	go test -run='^$$' -bench='Stages|ServeHTTP' -benchtime=50x ./internal/webhook/
	go run ./test/load -quick

.PHONY: bench-apiserver
bench-apiserver: controlplane ## Creates through the real kube-apiserver: unrelated objects with the guard registered and not, then ECK StatefulSets with no mutation, an in-tree MutatingAdmissionPolicy, a null webhook and the guard (about 2 minutes; docs/benchmarks.md).
	go run ./test/load -apiserver 200 -rounds 3
	go run ./test/load -eck-apiserver 300 -rounds 3

.PHONY: bench-scale
bench-scale: controlplane eck-manifests ## Measure the guard's binary at cluster scale: time to ready, VmHWM and heap with 0, 1/10 and 10k namespaces / 50k ConfigMaps / 2k StatefulSets / 2k Services, then retrofits (about 10 minutes; SCALE_LEVELS, SCALE_OPTIN, GUARD_ARGS).
	go test -tags scale -count=1 -timeout 40m -v -run TestMemoryAtScale ./test/scale/

##@ Build

.PHONY: build
build: ## Build bin/eck-metrics-guard (static).
	CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o $(LOCALBIN)/eck-metrics-guard ./cmd/eck-metrics-guard

.PHONY: run
run: ## Run the webhook server against $KUBECONFIG (certificates in WEBHOOK_CERT_DIR).
	go run ./cmd/eck-metrics-guard webhook --webhook-cert-dir=$(or $(WEBHOOK_CERT_DIR),/tmp/k8s-webhook-server/serving-certs) --zap-devel
