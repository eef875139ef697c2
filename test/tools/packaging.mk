# Makefile fragment: packaging, the Helm chart in charts/eck-metrics-guard and the kustomize
# overlays in config/. Included by the root Makefile (after controlplane.mk).
#
# Helm is built from the release pinned in test/tools/helm/go.mod into $(LOCALBIN)/helm, a real
# file rebuilt when go.mod or go.sum change. The chart never holds a hand-made copy of what
# config/ generates: `make chart-sync` copies the webhook configuration, the generated RBAC
# role, the self-managed certificate's hand-written Role and the CRDs (once there are any) into the chart, whose templates read them with
# .Files.Get; `make verify-chart` fails when the copies drift (CI), and so does the packaging
# test suite (go test ./test/e2e/packaging/).

LOCALBIN ?= $(CURDIR)/bin

# test/tools, and the repository root, whatever the directory make was started in.
PACKAGING_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PACKAGING_ROOT      := $(abspath $(PACKAGING_TOOLS_DIR)/../..)

HELM      ?= $(LOCALBIN)/helm
CHART_DIR ?= $(PACKAGING_ROOT)/charts/eck-metrics-guard
# Where `make chart-package` writes the chart archive.
CHART_DIST ?= $(PACKAGING_ROOT)/dist

# Helm's own release build stamps its version and the Kubernetes version it defaults to
# (.Capabilities.KubeVersion in `helm template`, deprecation checks in `helm lint`); do the same,
# from the versions pinned in test/tools/helm/go.mod.
HELM_VERSION   = $(shell awk '$$1 == "helm.sh/helm/v3" && $$2 ~ /^v/ { print $$2; exit }' $(PACKAGING_TOOLS_DIR)/helm/go.mod)
HELM_K8S_MINOR = $(word 2,$(subst ., ,$(shell awk '$$1 == "k8s.io/client-go" && $$2 ~ /^v/ { print $$2; exit }' $(PACKAGING_TOOLS_DIR)/helm/go.mod)))
HELM_LDFLAGS   = -s -w -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	$(foreach pkg,helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil,\
	-X $(pkg).k8sVersionMajor=1 -X $(pkg).k8sVersionMinor=$(HELM_K8S_MINOR))

# Files of config/ that the chart reads, as <source>=<copy in the chart>.
CHART_SYNCED = \
	$(PACKAGING_ROOT)/config/webhook/manifests.yaml=$(CHART_DIR)/files/webhook/manifests.yaml \
	$(PACKAGING_ROOT)/config/rbac/role.yaml=$(CHART_DIR)/files/rbac/role.yaml \
	$(PACKAGING_ROOT)/config/selfmanaged/role.yaml=$(CHART_DIR)/files/rbac/self_managed_role.yaml
# CRDs: every file of config/crd/bases becomes a file of the chart's crds/ (none yet).
CRD_BASES = $(PACKAGING_ROOT)/config/crd/bases

##@ Packaging

.PHONY: helm
helm: $(HELM) ## Build helm (pinned in test/tools/helm/go.mod) into LOCALBIN (./bin).

.PHONY: chart-sync
chart-sync: ## Copy the webhook configuration, the generated RBAC role and the CRDs from config/ into the chart (run after make manifests).
	@set -e; for pair in $(CHART_SYNCED); do \
		src=$${pair%%=*}; dst=$${pair#*=}; mkdir -p $$(dirname $$dst); \
		cmp -s $$src $$dst || { cp $$src $$dst; echo "chart-sync: $${dst#$(PACKAGING_ROOT)/}"; }; \
	done
	@set -e; rm -rf $(CHART_DIR)/crds; if [ -d $(CRD_BASES) ] && ls $(CRD_BASES)/*.yaml >/dev/null 2>&1; then \
		mkdir -p $(CHART_DIR)/crds && cp $(CRD_BASES)/*.yaml $(CHART_DIR)/crds/ && echo "chart-sync: crds/"; fi

.PHONY: verify-chart
verify-chart: $(HELM) ## Fail if the chart's copies of config/ files drift, or helm lint finds a problem.
	@set -e; status=0; for pair in $(CHART_SYNCED); do \
		src=$${pair%%=*}; dst=$${pair#*=}; \
		cmp -s $$src $$dst || { echo "$${dst#$(PACKAGING_ROOT)/} differs from $${src#$(PACKAGING_ROOT)/}"; status=1; }; \
	done; \
	if [ -d $(CRD_BASES) ] || [ -d $(CHART_DIR)/crds ]; then \
		diff -r $(CRD_BASES) $(CHART_DIR)/crds >/dev/null 2>&1 || { echo "$(CHART_DIR)/crds differs from config/crd/bases"; status=1; }; \
	fi; \
	[ $$status = 0 ] || { echo "the chart is out of date: run make chart-sync and commit"; exit 1; }
	$(HELM) lint --strict $(CHART_DIR)

.PHONY: chart-package
chart-package: $(HELM) verify-chart ## Package the chart into dist/.
	$(HELM) package $(CHART_DIR) --destination $(CHART_DIST)

$(HELM): $(PACKAGING_TOOLS_DIR)/helm/go.mod $(PACKAGING_TOOLS_DIR)/helm/go.sum
	@echo "building helm $(HELM_VERSION) from source (about 4 minutes cold)..."
	@mkdir -p $(dir $@)
	cd $(PACKAGING_TOOLS_DIR)/helm && CGO_ENABLED=0 go build -trimpath -o $@ -ldflags "$(strip $(HELM_LDFLAGS))" helm.sh/helm/v3/cmd/helm
