package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/pmezard/go-difflib/difflib"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/render"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// The third front door: the reconciler, run over a cluster holding a stream's objects as read
// (installed before the namespace opted in, or while the webhook was down), must leave them as
// inject writes them, and create the companions inject adds.
//
// What legitimately differs, and is therefore not compared:
//   - the status annotation (metrics-guard.eck.dev/status): the controller reports on the
//     cluster; inject writes no status.
//   - what the API server keeps of a write (resourceVersion, managedFields) and the owner
//     references of the namespaced companions: inject's objects are not stored yet, so they
//     can have no owner's UID.
//   - the auth-delegator ClusterRoleBinding of a stream that already grants the operator's
//     ServiceAccount TokenReviews (ECK's chart in its secure mode): inject recognises the
//     grant in the stream; the controller applies its own binding regardless.
//   - the ServiceMonitor and Certificate exist only when their APIs are served; the fake
//     cluster serves both.

var frontDoorOptions = render.Options{Defaults: policy.Defaults{Issuer: "eck-metrics-ca", IssuerKind: "ClusterIssuer", Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}}

func TestReconcilerAgreesWithInjectOnOwnInputs(t *testing.T) {
	inputs, _ := filepath.Glob("../../test/testdata/inject/*.yaml")
	if len(inputs) == 0 {
		t.Fatal("no inputs in test/testdata/inject")
	}
	changed := 0
	for _, path := range inputs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			changed += checkReconcilerAgrees(t, path)
		})
	}
	if changed == 0 {
		t.Error("the reconciler changed nothing in any input: agreement proves nothing")
	}
}

func TestReconcilerAgreesWithInjectOnECKManifests(t *testing.T) {
	for _, m := range eckmanifests.ForTest(t) { // skips, saying how to render them, only when none are
		t.Run(m.String(), func(t *testing.T) {
			changed := checkReconcilerAgrees(t, m.Path)
			secures := !m.Version.LessThan(eck.MinSecureVersion) && m.Style != eckmanifests.SecureMode
			if secures && changed == 0 {
				t.Errorf("ECK %s (%s): the reconciler changed nothing", m.Version, m.Style)
			}
		})
	}
}

