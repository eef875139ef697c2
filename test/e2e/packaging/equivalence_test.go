package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// TestChartEqualsKustomize checks that the chart with its defaults (as release
// eck-metrics-guard in the namespace eck-metrics-guard) and config/default install the same
// thing: the same objects (config/default adds the Namespace), the same webhooks, RBAC rules
// and CRDs, and the same pod, Services, certificate and disruption budget; and that the
// chart's optional ServiceMonitor and NetworkPolicy equal config/'s components.
func TestChartEqualsKustomize(t *testing.T) {
	chart := mustHelmTemplate(t)
	kust := kustomizeDefault(t)

	t.Run("objects", func(t *testing.T) {
		kustKeys := slices.DeleteFunc(kust.keys(), func(k string) bool { return strings.HasPrefix(k, "Namespace/") })
		equal(t, "kind/namespace/name of every object", chart.keys(), kustKeys)
	})

	t.Run("webhooks", func(t *testing.T) {
		c, k := chart.must(t, "MutatingWebhookConfiguration", "eck-metrics-guard"), kust.must(t, "MutatingWebhookConfiguration", "eck-metrics-guard")
		equal(t, "webhooks", c.Object["webhooks"], k.Object["webhooks"])
		equal(t, injectCAAnnotation, c.GetAnnotations()[injectCAAnnotation], k.GetAnnotations()[injectCAAnnotation])
		// And both are config/webhook/manifests.yaml's, with nothing changed by the defaults.
		source := readObject(t, "config/webhook/manifests.yaml")
		equal(t, "webhooks of config/webhook/manifests.yaml", source.Object["webhooks"], c.Object["webhooks"])
	})

	t.Run("RBAC rules", func(t *testing.T) {
		for _, name := range []string{"eck-metrics-guard", "eck-metrics-guard-metrics-reader"} {
			equal(t, "rules of ClusterRole "+name, chart.must(t, "ClusterRole", name).Object["rules"], kust.must(t, "ClusterRole", name).Object["rules"])
		}
		source := readObjectOfKind(t, "config/rbac/role.yaml", "ClusterRole")
		equal(t, "rules of config/rbac/role.yaml", source.Object["rules"], chart.must(t, "ClusterRole", "eck-metrics-guard").Object["rules"])
		// Leader election's Role, in the guard's namespace, and its binding.
		role := readObjectOfKind(t, "config/rbac/role.yaml", "Role")
		equal(t, "rules of the Role of config/rbac/role.yaml", role.Object["rules"], chart.must(t, "Role", "eck-metrics-guard").Object["rules"])
		equal(t, "rules of Role eck-metrics-guard", chart.must(t, "Role", "eck-metrics-guard").Object["rules"], kust.must(t, "Role", "eck-metrics-guard").Object["rules"])
		equal(t, "RoleBinding eck-metrics-guard", pick(chart.must(t, "RoleBinding", "eck-metrics-guard"), "roleRef", "subjects"), pick(kust.must(t, "RoleBinding", "eck-metrics-guard"), "roleRef", "subjects"))
		c, k := chart.must(t, "ClusterRoleBinding", "eck-metrics-guard"), kust.must(t, "ClusterRoleBinding", "eck-metrics-guard")
		equal(t, "ClusterRoleBinding eck-metrics-guard", pick(c, "roleRef", "subjects"), pick(k, "roleRef", "subjects"))
	})

	t.Run("CRDs", func(t *testing.T) {
		crds := func(r *rendered) map[string]any {
			out := map[string]any{}
			for _, o := range r.ofKind("CustomResourceDefinition") {
				out[o.GetName()] = o.Object["spec"]
			}
			return out
		}
		if len(crds(chart)) == 0 || len(crds(kust)) == 0 {
			t.Fatalf("CRDs rendered: %d by the chart, %d by kustomize; want the MetricsSecurityPolicy CRD in both", len(crds(chart)), len(crds(kust)))
		}
		equal(t, "CustomResourceDefinitions", crds(chart), crds(kust))
	})

	t.Run("workload", func(t *testing.T) {
		c, k := deploymentOf(t, chart), deploymentOf(t, kust)
		equal(t, "replicas", *c.Deployment.Spec.Replicas, *k.Deployment.Spec.Replicas)
		equal(t, "container", c.Container, k.Container)
		cs, ks := c.Deployment.Spec.Template.Spec, k.Deployment.Spec.Template.Spec
		equal(t, "pod securityContext", cs.SecurityContext, ks.SecurityContext)
		equal(t, "volumes", cs.Volumes, ks.Volumes)
		equal(t, "serviceAccountName", cs.ServiceAccountName, ks.ServiceAccountName)
		equal(t, "terminationGracePeriodSeconds", cs.TerminationGracePeriodSeconds, ks.TerminationGracePeriodSeconds)
		spread := func(in install) []string {
			var out []string
			for _, s := range in.Deployment.Spec.Template.Spec.TopologySpreadConstraints {
				out = append(out, fmt.Sprintf("%s %s maxSkew=%d", s.TopologyKey, s.WhenUnsatisfiable, s.MaxSkew))
			}
			return out
		}
		equal(t, "topologySpreadConstraints", spread(c), spread(k))
		for _, name := range []string{"eck-metrics-guard-webhook", "eck-metrics-guard-metrics"} {
			equal(t, "ports of Service "+name, chart.must(t, "Service", name).Object["spec"].(map[string]any)["ports"],
				kust.must(t, "Service", name).Object["spec"].(map[string]any)["ports"])
		}
		minAvailable := func(r *rendered) any {
			v, _, _ := unstructured.NestedFieldNoCopy(r.must(t, "PodDisruptionBudget", "eck-metrics-guard").Object, "spec", "minAvailable")
			return v
		}
		equal(t, "PodDisruptionBudget minAvailable", minAvailable(chart), minAvailable(kust))
	})

	t.Run("certificate", func(t *testing.T) {
		equal(t, "Certificate", chart.must(t, "Certificate", "eck-metrics-guard-serving-cert").Object["spec"],
			kust.must(t, "Certificate", "eck-metrics-guard-serving-cert").Object["spec"])
		equal(t, "Issuer", chart.must(t, "Issuer", "eck-metrics-guard-selfsigned").Object["spec"],
			kust.must(t, "Issuer", "eck-metrics-guard-selfsigned").Object["spec"])
	})

	t.Run("optional components", func(t *testing.T) {
		chartAll := mustHelmTemplate(t, "--set", "serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true",
			"--set-json", `metricsReader.serviceAccounts=[{"name":"prometheus-k8s","namespace":"monitoring"}]`)
		kustAll := kustomizeAllComponents(t)
		kustKeys := slices.DeleteFunc(kustAll.keys(), func(k string) bool { return strings.HasPrefix(k, "Namespace/") })
		equal(t, "kind/namespace/name of every object", chartAll.keys(), kustKeys)
		c, k := chartAll.must(t, "ServiceMonitor", "eck-metrics-guard"), kustAll.must(t, "ServiceMonitor", "eck-metrics-guard")
		endpoints := func(o *unstructured.Unstructured) any {
			eps, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
			for _, e := range eps {
				delete(e.(map[string]any), "scrapeTimeout") // the chart sets one; the component leaves Prometheus's default
			}
			return eps
		}
		equal(t, "ServiceMonitor endpoints", endpoints(c), endpoints(k))
		equal(t, "ServiceMonitor namespaceSelector", c.Object["spec"].(map[string]any)["namespaceSelector"], k.Object["spec"].(map[string]any)["namespaceSelector"])
		c, k = chartAll.must(t, "ClusterRoleBinding", "eck-metrics-guard-metrics-reader"), kustAll.must(t, "ClusterRoleBinding", "eck-metrics-guard-metrics-reader")
		equal(t, "scraper ClusterRoleBinding", pick(c, "roleRef", "subjects"), pick(k, "roleRef", "subjects"))
		equal(t, "NetworkPolicy ingress", chartAll.must(t, "NetworkPolicy", "eck-metrics-guard").Object["spec"].(map[string]any)["ingress"],
			kustAll.must(t, "NetworkPolicy", "eck-metrics-guard").Object["spec"].(map[string]any)["ingress"])
	})
}

