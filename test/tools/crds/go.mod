// Module crds pins the modules whose CustomResourceDefinitions the end-to-end tests install:
// the Prometheus Operator's (for ServiceMonitors). Nothing here is built; the framework finds
// the CRD files with `go mod download -json`.
module github.com/eck-metrics-guard/eck-metrics-guard/test/tools/crds

go 1.26

require github.com/prometheus-operator/prometheus-operator v0.85.0
