package packaging

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// grant is one line of the allow-list: what the guard's ServiceAccount may do. Namespace ""
// means in every namespace (or cluster-scoped); names nil means any name.
type grant struct {
	group, resource string
	verbs           []string
	namespace       string
	names           []string
}

// allowList is every permission the guard needs, as README.md's "Permissions, and why" lists
// them, for a release named release in namespace ns. Anything else a SubjectAccessReview
// allows fails TestRBACAllowList; anything here it denies fails it too. With watched (the
// chart's watchNamespaces, one namespace here), the rules on namespaced objects hold in that
// namespace only.
func allowList(release, ns string, selfManaged bool, watched string) []grant {
	read := []string{"get", "list", "watch"}
	binding := release + ":auth-delegator"
	g := []grant{
		{"apps", "statefulsets", append(read, "patch"), "", nil},
		{"apps", "deployments", append(read, "patch"), "", nil},
		{"", "configmaps", append(read, "patch"), "", nil},
		{"", "services", append(read, "create", "patch"), "", nil},
		{"", "namespaces", read, "", nil},
		{"events.k8s.io", "events", []string{"create", "patch"}, "", nil},
		{"rbac.authorization.k8s.io", "clusterrolebindings", []string{"create"}, "", nil},
		{"rbac.authorization.k8s.io", "clusterrolebindings", append(read, "update", "patch", "delete"), "", []string{binding}},
		{"rbac.authorization.k8s.io", "clusterroles", []string{"bind"}, "", []string{"system:auth-delegator"}},
		{"cert-manager.io", "certificates", append(read, "create", "patch"), "", nil},
		{"monitoring.coreos.com", "servicemonitors", append(read, "create", "patch"), "", nil},
		{"monitoring.coreos.com", "podmonitors", append(read, "create", "patch"), "", nil},
		{"openreports.io", "reports", []string{"list", "create"}, "", nil},
		{"openreports.io", "reports", []string{"patch", "delete"}, "", []string{"eck-metrics-guard"}},
		{"authentication.k8s.io", "tokenreviews", []string{"create"}, "", nil},
		{"authorization.k8s.io", "subjectaccessreviews", []string{"create"}, "", nil},
		{"metrics-guard.eck.dev", "metricssecuritypolicies", read, "", nil},
		{"metrics-guard.eck.dev", "metricssecuritypolicies/status", []string{"get", "update", "patch"}, "", nil},
		// Leader election, in the guard's namespace only.
		{"coordination.k8s.io", "leases", []string{"create"}, ns, nil},
		{"coordination.k8s.io", "leases", []string{"get", "update", "patch"}, ns, []string{"eck-metrics-guard.metrics-guard.eck.dev"}},
		{"", "events", []string{"create", "patch"}, ns, nil},
	}
	if watched != "" {
		for i := range g {
			if slices.Contains([]string{"statefulsets", "deployments", "configmaps", "services", "events", "certificates", "servicemonitors", "podmonitors", "reports"}, g[i].resource) && g[i].namespace == "" {
				g[i].namespace = watched
			}
		}
	}
	if selfManaged {
		g = append(g,
			grant{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", read, "", nil},
			grant{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", []string{"update"}, "", []string{release}},
			grant{"", "secrets", append(read, "update"), ns, nil},
		)
	}
	return g
}

// probe is one SubjectAccessReview.
type probe struct {
	group, resource, verb, namespace, name string
}

func (p probe) String() string {
	where := "cluster-wide"
	if p.namespace != "" {
		where = "in " + p.namespace
	}
	name := ""
	if p.name != "" {
		name = " " + p.name
	}
	return fmt.Sprintf("%s %s.%s%s %s", p.verb, p.resource, p.group, name, where)
}

func (g grant) allows(p probe) bool {
	return g.group == p.group && g.resource == p.resource && slices.Contains(g.verbs, p.verb) &&
		(g.namespace == "" || g.namespace == p.namespace) && (g.names == nil || slices.Contains(g.names, p.name))
}

// sensitive are resources the guard must never get more of than the allow-list: what an
// attacker holding its token would want.
var sensitive = []probe{
	{group: "", resource: "secrets"}, {group: "", resource: "pods"}, {group: "", resource: "pods/exec"},
	{group: "", resource: "serviceaccounts"}, {group: "", resource: "serviceaccounts/token"}, {group: "", resource: "nodes"},
	{group: "", resource: "namespaces"}, {group: "", resource: "configmaps"}, {group: "", resource: "services"}, {group: "", resource: "events"},
	{group: "apps", resource: "daemonsets"}, {group: "apps", resource: "statefulsets"}, {group: "apps", resource: "deployments"},
	{group: "rbac.authorization.k8s.io", resource: "clusterroles"}, {group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
	{group: "rbac.authorization.k8s.io", resource: "roles"}, {group: "rbac.authorization.k8s.io", resource: "rolebindings"},
	{group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"},
	{group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
	{group: "admissionregistration.k8s.io", resource: "validatingadmissionpolicies"},
	{group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
	{group: "coordination.k8s.io", resource: "leases"}, {group: "certificates.k8s.io", resource: "certificatesigningrequests"},
	{group: "", resource: "users"}, {group: "", resource: "groups"},
}

// names probed besides "" and those the rules name: another object's, and those of
// issue 11's findings.
var otherNames = []string{"someone-elses", "system:basic-user", "cluster-admin", "kube-controller-manager", "eck-metrics-guard:other:op", "eck-metrics-guard-other"}

var probeVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "bind", "escalate", "impersonate"}

// TestRBACAllowList installs the chart's RBAC (with cert-manager, with the self-managed
// certificate, and namespace-scoped with watchNamespaces, as three releases with their own
// names and namespaces) into a real API server,
// walks every group, resource and name the rendered rules mention, and the resources an
// attacker would want, with every verb, cluster-wide, in the guard's namespace, in kube-system
// and in a tenant's namespace, and asks the API server with SubjectAccessReviews whether the
// guard's ServiceAccount may: any yes outside the allow-list fails, and so does a no inside it.
// Then server-side dry runs, impersonating the ServiceAccount, repeat issue 11's findings.
func TestRBACAllowList(t *testing.T) {
	env := controlPlane(t)
	for _, tc := range []struct {
		release, namespace string
		selfManaged        bool
		watched            string
		args               []string
	}{
		{"sar-cm", "sar-cm", false, "", nil},
		{"sar-sm", "sar-sm", true, "", []string{"--set", "certManager.enabled=false"}},
		// The namespace-scoped install: the tenant's namespace is the one watched.
		{"sar-ns", "sar-ns", false, "sar-tenant-sar-ns", []string{"--set-json", `watchNamespaces=["sar-tenant-sar-ns"]`}},
	} {
		t.Run(tc.release, func(t *testing.T) {
			ctx := context.Background()
			all := append([]string{"template", tc.release, chartDir(), "--namespace", tc.namespace, "--kube-version", kubeVersion(t)}, tc.args...)
			stdout, stderr, err := runHelm(t, all...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr)
			}
			r := newRendered(t, []byte(stdout))
			fullname := tc.release + "-eck-metrics-guard"
			sa := fullname
			for _, ns := range []string{tc.namespace, "sar-tenant-" + tc.release} {
				nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
				if err := env.Client.Create(ctx, nsObj); err != nil && !apierrors.IsAlreadyExists(err) {
					t.Fatal(err)
				}
			}
			var rules []rbacv1.PolicyRule
			for _, o := range r.Objects {
				switch o.GetKind() {
				case "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding":
				default:
					continue
				}
				switch o.GetKind() {
				case "ClusterRole":
					rules = append(rules, into[rbacv1.ClusterRole](t, o).Rules...)
				case "Role":
					rules = append(rules, into[rbacv1.Role](t, o).Rules...)
				}
				createOrFail(t, env, o)
			}
			// The allow-list uses the release's names; the guard's ServiceAccount is <release>-eck-metrics-guard.
			allowed := allowList(fullname, tc.namespace, tc.selfManaged, tc.watched)

			probes := walk(rules, tc.namespace, "sar-tenant-"+tc.release)
			start := time.Now()
			answers := review(t, env.Clientset, tc.namespace, sa, probes)
			t.Logf("%d SubjectAccessReviews in %s, %d allowed", len(probes), time.Since(start).Round(time.Millisecond), count(answers))

			var extra []string
			for p, yes := range answers {
				if yes && !slices.ContainsFunc(allowed, func(g grant) bool { return g.allows(p) }) {
					extra = append(extra, p.String())
				}
			}
			sort.Strings(extra)
			for _, e := range extra {
				t.Errorf("allowed, but not in the allow-list: %s", e)
			}
			// Every grant of the allow-list is needed, and is there.
			var needed []probe
			for _, g := range allowed {
				for _, verb := range g.verbs {
					name := ""
					if g.names != nil {
						name = g.names[0]
					}
					needed = append(needed, probe{g.group, g.resource, verb, g.namespace, name})
				}
			}
			for p, yes := range review(t, env.Clientset, tc.namespace, sa, needed) {
				if !yes {
					t.Errorf("in the allow-list, but denied: %s", p)
				}
			}

			dryRuns(t, env, tc.namespace, sa, tc.release, tc.watched != "")
		})
	}
}

// walk returns the probes: every group/resource of the rules and of sensitive, every verb,
// with no name, the names the rules give and otherNames, cluster-wide and in the guard's,
// kube-system's and a tenant's namespace.
func walk(rules []rbacv1.PolicyRule, guardNS, tenantNS string) []probe {
	type gr struct{ group, resource string }
	seen := map[gr]bool{}
	var resources []gr
	add := func(g, r string) {
		if !seen[gr{g, r}] {
			seen[gr{g, r}] = true
			resources = append(resources, gr{g, r})
		}
	}
	names := append([]string{""}, otherNames...)
	for _, rule := range rules {
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				add(g, r)
			}
		}
		for _, n := range rule.ResourceNames {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, p := range sensitive {
		add(p.group, p.resource)
	}
	var out []probe
	for _, r := range resources {
		for _, verb := range probeVerbs {
			for _, ns := range []string{"", guardNS, "kube-system", tenantNS} {
				for _, name := range names {
					out = append(out, probe{r.group, r.resource, verb, ns, name})
				}
			}
		}
	}
	return out
}

// review asks the API server about every probe for the ServiceAccount ns/sa, with the groups
// a ServiceAccount token carries, eight at a time.
func review(t *testing.T, cs kubernetes.Interface, ns, sa string, probes []probe) map[probe]bool {
	t.Helper()
	user := "system:serviceaccount:" + ns + ":" + sa
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	out := make(map[probe]bool, len(probes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan probe)
	errs := make(chan error, 1)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				resource, sub, _ := strings.Cut(p.resource, "/")
				sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User: user, Groups: groups,
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Group: p.group, Resource: resource, Subresource: sub, Verb: p.verb, Namespace: p.namespace, Name: p.name,
					},
				}}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
				cancel()
				if err != nil {
					select {
					case errs <- fmt.Errorf("%s: %w", p, err):
					default:
					}
					continue
				}
				mu.Lock()
				out[p] = res.Status.Allowed
				mu.Unlock()
			}
		}()
	}
	for _, p := range probes {
		work <- p
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return out
}

