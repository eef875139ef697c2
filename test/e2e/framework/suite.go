package framework

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// RunSuite is a package's TestMain body: it starts one control plane with opts, stores it
// in *env, runs setup (start the guard, cert-manager...), then the tests, and stops
// everything; the logs of a failed run are printed and kept. It returns the exit code. The
// components under test log nowhere unless E2E_DEBUG is set.
func RunSuite(m *testing.M, opts Options, env **Env, setup func(*Env) error) (code int) {
	out := io.Discard
	if os.Getenv("E2E_DEBUG") != "" {
		out = os.Stderr
	}
	log.SetLogger(zap.New(zap.WriteTo(out)))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e, err := New(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the test control plane:", err)
		return 1
	}
	*env = e
	code = 1
	defer func() {
		if code != 0 {
			e.KeepDir = true
			e.DumpLogs(os.Stderr, 80)
		}
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the test control plane:", err)
			code = 1
		}
	}()
	if setup != nil {
		if err := setup(e); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// WebhookConfigPath is the project's webhook configuration, installed as is by the suites.
func WebhookConfigPath() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "config", "webhook"), nil
}
