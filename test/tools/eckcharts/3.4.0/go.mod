// Module 3.4.0 pins ECK 3.4.0, whose Helm chart (deploy/eck-operator) `make eck-manifests`
// renders into the test inputs (see test/tools/eckcharts.mk). Nothing here is built.
module github.com/eck-metrics-guard/eck-metrics-guard/test/tools/eckcharts/3.4.0

go 1.26

require github.com/elastic/cloud-on-k8s/v3 v3.4.0
