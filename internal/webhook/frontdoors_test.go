package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/render"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// The front doors must agree: this test (after Istio's webhook-versus-kube-inject test) runs
// the admission handler over every input that inject's golden tests take, and requires every
// object the webhook admits to come out exactly as inject writes it.
//
// What legitimately differs, and is therefore not compared:
//   - the companion objects inject appends after the input's documents (a metrics Service when
//     the input has none, the system:auth-delegator ClusterRoleBinding, the cert-manager
//     Certificate, the ServiceMonitor): the webhook never creates objects, the controller does
//     (internal/controller). The test checks that inject appends nothing else.
//   - documents of other kinds (Namespaces, RBAC, the ValidatingWebhookConfiguration...): the
//     webhook is not asked about them. The test checks that inject leaves them as read.
//   - inject reads YAML and keeps its formatting; the webhook answers a JSON patch. The
//     comparison is of the decoded objects, not of bytes.
//   - the opt-in: inject is one (it treats every namespace as annotated secure: "true"); the
//     webhook reads the namespace's annotation, so the fake cluster's namespaces carry it.

// frontDoorOptions are inject's options of the golden runs (internal/render's goldenOptions);
// the handler gets the same Defaults.
var frontDoorOptions = render.Options{Defaults: policy.Defaults{Issuer: "eck-metrics-ca", IssuerKind: "ClusterIssuer", Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}}

// frontDoorNamespace is inject's default namespace for objects that name none.
const frontDoorNamespace = "default"

// companionKinds are the kinds inject may append: the objects the controller creates.
var companionKinds = map[string]bool{"Service": true, "ClusterRoleBinding": true, "Certificate": true, "ServiceMonitor": true, "PodMonitor": true}

// applyModes are the two states of the cluster the stream is applied to.
var applyModes = []struct {
	name string
	seen bool // the cache holds the stream's objects, as read, before any is admitted
}{
	// A first install: each object is admitted with what was written before it, in
	// applyOrder.
	{name: "install", seen: false},
	// The namespace opted in after the install (or the webhook was down): the stream's
	// objects are there, as read, and it is applied again (updates). Each admission sees
	// every other object of the stream, exactly as inject does: no exceptions.
	{name: "reapply", seen: true},
}

// installDifferences are the objects that a first install, admitted in applyOrder, does not
// get as inject writes them, with why. A ConfigMap is admitted before its workload exists, so
// the webhook decides on the namespace's settings alone; what the workload's annotations say
// it cannot know. The test requires each of them to still differ (and every other object to
// agree), so that this list stays the truth.
var installDifferences = map[string]string{
	"issuer-and-env.yaml ConfigMap elastic-system/elastic-operator": "the cert dir is the StatefulSet's annotation " +
		"(metrics-guard.eck.dev/cert-dir): the ConfigMap, admitted first, gets no metrics-cert-dir; the controller's heal " +
		"writes it once the StatefulSet is there",
	"left-alone.yaml ConfigMap ops/opted-out": "the opt-out is the StatefulSet's annotation: the ConfigMap, admitted " +
		"first in an opted-in namespace, is secured (metrics-port 8081, metrics-secure true), and opting out does not " +
		"revert (docs/design/20261127-controller.md); an opt-out must be on the ConfigMap too to hold in this order",
}

func TestWebhookAgreesWithInjectOnOwnInputs(t *testing.T) {
	inputs, _ := filepath.Glob("../../test/testdata/inject/*.yaml")
	if len(inputs) == 0 {
		t.Fatal("no inputs in test/testdata/inject")
	}
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			patched := map[string]int{}
			for _, path := range inputs {
				t.Run(filepath.Base(path), func(t *testing.T) {
					input := readFile(t, path)
					// inject's output is the golden file: this test and the golden test speak of
					// the same objects.
					for kind, n := range checkFrontDoorsAgree(t, path, input, readFile(t, path+".injected"), mode.seen) {
						patched[kind] += n
					}
				})
			}
			// Agreement on objects nobody changes proves nothing: every kind the webhook
			// mutates must have been changed by it somewhere in these inputs.
			for _, kind := range []string{"ConfigMap", "StatefulSet", "Deployment", "Service"} {
				if patched[kind] == 0 {
					t.Errorf("the webhook patched no %s of the inputs", kind)
				}
			}
		})
	}
}

