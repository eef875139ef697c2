// Package e2e runs eck-metrics-guard's webhook against a real kube-apiserver, etcd and
// kube-controller-manager (see test/e2e/framework): the webhook configuration of
// config/webhook is registered with the API server and points at the guard's webhook server
// running in this process, and the tests talk to the API server as a user (kubectl) would.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// env is the control plane shared by the tests of this package; each test works in
// namespaces of its own.
var env *framework.Env

// repo is the repository root.
var repo string

func TestMain(m *testing.M) {
	var err error
	if repo, err = framework.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	webhooks, _ := framework.WebhookConfigPath()
	os.Exit(framework.RunSuite(m, framework.Options{
		ControllerManager:     true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}},
	}, &env, func(e *framework.Env) error {
		return e.StartGuard(func(o *app.ServerOptions) {
			o.Controller.Enabled = false // this suite tests the webhook alone
		})
	}))
}
