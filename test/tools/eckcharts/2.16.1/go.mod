// Module 2.16.1 pins ECK 2.16.1, whose Helm chart (deploy/eck-operator) `make eck-manifests`
// renders into the test inputs (see test/tools/eckcharts.mk). Nothing here is built.
module github.com/eck-metrics-guard/eck-metrics-guard/test/tools/eckcharts/2.16.1

go 1.26

require github.com/elastic/cloud-on-k8s/v2 v2.16.1
