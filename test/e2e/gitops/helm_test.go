package gitops

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// helmCLI runs one helm binary against the control plane, with its directories under home.
type helmCLI struct {
	path string
	dir  string
	env  []string
}

func newHelm(t *testing.T, name, target string, extraEnv ...string) *helmCLI {
	t.Helper()
	p, err := framework.Tool(name, target)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, name)
	h := &helmCLI{path: p, dir: dir, env: append([]string{
		"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "data"),
		"KUBECONFIG=" + env.Kubeconfig,
	}, extraEnv...)}
	return h
}

func (h *helmCLI) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.path, args...)
	cmd.Env = append(os.Environ(), h.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(h.path), strings.Join(args, " "), err, out.String(), errOut.String())
	}
	t.Logf("%s %s: %s", filepath.Base(h.path), args[0], time.Since(start).Round(10*time.Millisecond))
	return out.String()
}

func eckChart(t *testing.T) string {
	t.Helper()
	chart, err := framework.ECKChart(eckVersion)
	if err != nil {
		t.Fatal(err)
	}
	return chart
}

// releaseLifecycle installs ECK's chart with the post-renderer, checks the release is
// secured, upgrades it with a changed value and the same post-renderer, and checks again.
func releaseLifecycle(t *testing.T, h *helmCLI, release, ns string, postRender []string) {
	t.Helper()
	chart := eckChart(t)
	common := append([]string{"--namespace", ns}, postRender...)
	h.run(t, append([]string{"install", release, chart, "--create-namespace", "--set", "installCRDs=false"}, common...)...)
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	assertSecured(t, ns, "")
	// Helm's record of the release holds what was applied: the secured objects and the
	// companions, so that an upgrade diffs against them and an uninstall removes them all.
	manifest := h.run(t, "get", "manifest", release, "--namespace", ns)
	for _, want := range []string{"kind: Certificate", "kind: ServiceMonitor", "metrics-guard.eck.dev/metrics-hash", "metrics-secure: true"} {
		if !strings.Contains(manifest, want) {
			t.Errorf("helm get manifest %s: no %q", release, want)
		}
	}

	h.run(t, append([]string{"upgrade", release, chart, "--reuse-values", "--set", "config.logVerbosity=2"}, common...)...)
	assertSecured(t, ns, "log-verbosity: 2")

	// An upgrade without the post-renderer installs what the chart renders: the operator is
	// open again (no guard runs here), which is why the README says to give every upgrade the
	// post-renderer. The next one with it secures it again.
	h.run(t, "upgrade", release, chart, "--reuse-values", "--namespace", ns)
	o := env.Operator(t, ns)
	if v, _ := compliance.Check(o.Op, o.Template, func(string) *corev1.ConfigMap { return o.ConfigMap }); v.Secured() {
		t.Errorf("after helm upgrade without the post-renderer: %s, want it not secured", v)
	} else {
		t.Logf("after helm upgrade without the post-renderer: %s", v)
	}
	h.run(t, append([]string{"upgrade", release, chart, "--reuse-values"}, common...)...)
	assertSecured(t, ns, "log-verbosity: 2")

	// The companions belong to the release: helm uninstall removes them with the rest (the
	// cluster-scoped binding is gone at once; there is no garbage collector here).
	binding := "eck-metrics-guard:" + ns + ":elastic-operator"
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: binding}, &rbacv1.ClusterRoleBinding{}); err != nil {
		t.Fatalf("the companion ClusterRoleBinding %s: %v", binding, err)
	}
	h.run(t, "uninstall", release, "--namespace", ns)
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: binding}, &rbacv1.ClusterRoleBinding{}); !apierrors.IsNotFound(err) {
		t.Errorf("the companion ClusterRoleBinding %s after helm uninstall: %v, want it gone", binding, err)
	}
}

// assertSecured judges the one ECK operator of ns as stored by the API server: the engine's
// verdict from its StatefulSet and ConfigMap is secured, with no finding, and its metrics
// Service reaches the metrics port. configHas, if set, must be in eck.yaml.
func assertSecured(t *testing.T, ns, configHas string) {
	t.Helper()
	o := env.Operator(t, ns)
	v, findings := compliance.Check(o.Op, o.Template, func(name string) *corev1.ConfigMap {
		if o.ConfigMap != nil && o.ConfigMap.Name == name {
			return o.ConfigMap
		}
		return nil
	})
	if !v.Secured() || len(findings) > 0 {
		t.Fatalf("%s %s/%s: %s, findings %v", o.Op.Kind, ns, o.Op.Name, v, findings)
	}
	var services corev1.ServiceList
	if err := env.Client.List(context.Background(), &services, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if f := compliance.Service(o.Op, v.Port, services.Items); len(f) > 0 {
		t.Errorf("metrics Service: %v", f)
	}
	if configHas != "" && !strings.Contains(o.ConfigMap.Data["eck.yaml"], configHas) {
		t.Errorf("ConfigMap %s: eck.yaml has no %q:\n%s", o.ConfigMap.Name, configHas, o.ConfigMap.Data["eck.yaml"])
	}
	t.Logf("%s %s/%s: %s", o.Op.Kind, ns, o.Op.Name, v)
}

// TestHelm3PostRenderer: Helm 3 runs the guard's own binary as --post-renderer, inject's
// flags as --post-renderer-args; no script, no plugin.
func TestHelm3PostRenderer(t *testing.T) {
	h := newHelm(t, "helm", "helm")
	var postRender []string
	for _, a := range []string{"inject", "-f", "-", "--issuer=metrics-ca", "--issuer-kind=ClusterIssuer", "--service-monitor"} {
		postRender = append(postRender, "--post-renderer-args", a)
	}
	releaseLifecycle(t, h, "eck-helm3", "eck-helm3", append([]string{"--post-renderer", guard}, postRender...))
}

// TestHelm4PostRendererPlugin: Helm 4 takes post-renderers only as plugins; the repository's
// config/helm-plugin is installed with `helm plugin install` and runs the guard's binary
// ($ECK_METRICS_GUARD here, eck-metrics-guard from $PATH otherwise).
func TestHelm4PostRendererPlugin(t *testing.T) {
	h := newHelm(t, "helm4", "helm4", "ECK_METRICS_GUARD="+guard)
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	h.run(t, "plugin", "install", filepath.Join(root, "config", "helm-plugin"))
	if out := h.run(t, "plugin", "list"); !strings.Contains(out, "eck-metrics-guard") || !strings.Contains(out, "postrenderer/v1") {
		t.Fatalf("helm plugin list:\n%s", out)
	}
	releaseLifecycle(t, h, "eck-helm4", "eck-helm4", []string{"--post-renderer", "eck-metrics-guard",
		"--post-renderer-args", "--issuer=metrics-ca", "--post-renderer-args", "--issuer-kind=ClusterIssuer", "--post-renderer-args", "--service-monitor"})
}
