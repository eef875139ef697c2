package webhook

import (
	"context"
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
)

// FuzzHandle feeds the admission handler arbitrary bytes as objects of every kind it handles,
// in an opted-in namespace where an ECK operator exists. Whatever the bytes, it answers
// without panicking. For those that decode, as the API server encodes them: the answer is
// well formed; a patch only adds and sets, applies to the raw request and gives an object
// that decodes; and the handler, fed its own output, patches nothing more
// (mutate(mutate(x)) == mutate(x)). `go test` runs the seeds; `make fuzz` fuzzes.
func FuzzHandle(f *testing.F) {
	cm := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"elastic-operator","namespace":"elastic-system"},"data":{"eck.yaml":"log-verbosity: 0\nmetrics-port: 0\nmetrics-secure: false\n"}}`
	svc := `{"apiVersion":"v1","kind":"Service","metadata":{"name":"elastic-operator-metrics-guard","namespace":"elastic-system"},"spec":{"selector":{"control-plane":"elastic-operator"},"ports":[{"name":"https","port":8081,"targetPort":"metrics"}]}}`
	envFrom := `{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"x","namespace":"elastic-system"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"spec":{"containers":[{"name":"manager","image":"eck-operator:3.5.0","command":["/elastic-operator","manager","--metrics-secure","--"],"args":["--config=/conf/eck.yaml"],"env":[{"name":"METRICS_PORT","value":"$(P)"},{"name":"METRICS_SECURE","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}],"envFrom":[{"prefix":"METRICS_","configMapRef":{"name":"e"}}],"volumeMounts":[{"name":"conf","mountPath":"/conf/eck.yaml","subPath":"eck.yaml"}]}],"volumes":[{"name":"conf","projected":{"sources":[{"configMap":{"name":"elastic-operator"}}]}}]}}}}`
	for kind, seed := range map[byte]string{0: statefulSetJSON, 1: statefulSetJSON, 2: cm, 3: svc, 4: envFrom, 5: `{}`, 6: `[]`, 7: `{"spec":{"template":{"spec":{"containers":[{"image":"eck-operator"}]}}}}`} {
		f.Add(kind, []byte(seed))
	}
	kinds := []metav1.GroupVersionKind{statefulSets, deployments, configMaps, services}
	f.Fuzz(func(t *testing.T, kind byte, raw []byte) {
		gvk := kinds[int(kind)%len(kinds)]
		// Anything: the handler answers, and never panics.
		lookup := optedIn()
		lookup.workloads = []cluster.Workload{workloadFromJSON(t, statefulSetJSON)}
		_ = (&Handler{Lookup: lookup}).Handle(context.Background(), request(gvk, "elastic-system", string(raw)))
		// What the API server sends: its own encoding of the typed object (it decodes a
		// built-in kind, drops unknown fields and encodes it again before admission).
		typed := newObject(gvk)
		if json.Unmarshal(raw, typed) != nil {
			return
		}
		canonical, err := json.Marshal(typed)
		if err != nil {
			return
		}
		raw = canonical
		lookup.workloads = []cluster.Workload{workloadFromJSON(t, statefulSetJSON)} // ConfigMaps and Services meet an owner
		h := &Handler{Lookup: lookup}
		resp := h.Handle(context.Background(), request(gvk, "elastic-system", string(raw)))
		if !resp.Allowed {
			if resp.Result == nil || resp.Result.Message == "" {
				t.Fatalf("denied without a message: %+v", resp)
			}
			return
		}
		if len(resp.Patches) == 0 {
			return
		}
		for _, op := range resp.Patches {
			if op.Operation != "add" && op.Operation != "replace" {
				t.Fatalf("%s %s: the webhook only adds and sets", op.Operation, op.Path)
			}
		}
		ops, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatal(err)
		}
		p, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatalf("the patch does not decode: %v\n%s", err, ops)
		}
		patched, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("the patch does not apply to the raw request: %v\n%s\n%s", err, ops, raw)
		}
		if err := json.Unmarshal(patched, newObject(gvk)); err != nil {
			t.Fatalf("the patched object does not decode: %v\n%s", err, patched)
		}
		again := h.Handle(context.Background(), request(gvk, "elastic-system", string(patched)))
		if len(again.Patches) > 0 {
			t.Fatalf("not idempotent: the handler patches its own output again: %v\nfirst: %s\nthen: %s", again.Patches, ops, patched)
		}
	})
}

// newObject is an empty object of the kind.
func newObject(gvk metav1.GroupVersionKind) any {
	switch gvk {
	case statefulSets:
		return &appsv1.StatefulSet{}
	case deployments:
		return &appsv1.Deployment{}
	case configMaps:
		return &corev1.ConfigMap{}
	}
	return &corev1.Service{}
}
