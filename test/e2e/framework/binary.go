package framework

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// BuildGuard builds the eck-metrics-guard binary, as the Dockerfile does (CGO_ENABLED=0,
// -trimpath), into dir, and returns its path. It is the binary the image ships, for tests that
// run it as the chart's Deployment would.
func BuildGuard(ctx context.Context, dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "eck-metrics-guard")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "./cmd/eck-metrics-guard")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if combined, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/eck-metrics-guard: %w\n%s", err, combined)
	}
	return out, nil
}

// Process is a program a test runs against the control plane, such as the guard's own binary,
// its output in a log file in Env.Dir.
type Process struct {
	p *process
}

// StartProcess starts path with args, and env as its whole environment (so that nothing of the
// test's environment leaks into it), logging to <name>.log in e.Dir. It is stopped by Stop, or
// by e.Stop before the control plane; a process that exits other than with status 0 on SIGTERM,
// or on its own while the test runs, is an error of Stop.
func (e *Env) StartProcess(name, path string, args, env []string) (*Process, error) {
	if env == nil {
		env = []string{}
	}
	p, err := startProcess(e, name, name+".log", path, args, env)
	if err != nil {
		return nil, err
	}
	p.cleanStop = true
	p.stopWith(e)
	return &Process{p: p}, nil
}

// Stop sends SIGTERM and waits (SIGKILL after 10s). Only the first call reports an error.
func (p *Process) Stop() error { return p.p.stop() }

// Kill sends SIGKILL, as a node or the OOM killer would: the process cannot run any handler
// (a leader does not release its Lease), and waits for it to be gone. After Kill, Stop
// reports nothing; Kill reports a process that had exited on its own before.
func (p *Process) Kill() error {
	p.p.once.Do(func() {
		if p.p.hasExited() {
			p.p.stopErr = p.p.failure("exited while the test ran")
			return
		}
		_ = p.p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.p.exited
	})
	return p.p.stopErr
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool { return p.p.hasExited() }

// Pid is the process id (for /proc/<pid>/status: memory measurements).
func (p *Process) Pid() int { return p.p.cmd.Process.Pid }

// LogPath is the file its standard output and error go to.
func (p *Process) LogPath() string { return p.p.logPath }

// Log is the whole log so far.
func (p *Process) Log() string {
	data, _ := os.ReadFile(p.p.logPath)
	return string(data)
}

// Tail is the last n lines of the log.
func (p *Process) Tail(n int) string { return tail(p.p.logPath, n) }

// MountSecret does for a test what the kubelet does for a Secret volume: it keeps the files of
// dir equal to the Secret's data (each key a file, replaced atomically), polling every 100ms,
// until stop is called. A Secret that does not exist yet is waited for.
func MountSecret(c client.Client, namespace, name, dir string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err == nil {
				for key, value := range s.Data {
					if strings.ContainsRune(key, os.PathSeparator) {
						continue
					}
					path := filepath.Join(dir, key)
					if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, value) {
						continue
					}
					if err := os.WriteFile(path+".tmp", value, 0o600); err == nil {
						_ = os.Rename(path+".tmp", path)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// PEMCertificates are the certificates of a PEM bundle (a caBundle, ca.crt, tls.crt); other
// blocks are skipped.
func PEMCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, cert)
		}
	}
}
