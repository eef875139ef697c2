package packaging

import (
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

// TestRBACIsNarrow checks the guard's permissions: config/rbac/role.yaml (generated from the
// markers in internal/controller/rbac.go), config/selfmanaged/role.yaml and every role the
// chart and config/default install (with cert-manager or the self-managed certificate) grant
// nothing by wildcard, no Secret at all outside the guard's namespace (only the Role of the
// self-managed certificate, in the guard's namespace, may keep its Secret), never escalate or
// impersonate, and bind only named ClusterRoles. sar_test.go asks a real API server.
func TestRBACIsNarrow(t *testing.T) {
	role := into[rbacv1.ClusterRole](t, readObjectOfKind(t, "config/rbac/role.yaml", "ClusterRole"))
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	checkNarrow(t, "config/rbac/role.yaml", role.Rules, clusterSecretVerbs)
	checkNarrow(t, "config/rbac/role.yaml: Role", into[rbacv1.Role](t, readObjectOfKind(t, "config/rbac/role.yaml", "Role")).Rules, clusterSecretVerbs)
	checkNarrow(t, "config/selfmanaged/role.yaml", into[rbacv1.Role](t, readObjectOfKind(t, "config/selfmanaged/role.yaml", "Role")).Rules, roleSecretVerbs)
	checkNarrow(t, "config/selfmanaged/role.yaml: ClusterRole", into[rbacv1.ClusterRole](t, readObjectOfKind(t, "config/selfmanaged/role.yaml", "ClusterRole")).Rules, clusterSecretVerbs)

	for name, r := range map[string]*rendered{
		"chart":                       mustHelmTemplate(t, "--set", "serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true", "--set-json", `metricsReader.serviceAccounts=[{"name":"prometheus-k8s","namespace":"monitoring"}]`),
		"chart, self-managed":         mustHelmTemplate(t, "--set", "certManager.enabled=false"),
		"config/default":              kustomizeAllComponents(t),
		"config/default, selfmanaged": kustomizeSelfManaged(t),
	} {
		for _, o := range r.Objects {
			switch o.GetKind() {
			case "ClusterRole":
				checkNarrow(t, name+": ClusterRole "+o.GetName(), into[rbacv1.ClusterRole](t, o).Rules, clusterSecretVerbs)
			case "Role":
				if o.GetNamespace() != releaseNamespace {
					t.Errorf("%s: Role %s is in %q, not the guard's namespace", name, o.GetName(), o.GetNamespace())
				}
				checkNarrow(t, name+": Role "+o.GetName(), into[rbacv1.Role](t, o).Rules, roleSecretVerbs)
			case "ClusterRoleBinding":
				if ref := into[rbacv1.ClusterRoleBinding](t, o).RoleRef; r.find("ClusterRole", ref.Name) == nil {
					t.Errorf("%s: ClusterRoleBinding %s binds %s, which it does not install", name, o.GetName(), ref.Name)
				}
			}
		}
	}
}

// What the guard may do to Secrets: cluster-wide, nothing (whether a certificate exists comes
// from cert-manager's Certificate); in its own namespace
// (the Role of the self-managed certificate), also keep its certificate's Secret (cert-controller
// caches that namespace's Secrets and updates the one), but never create or delete any.
var (
	clusterSecretVerbs = []string{}
	roleSecretVerbs    = []string{"get", "list", "watch", "update"}
)

func checkNarrow(t *testing.T, where string, rules []rbacv1.PolicyRule, secretVerbs []string) {
	t.Helper()
	for i, r := range rules {
		for field, values := range map[string][]string{
			"apiGroups": r.APIGroups, "resources": r.Resources, "verbs": r.Verbs,
			"resourceNames": r.ResourceNames, "nonResourceURLs": r.NonResourceURLs,
		} {
			for _, v := range values {
				if strings.Contains(v, "*") || (field == "nonResourceURLs" && v != "/metrics") {
					t.Errorf("%s: rule %d: %s %q", where, i, field, v)
				}
			}
		}
		if slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "secrets") {
			for _, verb := range r.Verbs {
				if !slices.Contains(secretVerbs, verb) {
					t.Errorf("%s: rule %d: %q on secrets; allowed here: %v", where, i, verb, secretVerbs)
				}
			}
		}
		for _, verb := range []string{"escalate", "impersonate"} {
			if slices.Contains(r.Verbs, verb) {
				t.Errorf("%s: rule %d: %s", where, i, verb)
			}
		}
		if slices.Contains(r.Verbs, "bind") && len(r.ResourceNames) == 0 {
			t.Errorf("%s: rule %d: bind on any %v; it must name the roles", where, i, r.Resources)
		}
	}
}
