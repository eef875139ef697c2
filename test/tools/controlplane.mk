# Makefile fragment: the test control plane (etcd, kube-apiserver, kube-controller-manager) and
# the developer tools (controller-gen, gotestsum), all built from pinned Go modules into
# $(LOCALBIN). Included by the root Makefile; every target is a real file, so make only builds
# what is missing. Delete a binary (or $(LOCALBIN)) to force a rebuild, e.g. after bumping a
# version in one of the test/tools/*/go.mod files.
#
# The e2e harness (test/e2e/framework) finds the binaries in $KUBEBUILDER_ASSETS if set,
# otherwise in <repo>/bin; export KUBEBUILDER_ASSETS=$(LOCALBIN) when LOCALBIN is overridden.

LOCALBIN ?= $(CURDIR)/bin

# Directory of this fragment (test/tools), whatever the directory make was started in.
TEST_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

KUBE_APISERVER          ?= $(LOCALBIN)/kube-apiserver
KUBE_CONTROLLER_MANAGER ?= $(LOCALBIN)/kube-controller-manager
ETCD                    ?= $(LOCALBIN)/etcd
CONTROLLER_GEN          ?= $(LOCALBIN)/controller-gen
GOTESTSUM               ?= $(LOCALBIN)/gotestsum

# The Kubernetes version is the one pinned in test/tools/controlplane/go.mod (e.g. v1.37.2);
# it is stamped into the binaries so that /version reports it (otherwise v0.0.0-master).
KUBE_VERSION = $(shell awk '$$1 == "k8s.io/kubernetes" && $$2 ~ /^v/ { print $$2; exit }' $(TEST_TOOLS_DIR)/controlplane/go.mod)
KUBE_VERSION_MAJOR = $(patsubst v%,%,$(word 1,$(subst ., ,$(KUBE_VERSION))))
KUBE_VERSION_MINOR = $(word 2,$(subst ., ,$(KUBE_VERSION)))
KUBE_LDFLAGS = $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=$(KUBE_VERSION) \
	-X $(pkg).gitMajor=$(KUBE_VERSION_MAJOR) \
	-X $(pkg).gitMinor=$(KUBE_VERSION_MINOR) \
	-X $(pkg).gitTreeState=clean)

##@ Test control plane

.PHONY: controlplane
controlplane: $(ETCD) $(KUBE_APISERVER) $(KUBE_CONTROLLER_MANAGER) ## Build etcd, kube-apiserver and kube-controller-manager from source into LOCALBIN (./bin); skips those present.

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen (pinned in test/tools/dev/go.mod) into LOCALBIN (./bin).

.PHONY: gotestsum
gotestsum: $(GOTESTSUM) ## Build gotestsum (pinned in test/tools/dev/go.mod) into LOCALBIN (./bin).

$(LOCALBIN):
	mkdir -p $@

$(KUBE_APISERVER): | $(LOCALBIN)
	@echo "building kube-apiserver $(KUBE_VERSION) from source (about 8 minutes cold)..."
	cd $(TEST_TOOLS_DIR)/controlplane && go build -o $@ -ldflags "$(strip $(KUBE_LDFLAGS))" k8s.io/kubernetes/cmd/kube-apiserver

$(KUBE_CONTROLLER_MANAGER): | $(LOCALBIN)
	@echo "building kube-controller-manager $(KUBE_VERSION) from source (about 4 minutes once kube-apiserver is built, longer cold)..."
	cd $(TEST_TOOLS_DIR)/controlplane && go build -o $@ -ldflags "$(strip $(KUBE_LDFLAGS))" k8s.io/kubernetes/cmd/kube-controller-manager

$(ETCD): | $(LOCALBIN)
	@echo "building etcd $$(awk '$$1 == "go.etcd.io/etcd/server/v3" && $$2 ~ /^v/ { print $$2; exit }' $(TEST_TOOLS_DIR)/etcd/go.mod) from source (1 to 2 minutes cold)..."
	cd $(TEST_TOOLS_DIR)/etcd && go build -o $@ go.etcd.io/etcd/server/v3

$(CONTROLLER_GEN): | $(LOCALBIN)
	@echo "building controller-gen from source..."
	cd $(TEST_TOOLS_DIR)/dev && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(GOTESTSUM): | $(LOCALBIN)
	@echo "building gotestsum from source..."
	cd $(TEST_TOOLS_DIR)/dev && go build -o $@ gotest.tools/gotestsum
