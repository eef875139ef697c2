package eckconfig

import (
	"errors"
	"strings"
	"testing"
)

// secureChanges are the changes the webhook makes to a guarded operator's eck.yaml.
var secureChanges = []Change{
	{Key: "metrics-port", Value: "8081"},
	{Key: "metrics-host", Value: "0.0.0.0", IfAbsent: true},
	{Key: "metrics-secure", Value: "true"},
}

// eck350 is the eck.yaml of ECK 3.5.0's all-in-one operator.yaml.
const eck350 = `log-verbosity: 0
metrics-port: 0
metrics-secure: false
container-registry: docker.elastic.co
max-concurrent-reconciles: 3
ca-cert-validity: 8760h
ca-cert-rotate-before: 24h
cert-validity: 8760h
cert-rotate-before: 24h
disable-config-watch: false
exposed-node-labels: [topology.kubernetes.io/.*,failure-domain.beta.kubernetes.io/.*]
set-default-security-context: auto-detect
kube-client-timeout: 60s
elasticsearch-client-timeout: 180s
disable-telemetry: false
distribution-channel: all-in-one
validate-storage-class: true
enable-webhook: true
webhook-name: elastic-webhook.k8s.elastic.co
webhook-port: 9443
operator-namespace: elastic-system
enable-leader-election: true
elasticsearch-observation-interval: 10s
ubi-only: false
restrict-watched-resources: false`

var fuzzSeeds = []string{
	eck350,
	"log-verbosity: 0\nmetrics-port: 0\ncontainer-registry: docker.elastic.co\nexposed-node-labels: [topology.kubernetes.io/.*,failure-domain.beta.kubernetes.io/.*]\nubi-only: false",
	"log-verbosity: 0\nmetrics-port: 8081\nmetrics-secure: true\nwebhook-port: 9443\n",
	"# managed by hand\nmetrics-port: \"0\" # default\n\nmetrics-host: 127.0.0.1\n",
	"{log-verbosity: 0, metrics-port: 0}",
	"log-verbosity: 0\r\nmetrics-secure: 'false'\r\n",
	"a:\n  metrics-port: 1\nmetrics-secure:\n  - x\nb: |+\n  x\n\n",
	"metrics-port: &p 0\nwebhook-port: *p\n",
	"",
	"- a\n",
}

func FuzzApply(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		_, parseErr := Parse(text)
		out, changed, err := Apply(text, secureChanges...)
		switch {
		case parseErr != nil && err == nil:
			t.Fatalf("Apply accepted what Parse refused (%v):\n%q", parseErr, text)
		case parseErr != nil || errors.Is(err, errAliased):
			return
		case err != nil:
			t.Fatalf("Apply failed on a parsable document: %v\n%q", err, text)
		case changed != (out != text):
			t.Fatalf("changed = %v, but the text did%s change", changed, map[bool]string{true: " not"}[changed])
		}
		cfg, err := Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\nin:  %q\nout: %q", err, text, out)
		}
		for _, c := range secureChanges {
			n := 0
			for _, k := range cfg.Keys() {
				if strings.EqualFold(k, c.Key) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%s appears %d times\nin:  %q\nout: %q", c.Key, n, text, out)
			}
		}
		if port, _, err := cfg.Int("metrics-port"); port != 8081 || err != nil {
			t.Fatalf("metrics-port = %d, %v\nin:  %q\nout: %q", port, err, text, out)
		}
		if secure, _, err := cfg.Bool("metrics-secure"); !secure || err != nil {
			t.Fatalf("metrics-secure = %v, %v\nin:  %q\nout: %q", secure, err, text, out)
		}
		again, changed, err := Apply(out, secureChanges...)
		if err != nil || changed || again != out {
			t.Fatalf("not idempotent (changed=%v, err=%v)\nin:    %q\nout:   %q\nagain: %q", changed, err, text, out, again)
		}
	})
}

func BenchmarkApply(b *testing.B) {
	secured, _, err := Apply(eck350, secureChanges...)
	if err != nil {
		b.Fatal(err)
	}
	for name, in := range map[string]string{"released": eck350, "secured": secured} {
		b.Run(name, func(b *testing.B) { // a file seen before: the memo's answer
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Apply(in, secureChanges...); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/uncached", func(b *testing.B) { // the edit itself
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := apply(in, secureChanges); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