// TestChartEqualsKustomizeSelfManaged checks that the chart with certManager.enabled=false and
// config/default switched to ../selfmanaged (instead of ../certmanager) install the same thing:
// the same objects, webhooks (no cert-manager annotation, no caBundle), pod, RBAC rules (the
// Role of the self-managed certificate included) and empty Secret.
func TestChartEqualsKustomizeSelfManaged(t *testing.T) {
	chart := mustHelmTemplate(t, "--set", "certManager.enabled=false")
	kust := kustomizeSelfManaged(t)

	t.Run("objects", func(t *testing.T) {
		kustKeys := slices.DeleteFunc(kust.keys(), func(k string) bool { return strings.HasPrefix(k, "Namespace/") })
		equal(t, "kind/namespace/name of every object", chart.keys(), kustKeys)
	})
	t.Run("webhooks", func(t *testing.T) {
		c, k := chart.must(t, "MutatingWebhookConfiguration", "eck-metrics-guard"), kust.must(t, "MutatingWebhookConfiguration", "eck-metrics-guard")
		equal(t, "webhooks", c.Object["webhooks"], k.Object["webhooks"])
		equal(t, injectCAAnnotation, c.GetAnnotations()[injectCAAnnotation], k.GetAnnotations()[injectCAAnnotation])
	})
	t.Run("workload", func(t *testing.T) {
		c, k := deploymentOf(t, chart), deploymentOf(t, kust)
		equal(t, "container", c.Container, k.Container)
		equal(t, "volumes", c.Deployment.Spec.Template.Spec.Volumes, k.Deployment.Spec.Template.Spec.Volumes)
		equal(t, "serviceAccountName", c.Deployment.Spec.Template.Spec.ServiceAccountName, k.Deployment.Spec.Template.Spec.ServiceAccountName)
	})
	t.Run("RBAC rules", func(t *testing.T) {
		equal(t, "rules of ClusterRole eck-metrics-guard", chart.must(t, "ClusterRole", "eck-metrics-guard").Object["rules"],
			kust.must(t, "ClusterRole", "eck-metrics-guard").Object["rules"])
		const role = "eck-metrics-guard-self-managed-cert"
		equal(t, "rules of Role "+role, chart.must(t, "Role", role).Object["rules"], kust.must(t, "Role", role).Object["rules"])
		source := readObjectOfKind(t, "config/selfmanaged/role.yaml", "Role")
		equal(t, "rules of config/selfmanaged/role.yaml", source.Object["rules"], chart.must(t, "Role", role).Object["rules"])
		equal(t, "RoleBinding "+role, pick(chart.must(t, "RoleBinding", role), "roleRef", "subjects"), pick(kust.must(t, "RoleBinding", role), "roleRef", "subjects"))
		// The webhook configuration's update, by name, in this mode only.
		cluster := readObjectOfKind(t, "config/selfmanaged/role.yaml", "ClusterRole")
		equal(t, "ClusterRole rules of config/selfmanaged/role.yaml", cluster.Object["rules"], chart.must(t, "ClusterRole", role).Object["rules"])
		equal(t, "rules of ClusterRole "+role, chart.must(t, "ClusterRole", role).Object["rules"], kust.must(t, "ClusterRole", role).Object["rules"])
		equal(t, "ClusterRoleBinding "+role, pick(chart.must(t, "ClusterRoleBinding", role), "roleRef", "subjects"), pick(kust.must(t, "ClusterRoleBinding", role), "roleRef", "subjects"))
	})
	t.Run("Secret", func(t *testing.T) {
		c, k := chart.must(t, "Secret", "eck-metrics-guard-webhook-tls"), kust.must(t, "Secret", "eck-metrics-guard-webhook-tls")
		equal(t, "Secret", pick(c, "type", "data", "stringData"), pick(k, "type", "data", "stringData"))
	})
}