func TestWebhookAgreesWithInjectOnECKManifests(t *testing.T) {
	manifests := eckmanifests.ForTest(t) // skips, saying how to render them, only when none are
	for _, mode := range applyModes {
		t.Run(mode.name, func(t *testing.T) {
			secured := 0
			for _, m := range manifests {
				t.Run(m.String(), func(t *testing.T) {
					patched := checkFrontDoorsAgree(t, m.Path, readFile(t, m.Path), nil, mode.seen)
					secures := !m.Version.LessThan(eck.MinSecureVersion) && m.Style != eckmanifests.SecureMode
					if secures != (patched["StatefulSet"] > 0 && patched["ConfigMap"] > 0) {
						t.Errorf("ECK %s (%s): the webhook patched %v; want the StatefulSet and its ConfigMap patched exactly when the guard secures it", m.Version, m.Style, patched)
					}
					if secures {
						secured++
					}
				})
			}
			if secured == 0 {
				t.Error("no real ECK manifest was secured")
			}
		})
	}
}

// checkFrontDoorsAgree injects input and, separately, admits its objects through the handler
// into a fake cluster (seen: see fakeCluster), and compares. golden, when not nil, is what
// inject must write. It returns how many objects of each kind the webhook patched.
func checkFrontDoorsAgree(t *testing.T, name string, input, golden []byte, seen bool) map[string]int {
	t.Helper()
	res, err := render.Inject(name, input, frontDoorOptions)
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
	if golden != nil && !bytes.Equal(res.Output, golden) {
		t.Fatalf("inject's output is not its golden file (the golden test says how to update it)")
	}
	in, out := documents(t, input), documents(t, res.Output)
	if len(out) < len(in) {
		t.Fatalf("inject wrote %d documents for %d", len(out), len(in))
	}
	for _, c := range out[len(in):] {
		if !companionKinds[c.Kind] || c.labels()[keys.LabelManagedBy] != keys.ManagedByValue {
			t.Errorf("inject appended %s %s/%s: not a companion of the guard's", c.Kind, c.Namespace, c.Name)
		}
	}

	c := newFakeCluster(in, seen)
	patched := map[string]int{}
	admitted := 0
	for _, i := range c.applyOrder() {
		d := in[i]
		got := c.admit(t, d)
		if !bytes.Equal(got, d.json) {
			patched[d.Kind]++
		}
		want := out[i]
		if want.Kind != d.Kind || want.Name != d.Name {
			t.Fatalf("document %d is %s %s in inject's output, %s %s in its input", i, want.Kind, want.Name, d.Kind, d.Name)
		}
		id := filepath.Base(name) + " " + d.Kind + " " + d.Namespace + "/" + d.Name
		if d.Kind == "ConfigMap" && !seen {
			// Admitted before its workload exists, a ConfigMap is not yet known as an
			// operator's config: the controller labels it (config-of) once the workload is there.
			want = withoutConfigOf(t, want)
		}
		if why, known := installDifferences[id]; known && !seen {
			if equalTyped(t, d, got, want.json) {
				t.Errorf("%s: admitted as inject writes it, yet listed in installDifferences (%s): drop it from the list", id, why)
			} else {
				t.Logf("%s: differs on a first install, as documented: %s", id, why)
			}
			admitted++
			continue
		}
		equalObjects(t, d, got, want.json)
		admitted++
	}
	for i, d := range in {
		if d.gvk() == nil && d.json != nil && !jsonEqual(d.json, out[i].json) {
			t.Errorf("inject changed %s %s/%s, which the webhook is never asked about", d.Kind, d.Namespace, d.Name)
		}
	}
	if admitted == 0 {
		t.Fatal("no object of the stream went through the webhook")
	}
	return patched
}

