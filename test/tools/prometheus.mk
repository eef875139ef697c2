# Makefile fragment: the real Prometheus Operator and the real Prometheus, for the scrape
# end-to-end suite (test/e2e/scrape). Included by the root Makefile.
#
# prometheus-operator is cmd/operator of github.com/prometheus-operator/prometheus-operator,
# pinned in test/tools/promoperator/go.mod; prometheus is cmd/prometheus of
# github.com/prometheus/prometheus, pinned in test/tools/prometheus/go.mod. They are two modules
# on purpose: in one, Go's version selection lifts the operator's Prometheus dependency to the
# Prometheus release and the operator's prom-label-proxy dependency stops compiling. The
# Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, Prometheus) come from the module
# pinned in test/tools/crds, the same version as the operator (the scrape suite checks that they
# agree). Both binaries are real files, rebuilt when their go.mod or go.sum change.

LOCALBIN ?= $(CURDIR)/bin

# test/tools, whatever the directory make was started in.
PROM_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

PROMETHEUS          ?= $(LOCALBIN)/prometheus
PROMETHEUS_OPERATOR ?= $(LOCALBIN)/prometheus-operator
PROMETHEUS_VERSION          = $(shell awk '$$1 == "github.com/prometheus/prometheus" && $$2 ~ /^v/ { print $$2; exit }' $(PROM_TOOLS_DIR)/prometheus/go.mod)
PROMETHEUS_OPERATOR_VERSION = $(shell awk '$$1 == "github.com/prometheus-operator/prometheus-operator" && $$2 ~ /^v/ { print $$2; exit }' $(PROM_TOOLS_DIR)/promoperator/go.mod)

##@ Test Prometheus

.PHONY: prometheus
prometheus: $(PROMETHEUS) ## Build the real Prometheus (pinned in test/tools/prometheus/go.mod) into LOCALBIN (./bin).

.PHONY: prometheus-operator
prometheus-operator: $(PROMETHEUS_OPERATOR) ## Build the real Prometheus Operator (pinned in test/tools/promoperator/go.mod) into LOCALBIN (./bin).

$(PROMETHEUS): $(addprefix $(PROM_TOOLS_DIR)/prometheus/,go.mod go.sum)
	@echo "building prometheus $(PROMETHEUS_VERSION) from source (about 20 minutes cold, about 150 MB)..."
	@mkdir -p $(dir $@)
	cd $(PROM_TOOLS_DIR)/prometheus && go build -o $@ github.com/prometheus/prometheus/cmd/prometheus

$(PROMETHEUS_OPERATOR): $(addprefix $(PROM_TOOLS_DIR)/promoperator/,go.mod go.sum)
	@echo "building prometheus-operator $(PROMETHEUS_OPERATOR_VERSION) from source (about 5 minutes cold, about 90 MB)..."
	@mkdir -p $(dir $@)
	cd $(PROM_TOOLS_DIR)/promoperator && go build -o $@ github.com/prometheus-operator/prometheus-operator/cmd/operator
