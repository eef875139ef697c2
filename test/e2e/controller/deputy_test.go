package controller

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/audit"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// waitForSubject waits until the one auth-delegator binding has (want) or has not (!want)
// the ServiceAccount ns/sa among its subjects.
func waitForSubject(t *testing.T, ns, sa string, want bool) {
	t.Helper()
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}
	framework.Eventually(t, "ServiceAccount "+ns+"/"+sa+" in the auth-delegator binding: "+map[bool]string{true: "present", false: "absent"}[want], func() (bool, error) {
		crb := &rbacv1.ClusterRoleBinding{}
		err := env.Client.Get(context.Background(), client.ObjectKey{Name: controller.DefaultBindingName}, crb)
		if apierrors.IsNotFound(err) {
			return !want, nil
		}
		if err != nil {
			return false, err
		}
		if crb.RoleRef.Name != "system:auth-delegator" {
			t.Fatalf("binding %s binds %s", crb.Name, crb.RoleRef.Name)
		}
		return slices.Contains(crb.Subjects, subject) == want, nil
	})
}

// TestNoConfusedDeputy is the attack of issue 11: a tenant allowed to write only StatefulSets
// and ConfigMaps in a namespace that did not opt in writes an ECK-looking StatefulSet with
// metrics-guard.eck.dev/secure: "true" and a ServiceAccount of their own. The guard secures the
// tenant's own objects, but grants nothing: the ServiceAccount never joins the
// system:auth-delegator binding, no Service (which the tenant cannot create) appears, and the
// StatefulSet's status and a Warning Event say what the namespace's owner must do. When the
// owner annotates the namespace, the grant and the Service follow; when the operator is
// deleted, its ServiceAccount leaves the binding.
func TestNoConfusedDeputy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-deputy", nil, nil)
	tenant, app := "tenant", "tenant-app"
	for _, sa := range []string{tenant, app} {
		if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "tenant", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: tenant, Namespace: ns}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig, err := env.ServiceAccountKubeconfig(ctx, ns, tenant)
	if err != nil {
		t.Fatal(err)
	}

	// The tenant's manifest: the ConfigMap and the StatefulSet of Elastic's, opted in on the
	// StatefulSet, running as the tenant's ServiceAccount.
	path := framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		switch {
		case strings.Contains(doc, "\nkind: ConfigMap\n"):
			docs = append(docs, doc)
		case strings.Contains(doc, "\nkind: StatefulSet\n"):
			doc = strings.Replace(doc, "  labels:\n    control-plane: elastic-operator\n", "  annotations:\n    "+keys.AnnotationSecure+": \"true\"\n  labels:\n    control-plane: elastic-operator\n", 1)
			doc = strings.Replace(doc, "serviceAccountName: elastic-operator", "serviceAccountName: "+app, 1)
			docs = append(docs, doc)
		}
	}
	if len(docs) != 2 || !strings.Contains(docs[1], keys.AnnotationSecure) || !strings.Contains(docs[1], app) {
		t.Fatalf("could not make the tenant's manifest from %s", path)
	}
	tenantManifest := filepath.Join(t.TempDir(), "tenant.yaml")
	if err := os.WriteFile(tenantManifest, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// The tenant cannot create a Service themselves.
	if _, _, err := env.Kubectl(t, "--kubeconfig", kubeconfig, "-n", ns, "create", "service", "clusterip", "probe", "--tcp=8081:8081"); err == nil {
		t.Fatal("the tenant could create a Service: the test's premise is wrong")
	}
	env.MustKubectl(t, "--kubeconfig", kubeconfig, "apply", "-f", tenantManifest)

	// The operator's own objects are secured; the status and an Event say what is missing.
	framework.Eventually(t, "the status to name what the namespace's owner must do", func() (bool, error) {
		s := env.Operator(t, ns).Object.GetAnnotations()[keys.AnnotationStatus]
		return strings.Contains(s, "owner of namespace "+ns+" must annotate it "+keys.AnnotationSecure+"=true"), nil
	})
	framework.Eventually(t, "a NotEntitled Warning Event", func() (bool, error) {
		out, _ := env.MustKubectl(t, "get", "events.events.k8s.io", "-n", ns, "-o", `jsonpath={range .items[*]}{.type}/{.reason}{"\n"}{end}`)
		return strings.Contains(out, "Warning/NotEntitled"), nil
	})
	o := env.Operator(t, ns)
	if o.Op.ServiceAccount != app {
		t.Fatalf("operator runs as %s, want %s", o.Op.ServiceAccount, app)
	}
	if !strings.Contains(o.ConfigMap.Data["eck.yaml"], "metrics-secure: true") {
		t.Errorf("the operator's own eck.yaml is not secured:\n%s", o.ConfigMap.Data["eck.yaml"])
	}
	// Long enough for the binding controller to have run on the StatefulSet (it reconciles
	// every operator on each event); then nothing may have been granted or created.
	time.Sleep(3 * time.Second)
	waitForSubject(t, ns, app, false)
	var services corev1.ServiceList
	if err := env.Client.List(ctx, &services, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(services.Items) != 0 {
		t.Errorf("%d Services created for a workload-only opt-in: %s", len(services.Items), services.Items[0].Name)
	}
	// Nor a policy report (the OpenReports CRDs are installed in this suite).
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: audit.ReportName}, &orv1alpha1.Report{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Report created for a workload-only opt-in: %v", err)
	}
	allowed := func(verb, resource string) bool {
		out, _, _ := env.Kubectl(t, "auth", "can-i", "--as=system:serviceaccount:"+ns+":"+app, verb, resource)
		return strings.TrimSpace(out) == "yes"
	}
	if allowed("create", "tokenreviews.authentication.k8s.io") || allowed("create", "subjectaccessreviews.authorization.k8s.io") {
		t.Error("the tenant's ServiceAccount can create TokenReviews or SubjectAccessReviews")
	}

	// The namespace's owner opts in: the grant and the Service follow.
	env.MustKubectl(t, "annotate", "namespace", ns, keys.AnnotationSecure+"=true")
	waitForSubject(t, ns, app, true)
	framework.Eventually(t, "the metrics Service", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Op.Name + "-metrics-guard"}, &corev1.Service{})
		return err == nil, client.IgnoreNotFound(err)
	})
	if !allowed("create", "tokenreviews.authentication.k8s.io") {
		t.Error("after the namespace's opt-in, the operator's ServiceAccount cannot create TokenReviews")
	}

	// The operator goes: its ServiceAccount leaves the binding.
	env.MustKubectl(t, "--kubeconfig", kubeconfig, "-n", ns, "delete", "statefulset", o.Op.Name)
	waitForSubject(t, ns, app, false)
}

