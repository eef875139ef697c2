package framework

import (
	"strings"
	"testing"
)

// TestRewritePrometheusConfig: the Pod paths of a generated configuration are mapped under the
// root, and nothing else; in-cluster service discovery becomes kubeconfig_file; the
// config-reloader's $(VAR)s are substituted; what the test cannot stand in for is an error.
func TestRewritePrometheusConfig(t *testing.T) {
	generated := `global:
  external_labels:
    prometheus_replica: $(POD_NAME)
rule_files:
- /etc/prometheus/rules/prometheus-p-rulefiles-0/*.yaml
scrape_configs:
- job_name: serviceMonitor/ns/sm/0
  bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
  kubernetes_sd_configs:
  - role: endpointslice
  relabel_configs:
  - action: keep
    regex: $(SHARD)
    replacement: ${1}
  tls_config:
    ca_file: /etc/prometheus/certs/0_ns_s_ca.crt
    server_name: s.ns.svc
`
	out, mapped, err := rewritePrometheusConfig(generated, map[string]string{"POD_NAME": "prometheus-p-0", "SHARD": "0"}, "/root", "/root/kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"prometheus_replica: prometheus-p-0",
		"- /root/etc/prometheus/rules/prometheus-p-rulefiles-0/*.yaml",
		"bearer_token_file: /root/var/run/secrets/kubernetes.io/serviceaccount/token",
		"kubeconfig_file: /root/kubeconfig",
		"regex: 0", // substituted in the text, as the config-reloader does
		"replacement: ${1}",
		"ca_file: /root/etc/prometheus/certs/0_ns_s_ca.crt",
		"server_name: s.ns.svc",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if len(mapped) != 4 {
		t.Errorf("mapped %d, want 4 (rule_files, bearer_token_file, ca_file, kubeconfig_file): %q", len(mapped), mapped)
	}

	for name, in := range map[string]string{
		"an unmapped file":         "scrape_configs:\n- tls_config:\n    key_file: /opt/key.pem\n",
		"an api_server of its own": "scrape_configs:\n- kubernetes_sd_configs:\n  - api_server: https://k8s\n",
		"an unknown $(VAR)":        "global:\n  external_labels:\n    a: $(NODE_NAME)\n",
	} {
		if _, _, err := rewritePrometheusConfig(in, map[string]string{"SHARD": "0"}, "/root", "/root/kubeconfig"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