// pick returns the fields of o's top level.
func pick(o *unstructured.Unstructured, fields ...string) map[string]any {
	out := map[string]any{}
	for _, f := range fields {
		out[f] = o.Object[f]
	}
	return out
}

// readObjectOfKind reads the one object of a kind in a repository file of several.
func readObjectOfKind(t *testing.T, path, kind string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, path))
	if err != nil {
		t.Fatal(err)
	}
	objects, err := parseObjects(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var found []*unstructured.Unstructured
	for _, o := range objects {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d objects of kind %s, want 1", path, len(found), kind)
	}
	return found[0]
}

// readObject reads the one object of a repository file.
func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, path))
	if err != nil {
		t.Fatal(err)
	}
	objects, err := parseObjects(data)
	if err != nil || len(objects) != 1 {
		t.Fatalf("%s: %d objects, %v", path, len(objects), err)
	}
	return objects[0]
}

// equal fails the test with a diff of the YAML of chart (from the chart) and kust (the other
// side) unless they are deeply equal.
func equal(t *testing.T, what string, chart, kust any) {
	t.Helper()
	if reflect.DeepEqual(chart, kust) {
		return
	}
	a, _ := yaml.Marshal(chart)
	b, _ := yaml.Marshal(kust)
	if string(a) == string(b) {
		return // equal up to types (int64 and float64 of the same number)
	}
	diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)),
		FromFile: "chart", ToFile: "other", Context: 3,
	})
	t.Errorf("%s differ:\n%s", what, diff)
}
