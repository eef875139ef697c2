package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// fakeLookup serves the handlers' reads from memory; the real cache is exercised by the
// end-to-end tests.
type fakeLookup struct {
	namespaces map[string]map[string]string
	configMaps map[string]*corev1.ConfigMap
	workloads  []cluster.Workload
	coverage   map[string]*policy.Coverage
}

func (f *fakeLookup) Namespace(_ context.Context, ns string) (cluster.Namespace, error) {
	return cluster.Namespace{Annotations: f.namespaces[ns], Coverage: f.coverage[ns]}, nil
}

func (f *fakeLookup) ConfigMap(_ context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return f.configMaps[ns+"/"+name], nil
}

func (f *fakeLookup) Operators(_ context.Context, ns string) ([]cluster.Workload, error) {
	var out []cluster.Workload
	for _, w := range f.workloads {
		if w.Operator.Namespace == ns {
			out = append(out, w)
		}
	}
	return out, nil
}

const statefulSetJSON = `{
  "apiVersion": "apps/v1", "kind": "StatefulSet",
  "metadata": {"name": "elastic-operator", "namespace": "elastic-system", "annotations": {"metrics-guard.eck.dev/tls-secret": "metrics-tls"}},
  "spec": {
    "selector": {"matchLabels": {"control-plane": "elastic-operator"}},
    "serviceName": "elastic-operator",
    "futureField": {"kept": true},
    "template": {
      "metadata": {"labels": {"control-plane": "elastic-operator"}},
      "spec": {
        "containers": [{
          "name": "manager", "image": "docker.elastic.co/eck/eck-operator:3.5.0",
          "args": ["manager", "--config=/conf/eck.yaml"],
          "ports": [{"containerPort": 9443, "name": "https-webhook", "protocol": "TCP"}],
          "volumeMounts": [{"mountPath": "/conf", "name": "conf", "readOnly": true}]
        }],
        "volumes": [{"name": "conf", "configMap": {"name": "elastic-operator"}}]
      }
    }
  }
}`

func request(kind metav1.GroupVersionKind, namespace, raw string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: kind, Namespace: namespace, Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: []byte(raw)},
	}}
}

func optedIn() *fakeLookup {
	return &fakeLookup{namespaces: map[string]map[string]string{"elastic-system": {keys.AnnotationSecure: "true"}}}
}

