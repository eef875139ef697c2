// Package gitops tests the GitOps front doors with the real tools they plug into: the guard's
// binary as Helm 3's --post-renderer and as Helm 4's post-renderer plugin (config/helm-plugin),
// both installing and upgrading Elastic's own ECK chart (from the ECK module pinned in
// test/tools/eckcharts) into a real kube-apiserver; and the guard as an exec KRM function of the
// real kustomize over an overlay of ECK's rendered install manifest. Each result is judged by
// the engine's verdict (compliance.Check): nothing else in this control plane secures anything,
// no guard and no webhook run, so a secured operator is the front door's work.
//
// It needs bin/helm, bin/helm4 and bin/kustomize (`make helm helm4 kustomize`), the control
// plane (`make controlplane`) and the rendered ECK manifests (`make eck-manifests`); a missing
// one fails the test, saying what to run.
package gitops

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var (
	env *framework.Env
	// guard is the eck-metrics-guard binary, built as the image's.
	guard string
	// home holds the tools' own directories (Helm's cache, config, data and plugins).
	home string
)

// eckVersion is the ECK release whose chart and manifest the tests install.
const eckVersion = "3.5.0"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if home, err = os.MkdirTemp("", "gitops-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
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
	// The Certificate and ServiceMonitor the front doors add must be accepted: their CRDs
	// are installed, though nothing acts on them.
	opts := framework.Options{CRDDirectoryPaths: []string{certManagerCRDs, serviceMonitorCRD}}
	return framework.RunSuite(m, opts, &env, func(*framework.Env) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var err error
		guard, err = framework.BuildGuard(ctx, home)
		return err
	})
}
