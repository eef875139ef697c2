# Makefile fragment: the GitOps front doors' real tools, Helm 4 (its post-renderer plugin) and
# kustomize (the KRM function). Included by the root Makefile (after packaging.mk).
#
# helm4 is Helm 4 (helm.sh/helm/v4, pinned in test/tools/helm4/go.mod), built into
# $(LOCALBIN)/helm4 beside Helm 3's $(LOCALBIN)/helm: Helm 4 takes post-renderers only as
# plugins, and the tests install config/helm-plugin with it. kustomize
# (sigs.k8s.io/kustomize/kustomize/v5, pinned in test/tools/kustomize/go.mod) is built into
# $(LOCALBIN)/kustomize: the tests run `kustomize build --enable-alpha-plugins --enable-exec`
# with the guard as an exec KRM function. Both are real files, rebuilt when their go.mod or
# go.sum change. Cold build times are in docs/benchmarks.md.

LOCALBIN ?= $(CURDIR)/bin

# test/tools, whatever the directory make was started in.
GITOPS_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

HELM4     ?= $(LOCALBIN)/helm4
KUSTOMIZE ?= $(LOCALBIN)/kustomize

HELM4_VERSION     = $(shell awk '$$1 == "helm.sh/helm/v4" && $$2 ~ /^v/ { print $$2; exit }' $(GITOPS_TOOLS_DIR)/helm4/go.mod)
KUSTOMIZE_VERSION = $(shell awk '$$1 == "sigs.k8s.io/kustomize/kustomize/v5" && $$2 ~ /^v/ { print $$2; exit }' $(GITOPS_TOOLS_DIR)/kustomize/go.mod)

##@ GitOps front doors

.PHONY: helm4
helm4: $(HELM4) ## Build Helm 4 (pinned in test/tools/helm4/go.mod) into LOCALBIN/helm4 (./bin).

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize (pinned in test/tools/kustomize/go.mod) into LOCALBIN (./bin).

$(HELM4): $(GITOPS_TOOLS_DIR)/helm4/go.mod $(GITOPS_TOOLS_DIR)/helm4/go.sum
	@echo "building helm $(HELM4_VERSION) from source (3 to 5 minutes cold; docs/benchmarks.md)..."
	@mkdir -p $(dir $@)
	cd $(GITOPS_TOOLS_DIR)/helm4 && CGO_ENABLED=0 go build -trimpath -o $@ -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM4_VERSION)" helm.sh/helm/v4/cmd/helm

$(KUSTOMIZE): $(GITOPS_TOOLS_DIR)/kustomize/go.mod $(GITOPS_TOOLS_DIR)/kustomize/go.sum
	@echo "building kustomize $(KUSTOMIZE_VERSION) from source (about 1 minute cold)..."
	@mkdir -p $(dir $@)
	cd $(GITOPS_TOOLS_DIR)/kustomize && CGO_ENABLED=0 go build -trimpath -o $@ -ldflags "-s -w -X sigs.k8s.io/kustomize/api/provenance.version=$(KUSTOMIZE_VERSION)" sigs.k8s.io/kustomize/kustomize/v5