// checkReconcilerAgrees returns how many of the stream's objects the reconciler changed.
func checkReconcilerAgrees(t *testing.T, path string) int {
	t.Helper()
	input, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := render.Inject(path, input, frontDoorOptions)
	if err != nil {
		t.Fatalf("inject: %v", err)
	}
	in, out := split(t, input), split(t, res.Output)

	// The cluster: the stream's namespaces opted in, its ConfigMaps, workloads, Services,
	// ClusterRoleBindings, ServiceMonitors and Certificates.
	var objs []client.Object
	namespaces := map[string]bool{}
	var workloads []*typedDoc
	for _, d := range in {
		if d.obj == nil {
			if d.companion != nil { // the stream's own ClusterRoleBindings, ServiceMonitors, Certificates
				objs = append(objs, d.companion.DeepCopyObject().(client.Object))
			}
			continue
		}
		objs = append(objs, d.obj.DeepCopyObject().(client.Object))
		namespaces[d.obj.GetNamespace()] = true
		if _, _, ok := eck.FromObject(d.obj); ok {
			workloads = append(workloads, d)
		}
	}
	for ns := range namespaces {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Annotations: map[string]string{keys.AnnotationSecure: "true"}}})
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithRESTMapper(served(true)).WithObjects(objs...).Build()
	opts := Options{Defaults: frontDoorOptions.Defaults}
	for _, w := range workloads {
		kind := "StatefulSet"
		if _, ok := w.obj.(*appsv1.Deployment); ok {
			kind = "Deployment"
		}
		r := &OperatorReconciler{Kind: kind, Client: c, APIReader: c, Lookup: cluster.CachedLookup{Reader: c}, Recorder: events.NewFakeRecorder(100), Options: opts}
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: w.obj.GetNamespace(), Name: w.obj.GetName()}}); err != nil {
			t.Fatalf("Reconcile %s %s/%s: %v", kind, w.obj.GetNamespace(), w.obj.GetName(), err)
		}
	}
	// The controller keeps one auth-delegator binding for every operator (its RBAC may update
	// that name only); inject, which needs no RBAC of the guard's, writes one per operator.
	// They agree when every subject inject binds is in the controller's binding.
	br := &BindingReconciler{Name: DefaultBindingName, Client: c, Lookup: cluster.CachedLookup{Reader: c}, Defaults: opts.Defaults}
	if _, err := br.Reconcile(context.Background(), reconcile.Request{}); err != nil {
		t.Fatalf("Reconcile the binding: %v", err)
	}
	shared := &rbacv1.ClusterRoleBinding{}
	_ = c.Get(context.Background(), types.NamespacedName{Name: DefaultBindingName}, shared)

	changed := 0
	for i, d := range in {
		if d.obj == nil {
			continue
		}
		got := d.obj.DeepCopyObject().(client.Object)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(d.obj), got); err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(normalize(got.DeepCopyObject().(client.Object)), normalize(d.obj.DeepCopyObject().(client.Object))) {
			changed++
		}
		compare(t, got, out[i].obj)
	}

	// Every companion inject adds, the controller created the same.
	for _, d := range out[len(in):] {
		if d.companion == nil {
			t.Errorf("inject appended %s: not a companion the controller makes", d.head)
			continue
		}
		if crb, ok := d.companion.(*rbacv1.ClusterRoleBinding); ok {
			for _, sub := range crb.Subjects {
				if !slices.Contains(shared.Subjects, sub) {
					t.Errorf("inject binds %s/%s to %s; the controller's binding %s does not: %v", sub.Namespace, sub.Name, crb.RoleRef.Name, DefaultBindingName, shared.Subjects)
				}
			}
			continue
		}
		got := d.companion.DeepCopyObject().(client.Object)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(d.companion), got); err != nil {
			t.Errorf("inject adds %s %s/%s; the controller did not create it: %v", d.head.Kind, d.companion.GetNamespace(), d.companion.GetName(), err)
			continue
		}
		compare(t, got, d.companion)
	}
	// And nothing else but the binding of a stream that already delegates authentication.
	var bindings rbacv1.ClusterRoleBindingList
	if err := c.List(context.Background(), &bindings, client.MatchingLabels{keys.LabelManagedBy: keys.ManagedByValue}); err != nil {
		t.Fatal(err)
	}
	for _, b := range bindings.Items {
		if b.Name == DefaultBindingName {
			for _, sub := range b.Subjects {
				if !bindsInOutput(out, sub) && !delegatesAuth(in, []rbacv1.Subject{sub}) {
					t.Errorf("the controller binds %s/%s, which inject does not, in a stream that does not delegate authentication", sub.Namespace, sub.Name)
				}
			}
			continue
		}
		if !hasDoc(out, "ClusterRoleBinding", b.Name) && !delegatesAuth(in, b.Subjects) {
			t.Errorf("the controller created ClusterRoleBinding %s, which inject does not add, in a stream that does not delegate authentication", b.Name)
		}
	}
	for _, list := range []client.ObjectList{&corev1.ServiceList{}, &cmv1.CertificateList{}, &monitoringv1.ServiceMonitorList{}, &monitoringv1.PodMonitorList{}} {
		if err := c.List(context.Background(), list, client.MatchingLabels{keys.LabelManagedBy: keys.ManagedByValue}); err != nil {
			t.Fatal(err)
		}
		for _, o := range metaItems(list) {
			if !hasDoc(out, o.kind, o.name) {
				t.Errorf("the controller created %s %s/%s, which inject does not add", o.kind, o.namespace, o.name)
			}
		}
	}
	return changed
}

type item struct{ kind, namespace, name string }

func metaItems(list client.ObjectList) []item {
	var out []item
	switch l := list.(type) {
	case *corev1.ServiceList:
		for _, o := range l.Items {
			out = append(out, item{"Service", o.Namespace, o.Name})
		}
	case *cmv1.CertificateList:
		for _, o := range l.Items {
			out = append(out, item{"Certificate", o.Namespace, o.Name})
		}
	case *monitoringv1.ServiceMonitorList:
		for _, o := range l.Items {
			out = append(out, item{"ServiceMonitor", o.Namespace, o.Name})
		}
	case *monitoringv1.PodMonitorList:
		for _, o := range l.Items {
			out = append(out, item{"PodMonitor", o.Namespace, o.Name})
		}
	}
	return out
}

func hasDoc(docs []*typedDoc, kind, name string) bool {
	for _, d := range docs {
		if o := d.companion; d.head.Kind == kind && (o != nil && o.GetName() == name || d.obj != nil && d.obj.GetName() == name) {
			return true
		}
	}
	return false
}

