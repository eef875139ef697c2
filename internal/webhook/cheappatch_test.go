package webhook

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

// FuzzCheapPatch compares the patch the handler answers with (patch.Template and friends:
// from the change the mutation made) with the one it answered with before (patch.Diff of the
// whole objects before and after): for any object, both are refused or allowed alike, and
// both patches, applied to the raw request object (with the fields the Go types do not know),
// give the same object; the handler patches its own output no further. The seeds are the
// captured requests (kubectl apply: managedFields, last-applied-configuration) and objects
// with unknown fields at every level the mutation writes. `make fuzz` fuzzes it.
func FuzzCheapPatch(f *testing.F) {
	all, err := captures.All()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range all {
		r, err := c.Review()
		if err != nil {
			f.Fatal(err)
		}
		if c.Name == captures.ManyEnvStatefulSet {
			continue // large: the fuzzer would spend its time copying it
		}
		f.Add(kindIndex(r.Request.Kind)+128, r.Request.Namespace, r.Request.Object.Raw) // the captured cluster's lookup
	}
	unknown := strings.NewReplacer(`"name": "manager",`, `"name": "manager", "futureContainer": {"a": 1},`,
		`"protocol": "TCP"}`, `"protocol": "TCP", "futurePort": true}`,
		`"readOnly": true}`, `"readOnly": true, "futureMount": "x"}`,
		`"configMap": {"name": "elastic-operator"}}`, `"configMap": {"name": "elastic-operator"}, "futureVolume": 1}`,
		`"metadata": {"labels"`, `"metadata": {"futureMeta": "x", "labels"`)
	f.Add(byte(0), "elastic-system", []byte(unknown.Replace(statefulSetJSON)))
	f.Add(byte(0), "elastic-system", []byte(strings.Replace(statefulSetJSON, "eck-operator", `eck\u002doperator`, 1))) // escaped: decoded to be sure
	f.Add(byte(2), "elastic-system", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"elastic-operator","namespace":"elastic-system","labels":{"a/b":"c"},"future":1},"data":{"eck.yaml":"# mine\nlog-verbosity: 0\nmetrics-port: 0\nmetrics-secure: false\n"},"futureTop":{"x":[1]}}`))
	f.Add(byte(3), "elastic-system", []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"elastic-operator-metrics-guard","namespace":"elastic-system"},"spec":{"selector":{"control-plane":"elastic-operator"},"ports":[{"name":"https","port":8081,"targetPort":"metrics","futurePort":1}]}}`))
	kinds := []metav1.GroupVersionKind{statefulSets, deployments, configMaps, services}
	lookup, err := captures.Lookup()
	if err != nil {
		f.Fatal(err)
	}
	own := optedIn()
	own.workloads = []cluster.Workload{workloadFromJSON(&testing.T{}, statefulSetJSON)}
	f.Fuzz(func(t *testing.T, kind byte, namespace string, raw []byte) {
		gvk := kinds[int(kind)%len(kinds)]
		// The prefilter never hides an operator: whatever decodes as one passes it.
		if gvk == statefulSets || gvk == deployments {
			if full, ok := newObject(gvk).(workloadObject); ok && json.Unmarshal(raw, full) == nil {
				if _, _, isOp := eck.FromObject(full); isOp && !mayBeOperator(raw) {
					t.Fatalf("mayBeOperator is false for an ECK operator: %s", raw)
				}
			}
		}
		var l cluster.Lookup = lookup
		if namespace != "eck-secured" && namespace != "apps" {
			namespace, l = "elastic-system", own
			if kind >= 128 {
				l = lookup // the captured cluster's elastic-system
			}
		}
		req := request(gvk, namespace, string(raw))
		cheap := (&Handler{Lookup: l}).Handle(context.Background(), req)
		full := (&Handler{Lookup: l, fullDiff: true}).Handle(context.Background(), req)
		if cheap.Allowed != full.Allowed || !reflect.DeepEqual(cheap.Warnings, full.Warnings) || (len(cheap.Patches) == 0) != (len(full.Patches) == 0) {
			t.Fatalf("the answers differ\ncheap %+v\nfull  %+v", cheap, full)
		}
		if len(cheap.Patches) == 0 {
			return
		}
		got, errCheap := applyTo(raw, cheap)
		want, errFull := applyTo(raw, full)
		if (errCheap == nil) != (errFull == nil) {
			t.Fatalf("applied to the raw object: cheap patch %v, full diff's %v\ncheap %v\nfull  %v", errCheap, errFull, cheap.Patches, full.Patches)
		}
		if errCheap != nil {
			return
		}
		if !sameJSON(got, want) {
			t.Fatalf("the patches give different objects\ncheap %s\nfull  %s\nops cheap %v\nops full  %v", got, want, cheap.Patches, full.Patches)
		}
		again := (&Handler{Lookup: l}).Handle(context.Background(), request(gvk, namespace, string(got)))
		if len(again.Patches) > 0 {
			if typed := newObject(gvk); json.Unmarshal(got, typed) == nil {
				t.Fatalf("not idempotent: %v\n%s", again.Patches, got)
			}
		}
	})
}

func kindIndex(gvk metav1.GroupVersionKind) byte {
	switch gvk {
	case deployments:
		return 1
	case configMaps:
		return 2
	case services:
		return 3
	}
	return 0
}

func applyTo(raw []byte, resp admission.Response) ([]byte, error) {
	ops, err := json.Marshal(resp.Patches)
	if err != nil {
		return nil, err
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		return nil, err
	}
	return p.Apply(raw)
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}
