// Package scrape proves, end to end, that what the guard writes makes a real Prometheus scrape
// a real ECK operator: the guard (webhook and controller) and cert-manager's controllers
// secure Elastic's ECK install manifest; the real Prometheus Operator turns the guard's
// monitor into a Prometheus configuration; the real Prometheus, running that configuration,
// scrapes the real ECK operator over verified TLS with its ServiceAccount token. The binaries
// are built from pinned modules into ./bin (make prometheus prometheus-operator eck-operator
// controlplane cert-manager); the suite fails, never skips, when one is missing, and when it
// cannot make the network namespace the ECK operator runs in.
package scrape

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var (
	env  *framework.Env
	repo string
	// promOperatorVersion is the Prometheus Operator release run, and whose CRDs are installed.
	promOperatorVersion string
)

func TestMain(m *testing.M) {
	opts, err := options()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(framework.RunSuite(m, opts, &env, func(e *framework.Env) error {
		if err := framework.NetNSRequirements(); err != nil {
			return fmt.Errorf("the scrape suite runs the ECK operator in a network namespace of its own: %w", err)
		}
		for _, bin := range []struct{ name, target string }{
			{"prometheus", "make prometheus"},
			{"prometheus-operator", "make prometheus-operator"},
			{"eck-operator", "make eck-operator"},
		} {
			if _, err := os.Stat(filepath.Join(e.BinDir, bin.name)); err != nil {
				return fmt.Errorf("run `%s` first: %s not found", bin.target, filepath.Join(e.BinDir, bin.name))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := framework.StartCertManager(ctx, e); err != nil { // stopped with e
			return err
		}
		return e.StartGuard(nil) // the server's defaults: webhook and controller
	}))
}

func options() (framework.Options, error) {
	var err error
	if repo, err = framework.RepoRoot(); err != nil {
		return framework.Options{}, err
	}
	if promOperatorVersion, err = framework.PrometheusOperatorVersionsAgree(); err != nil {
		return framework.Options{}, err
	}
	var crds []string
	for _, find := range []func() (string, error){framework.CertManagerCRDs, framework.ECKCRDs} {
		path, err := find()
		if err != nil {
			return framework.Options{}, err
		}
		crds = append(crds, path)
	}
	prom, err := framework.PrometheusOperatorCRDs()
	if err != nil {
		return framework.Options{}, err
	}
	crds = append(crds, prom...)
	crds = append(crds, filepath.Join(repo, "config", "crd", "bases")) // the guard's own
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
