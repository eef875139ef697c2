#!/usr/bin/env bash
# Renders Elastic's own ECK Helm chart (deploy/eck-operator in the Go module of each ECK version
# pinned in test/tools/eckcharts/<version>/go.mod) into the install manifests the tests take as
# input. Usage: render.sh <helm> <output dir> <version>...; `make eck-manifests` runs it.
#
# For each version V it writes, under the names of ../shared/fixtures/eck:
#   operator-V.yaml      the all-in-one install, rendered as ECK's release renders config/operator.yaml
#                        (its Makefile and hack/manifest-gen: profile-global.yaml, installCRDs=false,
#                        telemetry.distributionChannel=all-in-one, image.tag/repository,
#                        name/fullnameOverride=elastic-operator, global.manifestGen=true, which adds
#                        the Namespace and names the webhook objects as the release does, and a
#                        Kubernetes version above the chart's minimum). Unlike the released file it
#                        keeps Helm's helm.sh/chart and managed-by labels, and Helm's formatting.
#   helm-V-default.yaml  `helm template elastic-operator ... -n elastic-system --set installCRDs=false`,
#                        the chart's default install
#   helm-V-securemode-tls-servicemonitor.yaml  (2.16.0 and later, the versions with metrics-secure)
#                        the chart's own secure mode: metrics port 8081, secureMode with a TLS Secret,
#                        a ServiceMonitor that verifies it: already secured by the chart itself
# The output directory is replaced as a whole, only once every render succeeded.
set -euo pipefail

helm=$1 out=$2
shift 2
tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "${out%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Helm's own cache, config and data stay out of the user's home.
export HELM_CACHE_HOME=$tmp/.helm/cache HELM_CONFIG_HOME=$tmp/.helm/config HELM_DATA_HOME=$tmp/.helm/data

for v in "$@"; do
	module=github.com/elastic/cloud-on-k8s/v${v%%.*}
	# The pinned module, downloaded (and checked against go.sum) into the module cache if needed.
	dir=$(cd "$tools/$v" && go mod download "$module" && go list -m -f '{{.Dir}}' "$module")
	chart=$dir/deploy/eck-operator
	[ -f "$chart/Chart.yaml" ] || { echo "render.sh: no Helm chart at $chart" >&2; exit 1; }
	template() { "$helm" template elastic-operator "$chart" --namespace elastic-system "$@"; }

	template --values "$chart/profile-global.yaml" --kube-version 9.99.99 \
		--set installCRDs=false \
		--set telemetry.distributionChannel=all-in-one \
		--set image.tag="$v" \
		--set image.repository=docker.elastic.co/eck/eck-operator \
		--set nameOverride=elastic-operator \
		--set fullnameOverride=elastic-operator \
		--set global.manifestGen=true >"$tmp/operator-$v.yaml"
	template --set installCRDs=false >"$tmp/helm-$v-default.yaml"
	case $v in
	0.* | 1.* | 2.[0-9].* | 2.1[0-5].*) ;; # before metrics-secure: no secure mode to render
	*)
		template --set installCRDs=false \
			--set config.metrics.port=8081 \
			--set config.metrics.secureMode.enabled=true \
			--set config.metrics.secureMode.tls.certificateSecret=eck-metrics-tls-certificate \
			--set serviceMonitor.enabled=true \
			--set serviceMonitor.insecureSkipVerify=false \
			--set serviceMonitor.caSecret=eck-metrics-tls-ca >"$tmp/helm-$v-securemode-tls-servicemonitor.yaml"
		;;
	esac
done
rm -rf "$tmp/.helm"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
ls "$out"
