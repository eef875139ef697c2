// Package faults puts the guard through faults on a real control plane and measures what
// they cost: the guard down while an operator is installed, and its serving certificate
// rotated (to a new CA) while admissions flow. Each test starts and stops its own guard; they
// run in order, not in parallel.
package faults

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	crds, err := framework.CertManagerCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmv1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(framework.RunSuite(m, framework.Options{
		CRDDirectoryPaths:     []string{crds},
		Scheme:                scheme,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}},
	}, &env, func(e *framework.Env) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		_, err := framework.StartCertManager(ctx, e) // stopped with e
		return err
	}))
}

// startGuard runs the guard in this process (default flags, then args) on the webhook
// address the API server calls, until the returned stop is called (or the test ends). One
// after another: their controllers have the same names (SkipNameValidation).
func startGuard(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	o := &app.ServerOptions{}
	fs := pflag.NewFlagSet("eck-metrics-guard", pflag.ContinueOnError)
	o.AddFlags(fs)
	wh := env.Environment.WebhookInstallOptions
	all := append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhook-host=" + wh.LocalServingHost,
		fmt.Sprintf("--webhook-port=%d", wh.LocalServingPort), "--webhook-cert-dir=" + wh.LocalServingCertDir}, args...)
	if err := fs.Parse(all); err != nil {
		t.Fatal(err)
	}
	o.Controller.SkipNameValidation = true
	mgr, err := app.NewManagerFor(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("guard: %v", err)
			}
		case <-time.After(70 * time.Second):
			t.Error("the guard did not stop")
		}
	}
	t.Cleanup(stop)
	sync, syncCancel := context.WithTimeout(ctx, time.Minute)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(sync) {
		t.Fatal("the guard's cache did not sync")
	}
	for sync.Err() == nil {
		if mgr.GetWebhookServer().StartedChecker()(nil) == nil {
			return stop
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the guard's webhook server did not start")
	return stop
}
