// Package controller runs the whole guard (webhook and controller) against a real control
// plane with cert-manager's own controllers issuing certificates and the Prometheus
// Operator's ServiceMonitor CRD installed.
package controller

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var (
	env  *framework.Env
	repo string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	out := io.Discard
	if os.Getenv("E2E_DEBUG") != "" {
		out = os.Stderr
	}
	log.SetLogger(zap.New(zap.WriteTo(out)))
	var err error
	if repo, err = framework.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	certManagerCRDs, err := framework.CertManagerCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	serviceMonitorCRD, err := framework.ServiceMonitorCRD()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	eckCRDs, err := framework.ECKCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err = framework.New(ctx, framework.Options{
		ControllerManager: true,
		CRDDirectoryPaths: []string{certManagerCRDs, serviceMonitorCRD, eckCRDs},
		Scheme:            scheme,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(repo, "config", "webhook")},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test control plane:", err)
		return 1
	}
	code := 1
	defer func() {
		if code != 0 {
			env.KeepDir = true
			env.DumpLogs(os.Stderr, 60)
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
			code = 1
		}
	}()
	stopCertManager, err := framework.StartCertManager(ctx, env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := stopCertManager(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping cert-manager:", err)
		}
	}()
	if err := env.StartGuard(nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code = m.Run()
	return code
}