func TestStatefulSetPatch(t *testing.T) {
	h := &Handler{Lookup: optedIn()}
	resp := h.Handle(context.Background(), request(statefulSets, "elastic-system", statefulSetJSON))
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	got := map[string]string{}
	for _, op := range resp.Patches {
		if op.Operation != "add" && op.Operation != "replace" {
			t.Errorf("%s %s: the webhook only adds and sets", op.Operation, op.Path)
		}
		b, _ := json.Marshal(op.Value)
		var generic any // keys in order, whatever the value's type
		_ = json.Unmarshal(b, &generic)
		b, _ = json.Marshal(generic)
		got[op.Operation+" "+op.Path] = string(b)
	}
	want := map[string]string{
		"add /spec/template/metadata/annotations":             `{"metrics-guard.eck.dev/metrics-hash":"` + hashOf(t, h, statefulSetJSON) + `"}`,
		"add /spec/template/spec/containers/0/ports/1":        `{"containerPort":8081,"name":"metrics","protocol":"TCP"}`,
		"add /spec/template/spec/containers/0/volumeMounts/1": `{"mountPath":"/tmp/k8s-metrics-server/serving-certs","name":"tls-certificate","readOnly":true}`,
		"add /spec/template/spec/volumes/1":                   `{"name":"tls-certificate","secret":{"secretName":"metrics-tls"}}`,
	}
	if len(got) != len(want) {
		t.Errorf("patch has %d operations, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}

	// Reinvocation: the patched object needs no further change.
	patched := applyPatch(t, statefulSetJSON, resp.Patches)
	again := h.Handle(context.Background(), request(statefulSets, "elastic-system", patched))
	if !again.Allowed || len(again.Patches) != 0 {
		t.Errorf("second pass: allowed %v, %d operations", again.Allowed, len(again.Patches))
	}
	if !strings.Contains(patched, `"futureField":{"kept":true}`) {
		t.Error("a field unknown to the guard's types was lost")
	}
}

func hashOf(t *testing.T, h *Handler, raw string) string {
	resp := h.Handle(context.Background(), request(statefulSets, "elastic-system", raw))
	for _, op := range resp.Patches {
		if op.Path == "/spec/template/metadata/annotations" {
			b, _ := json.Marshal(op.Value) // typed (patch.Template) or decoded JSON (patch.Diff)
			var annotations map[string]string
			if err := json.Unmarshal(b, &annotations); err != nil {
				t.Fatal(err)
			}
			return annotations[keys.AnnotationMetricsHash]
		}
	}
	t.Fatal("no hash annotation")
	return ""
}

func TestLeftAlone(t *testing.T) {
	tests := map[string]struct {
		lookup *fakeLookup
		kind   metav1.GroupVersionKind
		raw    string
		want   string // in the response message
	}{
		"namespace not opted in": {lookup: &fakeLookup{}, kind: statefulSets, raw: statefulSetJSON, want: "not opted in"},
		"opted out": {lookup: optedIn(), kind: statefulSets,
			raw: strings.Replace(statefulSetJSON, `"metrics-guard.eck.dev/tls-secret": "metrics-tls"`, `"metrics-guard.eck.dev/secure": "false"`, 1), want: "opted out"},
		"not an operator": {lookup: optedIn(), kind: statefulSets,
			raw: strings.Replace(statefulSetJSON, "eck-operator:3.5.0", "nginx:1.27", 1), want: "not an ECK operator"},
		"unrelated ConfigMap": {lookup: optedIn(), kind: configMaps,
			raw: `{"metadata":{"name":"x","namespace":"elastic-system"},"data":{"app.properties":"a=b"}}`, want: "not an ECK operator config"},
		"unrelated Service": {lookup: optedIn(), kind: services,
			raw: `{"metadata":{"name":"web","namespace":"elastic-system"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}}`, want: "not the metrics Service"},
		"old operator": {lookup: optedIn(), kind: statefulSets,
			raw: strings.Replace(statefulSetJSON, "eck-operator:3.5.0", "eck-operator:2.14.0", 1), want: "2.14.0 ignores metrics-secure"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := &Handler{Lookup: tc.lookup}
			resp := h.Handle(context.Background(), request(tc.kind, "elastic-system", tc.raw))
			if !resp.Allowed || len(resp.Patches) != 0 {
				t.Fatalf("allowed %v with %d operations", resp.Allowed, len(resp.Patches))
			}
			if !strings.Contains(resp.Result.Message, tc.want) {
				t.Errorf("message %q, want %q", resp.Result.Message, tc.want)
			}
		})
	}
}

func TestOldOperatorWarns(t *testing.T) {
	h := &Handler{Lookup: optedIn()}
	resp := h.Handle(context.Background(), request(statefulSets, "elastic-system", strings.Replace(statefulSetJSON, "eck-operator:3.5.0", "eck-operator:2.14.0", 1)))
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "unauthenticated") {
		t.Errorf("warnings = %q", resp.Warnings)
	}
}

func TestInvalidAnnotationIsDenied(t *testing.T) {
	h := &Handler{Lookup: optedIn()}
	raw := strings.Replace(statefulSetJSON, `"metrics-guard.eck.dev/tls-secret": "metrics-tls"`, `"metrics-guard.eck.dev/issuer-kind": "Vault", "metrics-guard.eck.dev/issuer": "ca"`, 1)
	resp := h.Handle(context.Background(), request(statefulSets, "elastic-system", raw))
	if resp.Allowed {
		t.Fatal("allowed")
	}
	if resp.Result.Code != http.StatusUnprocessableEntity || resp.Result.Reason != metav1.StatusReasonInvalid ||
		!strings.Contains(resp.Result.Message, `metadata.annotations[metrics-guard.eck.dev/issuer-kind]: Unsupported value: "Vault": supported values: "Issuer", "ClusterIssuer"`) {
		t.Errorf("result = %+v", resp.Result)
	}
}