func count(m map[probe]bool) int {
	n := 0
	for _, yes := range m {
		if yes {
			n++
		}
	}
	return n
}

func createOrFail(t *testing.T, env *framework.Env, o *unstructured.Unstructured) {
	t.Helper()
	obj := o.DeepCopy()
	if err := env.Client.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
}

// dryRuns repeats issue 11's findings as the guard's ServiceAccount (impersonated), with
// server-side dry runs: each must be forbidden. And what the guard does need is not.
func dryRuns(t *testing.T, env *framework.Env, ns, sa, release string, namespaceScoped bool) {
	t.Helper()
	ctx := context.Background()
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + sa,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	ctrllog.SetLogger(logr.Discard()) // the impersonating client's; nothing of this suite logs through it
	guard, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	dry := client.DryRunAll

	// Objects to attack, made by the admin.
	other := &unstructured.Unstructured{}
	other.SetAPIVersion("admissionregistration.k8s.io/v1")
	other.SetKind("MutatingWebhookConfiguration")
	other.SetName("sar-someone-elses-" + release)
	createOrFail(t, env, other)
	lease := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"holderIdentity": "kcm"}}}
	lease.SetAPIVersion("coordination.k8s.io/v1")
	lease.SetKind("Lease")
	lease.SetNamespace("kube-system")
	lease.SetName("sar-kube-controller-manager-" + release)
	createOrFail(t, env, lease)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sar-secret-" + release, Namespace: "kube-system"}, StringData: map[string]string{"token": "x"}}
	if err := env.Client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, secret) })

	forbidden := map[string]func() error{
		"update another MutatingWebhookConfiguration": func() error {
			o := other.DeepCopy()
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			o.SetLabels(map[string]string{"x": "y"})
			return guard.Update(ctx, o, dry)
		},
		"delete ClusterRoleBinding system:basic-user": func() error {
			return guard.Delete(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "system:basic-user"}}, dry)
		},
		"patch ClusterRoleBinding system:basic-user": func() error {
			return guard.Patch(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "system:basic-user"}},
				client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`)), dry)
		},
		"update a kube-system Lease": func() error {
			o := lease.DeepCopy()
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			_ = unstructured.SetNestedField(o.Object, "guard", "spec", "holderIdentity")
			return guard.Update(ctx, o, dry)
		},
		"delete a kube-system Lease": func() error { return guard.Delete(ctx, lease.DeepCopy(), dry) },
		"get a kube-system Secret":   func() error { return guard.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}) },
		"create a ClusterRoleBinding to cluster-admin": func() error {
			return guard.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "sar-escalate-" + release},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "x", Namespace: "default"}}}, dry)
		},
	}
	if namespaceScoped {
		// Namespace-scoped, kube-system's workloads and ConfigMaps are out of reach too.
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "sar-config-" + release, Namespace: "kube-system"}}
		if err := env.Client.Create(ctx, cm); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, cm) })
		forbidden["patch a kube-system ConfigMap"] = func() error {
			return guard.Patch(ctx, cm.DeepCopy(), client.RawPatch("application/merge-patch+json", []byte(`{"data":{"x":"y"}}`)), dry)
		}
		forbidden["list kube-system StatefulSets"] = func() error {
			return guard.List(ctx, &appsv1.StatefulSetList{}, client.InNamespace("kube-system"))
		}
	}
	names := make([]string, 0, len(forbidden))
	for n := range forbidden {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := forbidden[n](); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the guard: %v, want Forbidden", n, err)
		}
	}
	// What the guard does: create its one binding to system:auth-delegator (dry run).
	own := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: release + "-eck-metrics-guard:auth-delegator"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "elastic-operator", Namespace: "elastic-system"}}}
	if err := guard.Create(ctx, own, dry); err != nil {
		t.Errorf("create of its own auth-delegator binding as the guard: %v", err)
	}
}