// noOperators is a cluster.Lookup of a cluster without ECK operators.
type noOperators struct{}

func (noOperators) Namespace(context.Context, string) (cluster.Namespace, error) {
	return cluster.Namespace{}, nil
}
func (noOperators) ConfigMap(context.Context, string, string) (*corev1.ConfigMap, error) {
	return nil, nil
}
func (noOperators) Operators(context.Context, string) ([]cluster.Workload, error) { return nil, nil }

// TestBindingKeptByTheGuard: the auth-delegator binding belongs to the guard. Its reconciler,
// on a binding of its own name against the real API server (not the running guard's, which
// would race the test): a subject added by hand is removed (written back with the
// resourceVersion read), and a binding with another roleRef (which cannot be updated) is
// deleted, with the uid and resourceVersion read as preconditions, and made again to
// system:auth-delegator.
func TestBindingKeptByTheGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := "e2e-binding-kept"
	r := &controller.BindingReconciler{Name: name, Client: env.Client, Lookup: noOperators{}}
	intruder := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "intruder", Namespace: "default"}
	get := func() *rbacv1.ClusterRoleBinding {
		crb := &rbacv1.ClusterRoleBinding{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, crb); err != nil {
			t.Fatal(err)
		}
		return crb
	}
	run := func() {
		if _, err := r.Reconcile(ctx, reconcile.Request{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})

	run() // creates it, with no subject
	crb := get()
	if crb.RoleRef.Name != "system:auth-delegator" || len(crb.Subjects) != 0 {
		t.Fatalf("created %+v %v", crb.RoleRef, crb.Subjects)
	}
	crb.Subjects = append(crb.Subjects, intruder)
	if err := env.Client.Update(ctx, crb); err != nil {
		t.Fatal(err)
	}
	run()
	if got := get().Subjects; len(got) != 0 {
		t.Errorf("after a reconcile the hand-added subject is still there: %v", got)
	}

	if err := env.Client.Delete(ctx, get()); err != nil {
		t.Fatal(err)
	}
	view := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{intruder}}
	if err := env.Client.Create(ctx, view); err != nil {
		t.Fatal(err)
	}
	run() // deletes it
	run() // makes it again
	if crb := get(); crb.RoleRef.Name != "system:auth-delegator" || slices.Contains(crb.Subjects, intruder) || crb.UID == view.UID {
		t.Errorf("the binding to view was not replaced: %+v %v", crb.RoleRef, crb.Subjects)
	}
}