func equalTyped(t *testing.T, d *document, got, want []byte) bool {
	t.Helper()
	return apiequality.Semantic.DeepEqual(d.typed(t, got), d.typed(t, want))
}

// equalObjects compares the object the webhook admitted (raw JSON) with inject's, decoded
// as the API server would (typed, semantic equality), and, more strictly, as JSON trees: a
// field the guard's types do not know must come out of both the same.
func equalObjects(t *testing.T, d *document, got, want []byte) {
	t.Helper()
	g, w := d.typed(t, got), d.typed(t, want)
	if !apiequality.Semantic.DeepEqual(g, w) {
		t.Errorf("%s %s/%s: the webhook's object differs from inject's:\n%s", d.Kind, d.Namespace, d.Name, objectDiff(t, w, g))
		return
	}
	if !jsonEqual(got, want) {
		t.Errorf("%s %s/%s: the webhook's JSON differs from inject's (fields outside the types?):\n%s", d.Kind, d.Namespace, d.Name, objectDiff(t, tree(t, want), tree(t, got)))
	}
}

// fakeCluster is what the manager's cache holds while the stream is applied: the ConfigMaps
// and workloads written so far, as admitted. With seen, it starts with every one of the
// stream's objects as read (a re-apply, or the cache of a cluster that has them), so that
// each admission sees the stream's other objects, as inject does.
type fakeCluster struct {
	docs   []*document
	seen   bool
	lookup *fakeLookup
	h      *Handler
}

func newFakeCluster(docs []*document, seen bool) *fakeCluster {
	c := &fakeCluster{docs: docs, seen: seen, lookup: &fakeLookup{namespaces: map[string]map[string]string{}, configMaps: map[string]*corev1.ConfigMap{}}}
	c.h = &Handler{Lookup: c.lookup, Defaults: frontDoorOptions.Defaults}
	for _, d := range docs {
		if d.gvk() != nil {
			c.lookup.namespaces[d.Namespace] = map[string]string{keys.AnnotationSecure: "true"}
			if seen {
				c.store(d, d.json)
			}
		}
	}
	return c
}

// applyOrder is the order kubectl (or Helm) applies the stream's objects the webhook is
// asked about: ConfigMaps, then workloads, then Services, each in the order of the stream.
func (c *fakeCluster) applyOrder() []int {
	var order []int
	for _, kind := range []string{"ConfigMap", "StatefulSet", "Deployment", "Service"} {
		for i, d := range c.docs {
			if d.gvk() != nil && d.Kind == kind {
				order = append(order, i)
			}
		}
	}
	return order
}

// admit sends a write of d to the handler (a create; an update of the object as read when
// the cluster has seen it) and returns the object it admits: d with the handler's JSON
// patch applied. The lookup then holds it.
func (c *fakeCluster) admit(t *testing.T, d *document) []byte {
	t.Helper()
	req := request(*d.gvk(), d.Namespace, string(d.json))
	req.Name = d.Name
	if c.seen {
		req.Operation, req.OldObject = admissionv1.Update, runtime.RawExtension{Raw: d.json}
	}
	resp := c.h.Handle(context.Background(), req)
	if !resp.Allowed {
		t.Fatalf("%s %s/%s denied: %v", d.Kind, d.Namespace, d.Name, resp.Result)
	}
	for _, w := range resp.Warnings {
		if strings.Contains(w, "admitted unchanged") {
			t.Errorf("%s %s/%s: %s", d.Kind, d.Namespace, d.Name, w)
		}
	}
	got := d.json
	if len(resp.Patches) > 0 {
		for _, op := range resp.Patches {
			if op.Operation != "add" && op.Operation != "replace" {
				t.Errorf("%s %s/%s: operation %s %s; the webhook only adds and sets", d.Kind, d.Namespace, d.Name, op.Operation, op.Path)
			}
		}
		got = []byte(applyPatch(t, string(d.json), resp.Patches))
	}
	c.store(d, got)
	return got
}