// delegatesAuth: the stream binds one of subjects to a role other than the guard's (ECK's
// chart in secure mode grants TokenReviews and SubjectAccessReviews itself).
func delegatesAuth(docs []*typedDoc, subjects []rbacv1.Subject) bool {
	for _, d := range docs {
		if d.head.Kind != "ClusterRoleBinding" {
			continue
		}
		var crb rbacv1.ClusterRoleBinding
		if yaml.Unmarshal(d.raw, &crb) != nil {
			continue
		}
		for _, s := range crb.Subjects {
			for _, want := range subjects {
				if s.Kind == want.Kind && s.Name == want.Name && s.Namespace == want.Namespace {
					return true
				}
			}
		}
	}
	return false
}

// compare requires got, as stored by the controller, to equal want, as inject writes it,
// but for what the test's doc says differs.
func compare(t *testing.T, got, want client.Object) {
	t.Helper()
	g, w := normalize(got), normalize(want.DeepCopyObject().(client.Object))
	if !apiequality.Semantic.DeepEqual(g, w) {
		a, _ := json.MarshalIndent(w, "", "  ")
		b, _ := json.MarshalIndent(g, "", "  ")
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)), FromFile: "inject", ToFile: "controller", Context: 3})
		t.Errorf("%T %s/%s: the controller's object differs from inject's:\n%s", got, got.GetNamespace(), got.GetName(), d)
	}
}

// normalize drops what the API server keeps of a write, the owner references and the status
// annotation; and the type meta, which typed reads do not fill.
func normalize(o client.Object) client.Object {
	o.SetResourceVersion("")
	o.SetManagedFields(nil)
	o.SetOwnerReferences(nil)
	o.SetCreationTimestamp(metav1.Time{})
	o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{})
	if a := o.GetAnnotations(); a != nil {
		delete(a, keys.AnnotationStatus)
		if len(a) == 0 {
			o.SetAnnotations(nil)
		}
	}
	if l := o.GetLabels(); l != nil && len(l) == 0 {
		o.SetLabels(nil)
	}
	return o
}

// typedDoc is a document of a stream: obj for the kinds the cluster is given (ConfigMap,
// StatefulSet, Deployment, Service), companion for the kinds the controller creates.
type typedDoc struct {
	head      metav1.TypeMeta
	raw       []byte
	obj       client.Object
	companion client.Object
}

// split cuts a stream as inject does, at its "---" lines, so that indexes match.
func split(t *testing.T, stream []byte) []*typedDoc {
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
	var docs []*typedDoc
	for _, raw := range append(parts, cur) {
		d := &typedDoc{raw: raw}
		if err := yaml.Unmarshal(raw, &d.head); err != nil {
			t.Fatal(err)
		}
		var obj client.Object
		companion := false
		switch d.head.APIVersion + "/" + d.head.Kind {
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "apps/v1/StatefulSet":
			obj = &appsv1.StatefulSet{}
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			obj, companion = &rbacv1.ClusterRoleBinding{}, true
		case "cert-manager.io/v1/Certificate":
			obj, companion = &cmv1.Certificate{}, true
		case "monitoring.coreos.com/v1/ServiceMonitor":
			obj, companion = &monitoringv1.ServiceMonitor{}, true
		case "monitoring.coreos.com/v1/PodMonitor":
			obj, companion = &monitoringv1.PodMonitor{}, true
		}
		if obj != nil {
			if err := yaml.Unmarshal(raw, obj); err != nil {
				t.Fatal(err)
			}
			if obj.GetNamespace() == "" && d.head.Kind != "ClusterRoleBinding" {
				obj.SetNamespace("default") // inject's default
			}
			if companion || obj.GetLabels()[keys.LabelManagedBy] == keys.ManagedByValue {
				d.companion = obj
			}
			if !companion {
				d.obj = obj
			}
		}
		docs = append(docs, d)
	}
	return docs
}

// bindsInOutput reports whether one of inject's companion bindings has the subject.
func bindsInOutput(out []*typedDoc, sub rbacv1.Subject) bool {
	for _, d := range out {
		if crb, ok := d.companion.(*rbacv1.ClusterRoleBinding); ok && slices.Contains(crb.Subjects, sub) {
			return true
		}
	}
	return false
}
