package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestNamespaceScoped runs a second guard, namespace-scoped (--namespaces, the chart's
// watchNamespaces), with exactly the RBAC the chart renders for it (impersonating its
// ServiceAccount: Roles in the watched namespace, no cluster-wide rule on namespaced
// objects), its controller on. An operator in the watched namespace is secured by it (status,
// Service, the ServiceAccount in its auth-delegator binding); one in another opted-in
// namespace is not touched by it. (This suite's own guard serves the webhook, controller off,
// so both operators are mutated on admission; only the controller writes the status.)
func TestNamespaceScoped(t *testing.T) {
	helm := filepath.Join(repo, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatal("bin/helm is not built: run make helm")
	}
	ctx := context.Background()
	// A Secret of the user's: without a certificate source the operator is not secured (ECK
	// would serve a certificate it makes in memory), and the status says so.
	opted := map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "metrics-tls"}
	watched := env.Namespace(t, "e2e-watched", opted, nil)
	other := env.Namespace(t, "e2e-unwatched", opted, nil)
	guardNS := env.Namespace(t, "e2e-nsguard", nil, map[string]string{"metrics-guard.eck.dev/exclude": "true"})
	const release = "nsguard"
	fullname := release + "-eck-metrics-guard"

	// The chart's RBAC for the release, namespace-scoped.
	cmd := exec.Command(helm, "template", release, filepath.Join(repo, "charts", "eck-metrics-guard"), "--namespace", guardNS,
		"--set-json", fmt.Sprintf(`watchNamespaces=[%q]`, watched))
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	for _, doc := range strings.Split(string(out), "\n---") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains([]string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, u.GetKind()) {
			continue
		}
		if err := env.Client.Create(ctx, u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), u) })
	}

	wp, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	o := &app.ServerOptions{}
	fs := pflag.NewFlagSet("eck-metrics-guard", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{
		"--namespaces=" + watched, "--auth-delegator-binding=" + fullname + ":auth-delegator", "--service-monitor=false",
		"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", wp), "--webhook-cert-dir=" + env.Environment.WebhookInstallOptions.LocalServingCertDir,
	}); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + guardNS + ":" + fullname,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + guardNS, "system:authenticated"}}
	mgr, err := app.NewManagerFor(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the namespace-scoped guard: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the namespace-scoped guard did not stop")
		}
	})
	syncCtx, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("the namespace-scoped guard's cache did not sync with its RBAC")
	}

	for _, ns := range []string{watched, other} {
		env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	}
	framework.EventuallyWithin(t, "the watched operator to be secured by the namespace-scoped guard", time.Minute, func() (bool, error) {
		return env.Operator(t, watched).Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	op := env.Operator(t, watched)
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: watched, Name: op.Op.Name + "-metrics-guard"}, &corev1.Service{}); err != nil {
		t.Errorf("no metrics Service in the watched namespace: %v", err)
	}
	binding := &rbacv1.ClusterRoleBinding{}
	framework.Eventually(t, "the watched operator's ServiceAccount in the binding", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Name: fullname + ":auth-delegator"}, binding)
		return err == nil && slices.Contains(binding.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: op.Op.ServiceAccount, Namespace: watched}), client.IgnoreNotFound(err)
	})

	// The other namespace: nothing of the namespace-scoped guard's.
	time.Sleep(2 * time.Second)
	if s := env.Operator(t, other).Object.GetAnnotations()[keys.AnnotationStatus]; s != "" {
		t.Errorf("the unwatched operator has status %q: a controller touched it", s)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: other, Name: op.Op.Name + "-metrics-guard"}, &corev1.Service{}); !apierrors.IsNotFound(err) {
		t.Errorf("metrics Service in the unwatched namespace: %v, want none", err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(binding), binding); err != nil {
		t.Fatal(err)
	}
	for _, s := range binding.Subjects {
		if s.Namespace != watched {
			t.Errorf("binding subject %s/%s is not of the watched namespace", s.Namespace, s.Name)
		}
	}
}
