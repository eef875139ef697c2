// Package leastprivilege runs the guard against a real API server as its own ServiceAccount,
// with exactly the RBAC that config/rbac installs (impersonated: the API server authorizes
// every request of the guard against those rules), and checks that it still does its whole
// job: cache, webhook, controller, companions, the auth-delegator binding, policy status,
// leader election and its own metrics endpoint. test/e2e/packaging/sar_test.go proves the
// other half: that the rules grant nothing beyond the allow-list.
package leastprivilege

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

const (
	guardNamespace = "eck-metrics-guard"
	guardSA        = "eck-metrics-guard"
)

var (
	env *framework.Env
	// metricsAddr is the guard's metrics endpoint.
	metricsAddr string
)

func TestMain(m *testing.M) {
	opts, err := options()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(framework.RunSuite(m, opts, &env, func(e *framework.Env) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := framework.StartCertManager(ctx, e); err != nil {
			return err
		}
		if err := installRBAC(ctx, e); err != nil {
			return err
		}
		return startGuardAsItself(e)
	}))
}

func options() (framework.Options, error) {
	repo, err := framework.RepoRoot()
	if err != nil {
		return framework.Options{}, err
	}
	var crds []string
	for _, find := range []func() (string, error){framework.CertManagerCRDs, framework.ServiceMonitorCRD} {
		path, err := find()
		if err != nil {
			return framework.Options{}, err
		}
		crds = append(crds, path)
	}
	crds = append(crds, filepath.Join(repo, "config", "crd", "bases"))
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		return framework.Options{}, err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmv1.AddToScheme, monitoringv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return framework.Options{}, err
		}
	}
	return framework.Options{
		ControllerManager:     true,
		CRDDirectoryPaths:     crds,
		Scheme:                scheme,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}},
	}, nil
}

// installRBAC creates the guard's namespace and ServiceAccount and every object of
// config/rbac (the generated ClusterRole and Role, their bindings), as kustomize would.
func installRBAC(ctx context.Context, e *framework.Env) error {
	repo, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	objs := []*unstructured.Unstructured{}
	for _, o := range []any{
		&corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: guardNamespace, Labels: map[string]string{"metrics-guard.eck.dev/exclude": "true"}}},
		&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: metav1.ObjectMeta{Name: guardSA, Namespace: guardNamespace}},
	} {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return err
		}
		objs = append(objs, &unstructured.Unstructured{Object: u})
	}
	for _, f := range []string{"role.yaml", "role_binding.yaml", "leader_election_role_binding.yaml"} {
		raw, err := os.ReadFile(filepath.Join(repo, "config", "rbac", f))
		if err != nil {
			return err
		}
		for _, doc := range strings.Split(string(raw), "\n---") {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	for _, o := range objs {
		if err := e.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// startGuardAsItself runs the guard in this process with the default flags, leader election
// in its namespace, its secure metrics endpoint, and a client configuration that impersonates
// its ServiceAccount.
func startGuardAsItself(e *framework.Env) error {
	o := &app.ServerOptions{}
	fs := pflag.NewFlagSet("eck-metrics-guard", pflag.ContinueOnError)
	o.AddFlags(fs)
	port, err := framework.FreePort()
	if err != nil {
		return err
	}
	metricsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	wh := e.Environment.WebhookInstallOptions
	if err := fs.Parse([]string{
		"--leader-elect=true", "--leader-election-namespace=" + guardNamespace,
		"--metrics-bind-address=" + metricsAddr, "--health-probe-bind-address=0",
		"--webhook-host=" + wh.LocalServingHost, fmt.Sprintf("--webhook-port=%d", wh.LocalServingPort), "--webhook-cert-dir=" + wh.LocalServingCertDir,
	}); err != nil {
		return err
	}
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + guardNamespace + ":" + guardSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + guardNamespace, "system:authenticated"},
	}
	return e.RunGuard(cfg, o)
}
