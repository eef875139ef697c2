# Makefile fragment: the real ECK install manifests the tests take as input. Included by the
# root Makefile (after packaging.mk, which builds the pinned helm).
#
# Elastic's Helm chart for the operator ships inside ECK's Go modules (deploy/eck-operator).
# Each directory test/tools/eckcharts/<version> pins one ECK release in its go.mod and go.sum;
# `make eck-manifests` downloads those modules (a few MB each, no build) and renders their chart
# with the pinned helm (test/tools/eckcharts/render.sh: the all-in-one install as ECK's release
# renders it, the chart's default install, and its own secure mode) into ECK_MANIFESTS,
# ./bin/eck-manifests: git-ignored, like the binaries; nothing of ECK's is committed. The tests
# find it there, or in $ECK_MANIFESTS (exported, so set it when LOCALBIN is overridden). It is
# rendered again when a go.mod or go.sum, the script or helm changes.

LOCALBIN ?= $(CURDIR)/bin

# test/tools/eckcharts, whatever the directory make was started in.
ECK_CHARTS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))/eckcharts

export ECK_MANIFESTS ?= $(LOCALBIN)/eck-manifests
# Every pinned version: the directories of test/tools/eckcharts that hold a go.mod.
ECK_CHART_VERSIONS = $(sort $(patsubst $(ECK_CHARTS_DIR)/%/go.mod,%,$(wildcard $(ECK_CHARTS_DIR)/*/go.mod)))

##@ Test ECK manifests

.PHONY: eck-manifests
eck-manifests: $(ECK_MANIFESTS)/.rendered ## Render ECK's own chart, for every version pinned in test/tools/eckcharts, into ECK_MANIFESTS (./bin/eck-manifests).

$(ECK_MANIFESTS)/.rendered: $(ECK_CHARTS_DIR)/render.sh $(foreach v,$(ECK_CHART_VERSIONS),$(ECK_CHARTS_DIR)/$(v)/go.mod $(ECK_CHARTS_DIR)/$(v)/go.sum) $(HELM)
	@echo "rendering ECK's Helm chart $(ECK_CHART_VERSIONS) into $(ECK_MANIFESTS)..."
	$(ECK_CHARTS_DIR)/render.sh $(HELM) $(ECK_MANIFESTS) $(ECK_CHART_VERSIONS)
	@touch $@
