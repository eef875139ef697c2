// Package packaging tests the two ways eck-metrics-guard is installed, the Helm chart in
// charts/eck-metrics-guard and the kustomize overlays in config/: that both render, with
// every documented option, objects a real kube-apiserver accepts (with cert-manager's and the
// Prometheus Operator's CRDs), that they render the same webhooks, RBAC rules and CRDs, that
// `helm install` and `kubectl apply -k` work against the API server with cert-manager's own
// controllers issuing the serving certificate, and that the generated RBAC stays narrow.
//
// It needs bin/helm (`make helm`), the control plane (`make controlplane`), cert-manager's
// runner (`make cert-manager`) and kubectl 1.27 or later on $PATH (or $KUBECTL).
package packaging

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var (
	// repo is the repository root.
	repo string
	// helmHome holds Helm's cache, configuration and data directories, so that the tests
	// neither read nor write the user's.
	helmHome string

	// shared is the control plane of the tests that need one, started by the first of them
	// (the tests that only render do not wait for it) and stopped by TestMain.
	shared struct {
		once sync.Once
		env  *framework.Env
		err  error
	}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repo, err = framework.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if helmHome, err = os.MkdirTemp("", "packaging-helm-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(helmHome)

	code := m.Run()
	if env := shared.env; env != nil {
		if code != 0 {
			env.KeepDir = true
			env.DumpLogs(os.Stderr, 60)
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
			code = 1
		}
	}
	return code
}

// controlPlane returns the shared control plane, with cert-manager's and the ServiceMonitor
// CRDs installed and cert-manager's own controllers and cainjector running, starting it on first use.
func controlPlane(t *testing.T) *framework.Env {
	t.Helper()
	shared.once.Do(func() {
		start := time.Now()
		shared.env, shared.err = startControlPlane()
		if shared.err == nil {
			t.Logf("control plane and cert-manager started in %s", time.Since(start).Round(100*time.Millisecond))
		}
	})
	if shared.err != nil {
		t.Fatalf("starting the test control plane: %v", shared.err)
	}
	return shared.env
}

func startControlPlane() (*framework.Env, error) {
	certManagerCRDs, err := framework.CertManagerCRDs()
	if err != nil {
		return nil, err
	}
	serviceMonitorCRD, err := framework.ServiceMonitorCRD()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := cmv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := framework.New(ctx, framework.Options{
		CRDDirectoryPaths: []string{certManagerCRDs, serviceMonitorCRD},
		Scheme:            scheme,
	})
	if err != nil {
		return nil, err
	}
	if _, err := framework.StartCertManager(ctx, env); err != nil {
		env.KeepDir = true
		_ = env.Stop()
		return nil, fmt.Errorf("%w (logs in %s)", err, env.Dir)
	}
	return env, nil
}

// chartDir is the chart under test.
func chartDir() string { return filepath.Join(repo, "charts", "eck-metrics-guard") }