func TestConfigMapOfAGuardedStatefulSet(t *testing.T) {
	lookup := optedIn()
	lookup.workloads = []cluster.Workload{workloadFromJSON(t, statefulSetJSON)}
	cm := `{"metadata":{"name":"elastic-operator","namespace":"elastic-system"},"data":{"eck.yaml":"log-verbosity: 0\nmetrics-port: 0\nmetrics-secure: false\n"}}`
	resp := (&Handler{Lookup: lookup}).Handle(context.Background(), request(configMaps, "elastic-system", cm))
	// eck.yaml, and the label that makes the webhook see every later write of it.
	if !resp.Allowed || len(resp.Patches) != 2 || resp.Patches[1].Path != "/metadata/labels" {
		t.Fatalf("allowed %v, patches %+v", resp.Allowed, resp.Patches)
	}
	if op := resp.Patches[0]; op.Operation != "replace" || op.Path != "/data/eck.yaml" ||
		op.Value != "log-verbosity: 0\nmetrics-port: 8081\nmetrics-secure: true\nmetrics-host: 0.0.0.0\n" {
		t.Errorf("patch = %+v", op)
	}

	// The same ConfigMap in a namespace that did not opt in, of a workload that did.
	lookup.namespaces = nil
	lookup.workloads[0].Annotations = map[string]string{keys.AnnotationSecure: "true"}
	if resp := (&Handler{Lookup: lookup}).Handle(context.Background(), request(configMaps, "elastic-system", cm)); len(resp.Patches) != 2 {
		t.Errorf("the ConfigMap of an opted-in StatefulSet was not secured: %+v", resp)
	}
}

func TestMetricsServiceGetsLabels(t *testing.T) {
	lookup := optedIn()
	lookup.workloads = []cluster.Workload{workloadFromJSON(t, statefulSetJSON)}
	svc := `{"metadata":{"name":"elastic-operator-metrics","namespace":"elastic-system"},"spec":{"selector":{"control-plane":"elastic-operator"},"ports":[{"name":"https","port":8081,"targetPort":"metrics"}]}}`
	resp := (&Handler{Lookup: lookup}).Handle(context.Background(), request(services, "elastic-system", svc))
	if len(resp.Patches) != 1 || resp.Patches[0].Path != "/metadata/labels" {
		t.Fatalf("patches = %+v", resp.Patches)
	}
}

func workloadFromJSON(t *testing.T, raw string) cluster.Workload {
	t.Helper()
	var sts appsv1.StatefulSet
	if err := yaml.Unmarshal([]byte(raw), &sts); err != nil {
		t.Fatal(err)
	}
	op, ok := eck.FromStatefulSet(&sts)
	if !ok {
		t.Fatal("not recognised")
	}
	return cluster.Workload{Operator: op, Template: &sts.Spec.Template, Annotations: sts.Annotations}
}

