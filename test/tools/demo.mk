# Makefile fragment: `make demo`, a newcomer's one-command look at eck-metrics-guard
# (test/demo/main.go). Included by the root Makefile. It starts a real control plane
# (etcd, kube-apiserver, kube-controller-manager from LOCALBIN), cert-manager's controllers and
# the guard, installs config/samples/eck-operator.yaml, opts its namespace in, waits (60s at
# most) until the controller has secured it, prints what changed; then runs Elastic's real
# operator binary before (plain HTTP to anyone) and after (401, 403, 200 over verified TLS),
# and, if `make prometheus prometheus-operator` has built them, the real Prometheus Operator
# and Prometheus, until Prometheus's target is up; and stops everything. It exits non-zero if
# a step fails, so CI can run it. The first run builds the binaries (about 20 minutes on 2
# cores; Prometheus, optional, about 20 more); later runs take under a minute.
#
#   make demo            # show, then stop
#   make demo KEEP=1     # leave it running for kubectl until Ctrl-C
#   make demo VERBOSE=1  # also the guard's own logs, on standard error

# The repository root, whatever the directory make was started in.
DEMO_ROOT := $(abspath $(dir $(abspath $(lastword $(MAKEFILE_LIST))))/../..)

##@ Demo

.PHONY: demo
demo: controlplane cert-manager eck-operator eck-manifests ## Secure a sample ECK operator on a real local control plane show what changed, and the real ECK operator before and after (with bin/prometheus: Prometheus's target up) (KEEP=1: keep it running; VERBOSE=1: guard logs).
	cd $(DEMO_ROOT) && go run ./test/demo $(if $(KEEP),--keep) $(if $(VERBOSE),--verbose)
