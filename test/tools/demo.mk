# Makefile fragment: `make demo`, a newcomer's one-command look at eck-metrics-guard
# (test/demo/main.go). Included by the root Makefile. It starts a real control plane
# (etcd, kube-apiserver, kube-controller-manager from LOCALBIN), cert-manager's controllers and
# the guard, installs config/samples/eck-operator.yaml, opts its namespace in, waits (60s at
# most) until the controller has secured it, prints what changed, and stops everything. It exits
# non-zero if the end state is not reached, so CI can run it. The first run builds the binaries
# (about 10 minutes on 2 cores); later runs take well under a minute.
#
#   make demo            # show, then stop
#   make demo KEEP=1     # leave it running for kubectl until Ctrl-C
#   make demo VERBOSE=1  # also the guard's own logs, on standard error

# The repository root, whatever the directory make was started in.
DEMO_ROOT := $(abspath $(dir $(abspath $(lastword $(MAKEFILE_LIST))))/../..)

##@ Demo

.PHONY: demo
demo: controlplane cert-manager ## Secure a sample ECK operator on a real local control plane and show what changed (KEEP=1: keep it running; VERBOSE=1: guard logs).
	cd $(DEMO_ROOT) && go run ./test/demo $(if $(KEEP),--keep) $(if $(VERBOSE),--verbose)
