# Makefile fragment: cert-manager for the end-to-end tests. Included by the root Makefile.
#
# cert-manager-controller is a small runner of cert-manager's own controllers (SelfSigned and
# CA issuers, and with --cainjector cert-manager's cainjector; see test/tools/certmanager/main.go),
# built from the cert-manager release pinned in test/tools/certmanager/go.mod; the tests start it
# with framework.StartCertManager. The CRDs of
# that same release are read from the Go module cache (CERT_MANAGER_CRDS), nothing is copied
# into the repository. The binary is a real file, rebuilt when its Go files, go.mod or go.sum change.

LOCALBIN ?= $(CURDIR)/bin

# test/tools/certmanager, whatever the directory make was started in.
CERT_MANAGER_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))/certmanager

CERT_MANAGER_CONTROLLER ?= $(LOCALBIN)/cert-manager-controller
CERT_MANAGER_VERSION = $(shell awk '$$1 == "github.com/cert-manager/cert-manager" && $$2 ~ /^v/ { print $$2; exit }' $(CERT_MANAGER_TOOLS_DIR)/go.mod)
# The CRDs shipped in the cert-manager module (downloaded into the module cache if needed).
CERT_MANAGER_CRDS = $(shell cd $(CERT_MANAGER_TOOLS_DIR) && go mod download github.com/cert-manager/cert-manager && go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager)/deploy/crds

##@ Test cert-manager

.PHONY: cert-manager
cert-manager: $(CERT_MANAGER_CONTROLLER) ## Build cert-manager-controller (cert-manager's own controllers and cainjector, pinned in test/tools/certmanager/go.mod) into LOCALBIN (./bin).

.PHONY: cert-manager-crds
cert-manager-crds: ## Print the directory of cert-manager's CRDs (in the Go module cache).
	@echo $(CERT_MANAGER_CRDS)

# Unlike the control-plane binaries, the runner is our own source: rebuild it when it changes.
$(CERT_MANAGER_CONTROLLER): $(wildcard $(CERT_MANAGER_TOOLS_DIR)/*.go) $(addprefix $(CERT_MANAGER_TOOLS_DIR)/,go.mod go.sum)
	@echo "building cert-manager-controller from cert-manager $(CERT_MANAGER_VERSION) (about 3 minutes cold)..."
	@mkdir -p $(dir $@)
	cd $(CERT_MANAGER_TOOLS_DIR) && go build -o $@ .
