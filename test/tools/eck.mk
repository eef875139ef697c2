# Makefile fragment: the real ECK operator for the end-to-end tests. Included by the root Makefile.
#
# eck-operator is Elastic's own operator binary (cmd of github.com/elastic/cloud-on-k8s/v3),
# built from the release pinned in test/tools/eck/go.mod; the tests start it with
# framework.StartECK. Its CRDs are read from the Go module cache (ECK_CRDS), nothing is copied
# into the repository. The binary is a real file, rebuilt when go.mod or go.sum change (a
# version bump).

LOCALBIN ?= $(CURDIR)/bin

# test/tools/eck, whatever the directory make was started in.
ECK_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))/eck

ECK_OPERATOR ?= $(LOCALBIN)/eck-operator
ECK_VERSION = $(shell awk '$$1 == "github.com/elastic/cloud-on-k8s/v3" && $$2 ~ /^v/ { print $$2; exit }' $(ECK_TOOLS_DIR)/go.mod)
# The CRDs shipped in the ECK module (downloaded into the module cache if needed).
ECK_CRDS = $(shell cd $(ECK_TOOLS_DIR) && go mod download github.com/elastic/cloud-on-k8s/v3 && go list -m -f '{{.Dir}}' github.com/elastic/cloud-on-k8s/v3)/config/crds/v1/all-crds.yaml

##@ Test ECK

.PHONY: eck-operator
eck-operator: $(ECK_OPERATOR) ## Build the real ECK operator (pinned in test/tools/eck/go.mod) into LOCALBIN (./bin).

.PHONY: eck-crds
eck-crds: ## Print the path of ECK's CRDs (in the Go module cache).
	@echo $(ECK_CRDS)

$(ECK_OPERATOR): $(addprefix $(ECK_TOOLS_DIR)/,go.mod go.sum)
	@echo "building eck-operator from ECK $(ECK_VERSION) (4 to 6 minutes cold, about 100 MB)..."
	@mkdir -p $(dir $@)
	cd $(ECK_TOOLS_DIR) && go build -o $@ github.com/elastic/cloud-on-k8s/v3/cmd