// store puts the object of d, as raw, into the lookup, replacing what it held of it.
func (c *fakeCluster) store(d *document, raw []byte) {
	obj := d.typed(nil, raw)
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		c.lookup.configMaps[o.Namespace+"/"+o.Name] = o
	case *appsv1.StatefulSet, *appsv1.Deployment:
		kept := c.lookup.workloads[:0]
		for _, w := range c.lookup.workloads {
			if w.Operator.Kind != d.Kind || w.Operator.Namespace != d.Namespace || w.Operator.Name != d.Name {
				kept = append(kept, w)
			}
		}
		c.lookup.workloads = kept
		if op, tmpl, ok := eck.FromObject(obj); ok {
			c.lookup.workloads = append(c.lookup.workloads, cluster.Workload{Operator: op, Template: tmpl, Annotations: obj.(metav1.Object).GetAnnotations()})
		}
	}
}

// document is one document of a stream, as JSON, with what identifies it.
type document struct {
	metav1.TypeMeta
	Namespace, Name string
	json            []byte // nil for an empty document
}

func (d *document) gvk() *metav1.GroupVersionKind {
	switch d.APIVersion + "/" + d.Kind {
	case "apps/v1/StatefulSet":
		return &statefulSets
	case "apps/v1/Deployment":
		return &deployments
	case "v1/ConfigMap":
		return &configMaps
	case "v1/Service":
		return &services
	}
	return nil
}

func (d *document) labels() map[string]string {
	var m metav1.PartialObjectMetadata
	_ = json.Unmarshal(d.json, &m)
	return m.Labels
}

// typed decodes raw as d's kind, in inject's default namespace when it names none. t may
// be nil (then raw is known to decode).
func (d *document) typed(t *testing.T, raw []byte) runtime.Object {
	var obj runtime.Object
	switch d.Kind {
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "Service":
		obj = &corev1.Service{}
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatalf("%s %s: %v", d.Kind, d.Name, err)
	}
	if o := obj.(metav1.Object); o.GetNamespace() == "" {
		o.SetNamespace(frontDoorNamespace)
	}
	return obj
}

// documents splits a YAML stream as inject does, at its "---" lines (empty documents
// included, so that indexes match inject's output), and converts each to JSON.
func documents(t *testing.T, stream []byte) []*document {
	t.Helper()
	var parts [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(stream, []byte("\n")) {
		if l := strings.TrimRight(string(line), " \t\r\n"); l == "---" || strings.HasPrefix(l, "--- ") {
			parts, cur = append(parts, cur), nil
			continue
		}
		cur = append(cur, line...)
	}
	var docs []*document
	for _, b := range append(parts, cur) {
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		d := &document{}
		if string(j) != "null" {
			var head struct {
				metav1.TypeMeta   `json:",inline"`
				metav1.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(j, &head); err != nil {
				t.Fatal(err)
			}
			d.TypeMeta, d.Name, d.Namespace, d.json = head.TypeMeta, head.Name, head.Namespace, j
			if d.Namespace == "" {
				d.Namespace = frontDoorNamespace
			}
		}
		docs = append(docs, d)
	}
	return docs
}

func tree(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return apiequality.Semantic.DeepEqual(x, y)
}

// objectDiff is a unified diff of two objects' indented JSON.
func objectDiff(t *testing.T, want, got any) string {
	t.Helper()
	a, _ := json.MarshalIndent(want, "", "  ")
	b, _ := json.MarshalIndent(got, "", "  ")
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)), FromFile: "inject", ToFile: "webhook", Context: 3})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withoutConfigOf is d without the guard's config-of label.
func withoutConfigOf(t *testing.T, in *document) *document {
	d := *in
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(d.json, &obj); err != nil {
		t.Fatal(err)
	}
	if m, ok := obj["metadata"].(map[string]any); ok {
		if labels, ok := m["labels"].(map[string]any); ok {
			delete(labels, keys.LabelConfigOf)
			if len(labels) == 0 {
				delete(m, "labels")
			}
		}
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	d.json = raw
	return &d
}
