package framework

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// saSigningKeyFile is the service-account signing key envtest writes into the API server's
// cert dir (controller-runtime pkg/internal/testing/controlplane, saKeyFile) and passes to it
// as --service-account-signing-key-file.
const saSigningKeyFile = "sa-signer.key"

// controllerManager is a running kube-controller-manager.
type controllerManager struct {
	*process
}

func startControllerManager(ctx context.Context, e *Env, path string, controllers []string, timeout time.Duration) (*controllerManager, error) {
	// Its own user, in system:masters: with --use-service-account-credentials=false every
	// controller acts as kube-controller-manager itself, and RBAC's
	// system:kube-controller-manager role alone does not cover that.
	user, err := e.Environment.AddUser(envtest.User{
		Name:   "system:kube-controller-manager",
		Groups: []string{"system:masters"},
	}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return nil, fmt.Errorf("provisioning the kube-controller-manager user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	kubeconfigPath := filepath.Join(e.Dir, "kube-controller-manager.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	caPath := filepath.Join(e.Dir, "ca.crt")
	if err := os.WriteFile(caPath, e.Config.CAData, 0o600); err != nil {
		return nil, err
	}
	saKey := filepath.Join(e.Environment.ControlPlane.APIServer.CertDir, saSigningKeyFile)
	if _, err := os.Stat(saKey); err != nil {
		return nil, fmt.Errorf("service-account signing key of the API server (envtest internals changed?): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--kubeconfig=" + kubeconfigPath,
		// Delegated authn/authz of its own secure port (healthz, metrics).
		"--authentication-kubeconfig=" + kubeconfigPath,
		"--authorization-kubeconfig=" + kubeconfigPath,
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(e.Dir, "kube-controller-manager-certs"),
		// For the serviceaccount-token controller (legacy token Secrets) and the
		// kube-root-ca.crt ConfigMaps; harmless for the other controllers.
		"--service-account-private-key-file=" + saKey,
		"--root-ca-file=" + caPath,
		"--v=2",
	}
	p, err := startProcess(e, "kube-controller-manager", "kube-controller-manager.log", path, args, nil)
	if err != nil {
		return nil, err
	}
	m := &controllerManager{p}
	if err := m.waitHealthy(ctx, port, timeout); err != nil {
		_ = m.stop()
		return nil, fmt.Errorf("kube-controller-manager: %w; last lines of %s:\n%s", err, m.logPath, tail(m.logPath, 30))
	}
	return m, nil
}

// waitHealthy polls kube-controller-manager's /healthz until it answers 200.
func (m *controllerManager) waitHealthy(ctx context.Context, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	httpClient := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, // self-signed
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	var last string
	for {
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil); err == nil {
			if resp, err := httpClient.Do(req); err != nil {
				last = err.Error()
			} else {
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				last = resp.Status
			}
		}
		select {
		case <-m.exited:
			return fmt.Errorf("exited before it was healthy: %v", m.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not healthy at %s (last: %s): %w", url, last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("not a TCP address")
	}
	return addr.Port, nil
}
