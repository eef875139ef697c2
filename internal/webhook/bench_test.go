package webhook

import (
	"context"
	"strings"
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// BenchmarkHandle measures the admission hot path: decode, decide, mutate, diff.
func BenchmarkHandle(b *testing.B) {
	lookup := optedIn()
	lookup.workloads = []cluster.Workload{workloadFromJSON(&testing.T{}, statefulSetJSON)}
	cm := `{"metadata":{"name":"elastic-operator","namespace":"elastic-system"},"data":{"eck.yaml":"log-verbosity: 0\nmetrics-port: 0\nmetrics-secure: false\ncontainer-registry: docker.elastic.co\nwebhook-port: 9443\noperator-namespace: elastic-system\n"}}`
	cases := map[string]struct {
		kind   string
		raw    string
		lookup *fakeLookup
	}{
		"StatefulSet secured":     {raw: statefulSetJSON, lookup: lookup},
		"StatefulSet not guarded": {raw: statefulSetJSON, lookup: &fakeLookup{}},
		"StatefulSet unrelated":   {raw: strings.Replace(statefulSetJSON, "eck-operator:3.5.0", "nginx:1.27", 1), lookup: lookup},
		"ConfigMap secured":       {kind: "cm", raw: cm, lookup: lookup},
		"StatefulSet secured by a Mutate policy": {raw: statefulSetJSON, lookup: &fakeLookup{
			coverage: map[string]*policy.Coverage{"elastic-system": {Policy: "platform", Mode: v1alpha1.ModeMutate}}}},
		"StatefulSet audited": {raw: statefulSetJSON, lookup: &fakeLookup{
			coverage: map[string]*policy.Coverage{"elastic-system": {Policy: "platform", Mode: v1alpha1.ModeAudit}}}},
	}
	for name, tc := range cases {
		b.Run(name, func(b *testing.B) {
			h := &Handler{Lookup: tc.lookup}
			req := request(statefulSets, "elastic-system", tc.raw)
			if tc.kind == "cm" {
				req = request(configMaps, "elastic-system", tc.raw)
			}
			b.ReportAllocs()
			for b.Loop() {
				if resp := h.Handle(context.Background(), req); !resp.Allowed {
					b.Fatal(resp.Result)
				}
			}
		})
	}
}
