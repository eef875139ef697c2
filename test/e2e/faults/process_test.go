package faults

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// guardBinary is the guard's binary as the image ships it, built once for the package.
func guardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		built, buildErr = framework.BuildGuard(ctx, env.Dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// leaseNamespace creates a namespace for a leader election Lease, excluded from the
// guard's webhooks as its own is.
// (Generated names: a deleted namespace stays Terminating on this control plane, which runs
// no namespace controller, so a test run again needs a new one.)
func leaseNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: map[string]string{"metrics-guard.eck.dev/exclude": "true"}}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// startGuardProcess runs the guard's binary as the chart's Deployment does (leader election
// on, its Lease in leaseNS), serving the webhook on port; extra flags come last. It is
// stopped when the test ends, and its log's tail is printed if the test failed.
func startGuardProcess(t *testing.T, name string, port int, leaseNS string, extra ...string) *framework.Process {
	t.Helper()
	wh := env.Environment.WebhookInstallOptions
	args := append([]string{"webhook", "--kubeconfig=" + env.Kubeconfig, "--leader-elect", "--leader-election-namespace=" + leaseNS,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--service-monitor=false",
		"--webhook-host=" + wh.LocalServingHost, fmt.Sprintf("--webhook-port=%d", port), "--webhook-cert-dir=" + wh.LocalServingCertDir}, extra...)
	p, err := env.StartProcess(name, guardBinary(t), args, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", name, p.Tail(40))
		}
	})
	return p
}

// acquired reports whether the guard's log says it won the Lease.
func acquired(p *framework.Process) bool {
	return strings.Contains(p.Log(), "Successfully acquired lease")
}

// prober polls a guard's /readyz every 100ms, as the kubelet's readiness probe would (more
// often), until stopped; it counts the answers that were not 200.
type prober struct {
	total, failed int
	first         string
	mu            sync.Mutex
	stop          chan struct{}
	done          chan struct{}
}

func probe(url string) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	c := &http.Client{Timeout: time.Second}
	go func() {
		defer close(p.done)
		deadline := time.After(10 * time.Minute) // bounded whatever the test does
		for {
			select {
			case <-p.stop:
				return
			case <-deadline:
				return
			case <-time.After(100 * time.Millisecond):
			}
			resp, err := c.Get(url)
			p.mu.Lock()
			p.total++
			switch {
			case err != nil:
				p.failed++
				if p.first == "" {
					p.first = fmt.Sprintf("%s: %v", time.Now().Format(time.RFC3339Nano), err)
				}
			case resp.StatusCode != http.StatusOK:
				p.failed++
				if p.first == "" {
					p.first = fmt.Sprintf("%s: %s", time.Now().Format(time.RFC3339Nano), resp.Status)
				}
			}
			p.mu.Unlock()
			if resp != nil {
				resp.Body.Close()
			}
		}
	}()
	return p
}

// Stop stops the polling and returns its counts.
func (p *prober) Stop() (total, failed int, first string) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total, p.failed, p.first
}