func applyPatch(t *testing.T, raw string, ops []jsonpatch.JsonPatchOperation) string {
	t.Helper()
	b, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatchv5.DecodePatch(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// brokenLookup fails every read, as a cache that is not synced would.
type brokenLookup struct{ fakeLookup }

func (brokenLookup) Namespace(context.Context, string) (cluster.Namespace, error) {
	return cluster.Namespace{}, errors.New("cache not synced")
}

func TestInternalErrorsAdmitUnchanged(t *testing.T) {
	h := &Handler{Lookup: &brokenLookup{}}
	for name, req := range map[string]admission.Request{
		"cache read fails": request(statefulSets, "elastic-system", statefulSetJSON),
		"undecodable":      request(configMaps, "elastic-system", `{"data": 42}`),
	} {
		resp := h.Handle(context.Background(), req)
		if !resp.Allowed || len(resp.Patches) != 0 || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "admitted unchanged") {
			t.Errorf("%s: allowed %v, %d operations, warnings %q: the guard must not block writes", name, resp.Allowed, len(resp.Patches), resp.Warnings)
		}
	}
}

func TestPolicyModes(t *testing.T) {
	optOut := strings.Replace(statefulSetJSON, `"annotations": {`, `"annotations": {"metrics-guard.eck.dev/secure": "false", `, 1)
	tests := map[string]struct {
		mode    v1alpha1.Mode
		raw     string
		allowed bool
		patched bool
		message string // in the denial, or in a warning
	}{
		"audit warns":              {mode: v1alpha1.ModeAudit, raw: statefulSetJSON, allowed: true, message: "MetricsSecurityPolicy platform (Audit) covers StatefulSet elastic-system/elastic-operator, and its metrics endpoint is not secured"},
		"mutate secures":           {mode: v1alpha1.ModeMutate, raw: statefulSetJSON, allowed: true, patched: true},
		"mutate allows an opt-out": {mode: v1alpha1.ModeMutate, raw: optOut, allowed: true, message: "opted out"},
		"enforce denies an opt-out": {mode: v1alpha1.ModeEnforce, raw: optOut,
			message: `StatefulSet.apps "elastic-operator" is invalid: metadata.annotations[metrics-guard.eck.dev/secure]: Forbidden: MetricsSecurityPolicy platform (Enforce) enforces secure metrics in namespace elastic-system: the StatefulSet may not opt out with "false"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := &Handler{Lookup: &fakeLookup{coverage: map[string]*policy.Coverage{"elastic-system": {Policy: "platform", Mode: tc.mode}}}}
			req := request(statefulSets, "elastic-system", tc.raw)
			req.Name = "elastic-operator"
			resp := h.Handle(context.Background(), req)
			if resp.Allowed != tc.allowed || (len(resp.Patches) > 0) != tc.patched {
				t.Fatalf("allowed %v with %d operations, want allowed %v, patched %v (%v)", resp.Allowed, len(resp.Patches), tc.allowed, tc.patched, resp.Result)
			}
			said := strings.Join(resp.Warnings, "\n")
			if !resp.Allowed {
				said = resp.Result.Message
				if resp.Result.Code != http.StatusUnprocessableEntity {
					t.Errorf("code %d, want 422", resp.Result.Code)
				}
			}
			if !strings.Contains(said, tc.message) {
				t.Errorf("said %q, want it to contain %q", said, tc.message)
			}
		})
	}
}

// TestEnforceDeniesOnlyWhatARequestBrings: under Enforce, an update that adds an opt-out is
// denied; an update of an object that already had it (the controller's patches, a label) is
// secured with a warning; a write of an object being deleted is never denied.
func TestEnforceDeniesOnlyWhatARequestBrings(t *testing.T) {
	optOut := strings.Replace(statefulSetJSON, `"annotations": {`, `"annotations": {"metrics-guard.eck.dev/secure": "false", `, 1)
	labelled := strings.Replace(optOut, `"namespace": "elastic-system",`, `"namespace": "elastic-system", "labels": {"team": "search"},`, 1)
	deleting := strings.Replace(optOut, `"namespace": "elastic-system",`, `"namespace": "elastic-system", "deletionTimestamp": "2026-11-27T20:00:00Z",`, 1)
	h := &Handler{Lookup: &fakeLookup{coverage: map[string]*policy.Coverage{"elastic-system": {Policy: "platform", Mode: v1alpha1.ModeEnforce}}}}
	update := func(old, new string) admission.Response {
		req := request(statefulSets, "elastic-system", new)
		req.Operation, req.Name = admissionv1.Update, "elastic-operator"
		req.OldObject = runtime.RawExtension{Raw: []byte(old)}
		return h.Handle(context.Background(), req)
	}
	if resp := update(statefulSetJSON, optOut); resp.Allowed {
		t.Error("an update that adds the opt-out was allowed")
	}
	resp := update(optOut, labelled)
	if !resp.Allowed || len(resp.Patches) == 0 || !strings.Contains(strings.Join(resp.Warnings, "\n"), "there before this request; secured anyway") {
		t.Errorf("an update of an object that already opted out: allowed %v, %d operations, warnings %q", resp.Allowed, len(resp.Patches), resp.Warnings)
	}
	if resp := update(statefulSetJSON, deleting); !resp.Allowed {
		t.Errorf("a write of an object being deleted was denied: %v", resp.Result)
	}
}

// TestEnforceComparesWhatMatters: an env var inserted before an inherited weakening moves its
// index, not the violation; an upgrade from an unsupported version keeps an old opt-out
// inherited; invalid settings of the namespace never block the operator's writes.
func TestEnforceComparesWhatMatters(t *testing.T) {
	h := &Handler{Lookup: &fakeLookup{coverage: map[string]*policy.Coverage{"elastic-system": {Policy: "platform", Mode: v1alpha1.ModeEnforce}}}}
	update := func(h *Handler, old, new string) admission.Response {
		req := request(statefulSets, "elastic-system", new)
		req.Operation, req.Name = admissionv1.Update, "elastic-operator"
		req.OldObject = runtime.RawExtension{Raw: []byte(old)}
		return h.Handle(context.Background(), req)
	}
	withEnv := func(env string) string {
		return strings.Replace(statefulSetJSON, `"args": [`, `"env": [`+env+`], "args": [`, 1)
	}
	// A value from elsewhere is outranked by a flag the guard adds: secured, not denied.
	fromElsewhere := `{"name": "METRICS_SECURE", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "secure"}}}`
	if resp := update(h, statefulSetJSON, withEnv(fromElsewhere)); !resp.Allowed || !strings.Contains(fmt.Sprint(resp.Patches), "--metrics-secure=true") {
		t.Errorf("METRICS_SECURE from a ConfigMap: allowed %v, patch %v; want a --metrics-secure=true flag", resp.Allowed, resp.Patches)
	}
	// A launcher the guard cannot read is a weakening it cannot fix: denied when it is new,
	// a warning when the object had it already (an env var inserted before it changes nothing).
	shell := strings.Replace(statefulSetJSON, `"args": [`, `"command": ["/bin/sh", "-c", "exec /elastic-operator manager --metrics-secure=false"], "args": [`, 1)
	if resp := update(h, statefulSetJSON, shell); resp.Allowed || !strings.Contains(resp.Result.Message, "unknown") {
		t.Errorf("a new shell launcher: allowed %v, %v", resp.Allowed, resp.Result)
	}
	withShellEnv := strings.Replace(shell, `"args": [`, `"env": [{"name": "OTHER", "value": "1"}], "args": [`, 1)
	if resp := update(h, shell, withShellEnv); !resp.Allowed {
		t.Errorf("an inherited launcher was denied: %v", resp.Result)
	}

	optOut := strings.Replace(statefulSetJSON, `"annotations": {`, `"annotations": {"metrics-guard.eck.dev/secure": "false", `, 1)
	old := strings.Replace(optOut, "eck-operator:3.5.0", "eck-operator:2.14.0", 1)
	if resp := update(h, old, optOut); !resp.Allowed {
		t.Errorf("upgrading an operator that opted out while unsupported was denied: %v", resp.Result)
	}

	invalidNamespace := &Handler{Lookup: &fakeLookup{namespaces: map[string]map[string]string{"elastic-system": {keys.AnnotationSecure: "true", keys.AnnotationMetricsPort: "abc"}}}}
	resp := update(invalidNamespace, statefulSetJSON, statefulSetJSON)
	if !resp.Allowed || len(resp.Patches) > 0 || !strings.Contains(strings.Join(resp.Warnings, "\n"), "the settings of another object are invalid") {
		t.Errorf("invalid namespace settings: allowed %v, %d operations, warnings %q", resp.Allowed, len(resp.Patches), resp.Warnings)
	}
	ownInvalid := strings.Replace(statefulSetJSON, `"annotations": {`, `"annotations": {"metrics-guard.eck.dev/metrics-port": "abc", `, 1)
	if resp := update(invalidNamespace, statefulSetJSON, ownInvalid); resp.Allowed {
		t.Error("the object's own invalid annotation was allowed")
	}
}
