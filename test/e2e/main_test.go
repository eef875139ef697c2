// Package e2e runs eck-metrics-guard against a real kube-apiserver, etcd and
// kube-controller-manager (see test/e2e/framework): the webhook configuration of
// config/webhook is registered with the API server and points at the guard's webhook server
// running in this process, and the tests talk to the API server as a user (kubectl) would.
package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// env is the control plane shared by the tests of this package; each test works in
// namespaces of its own.
var env *framework.Env

// repo is the repository root.
var repo string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	log.SetLogger(zap.New(zap.WriteTo(logOutput())))
	var err error
	if repo, err = framework.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err = framework.New(ctx, framework.Options{
		ControllerManager: true,
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
			env.DumpLogs(os.Stderr, 80)
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
			code = 1
		}
	}()

	if err := env.StartGuard(func(o *app.ServerOptions) {
		o.Controller.Enabled = false // this suite tests the webhook alone
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code = m.Run()
	return code
}

// logOutput is where the guard logs: nowhere, unless E2E_DEBUG is set.
func logOutput() io.Writer {
	if os.Getenv("E2E_DEBUG") != "" {
		return os.Stderr
	}
	return io.Discard
}
