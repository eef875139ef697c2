// Package controller runs the whole guard (webhook and controller) against a real control
// plane with cert-manager's own controllers issuing certificates, the Prometheus Operator's
// ServiceMonitor CRD and ECK's CRDs installed, and the real ECK operator where it matters.
package controller

import (
	"context"
	"fmt"
	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
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
	var crds []string
	for _, find := range []func() (string, error){framework.CertManagerCRDs, framework.ServiceMonitorCRD, framework.PodMonitorCRD, framework.ECKCRDs, framework.OpenReportsCRDs} {
		path, err := find()
		if err != nil {
			return framework.Options{}, err
		}
		crds = append(crds, path)
	}
	crds = append(crds, filepath.Join(repo, "config", "crd", "bases")) // the guard's own
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		return framework.Options{}, err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmv1.AddToScheme, monitoringv1.AddToScheme, v1alpha1.AddToScheme, orv1alpha1.AddToScheme} {
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
