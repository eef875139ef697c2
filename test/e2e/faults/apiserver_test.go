package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestAPIServerRestart restarts the kube-apiserver the guard talks to (SIGTERM, then a new
// process with the same flags on the same etcd) under a running guard process, the shipped
// binary with leader election as the chart runs it. While that API server is down, an
// administrator works through the control plane's second API server (HA): they opt in a
// namespace whose operator the guard has seen unopted, and install an operator into a new
// opted-in namespace. Once its API server is back the guard must reconnect and catch up (both
// operators secured: ConfigMap, pod template, status), keep its Lease, stay ready (/readyz
// polled every 100ms throughout, 0 failures) and not exit; a namespace opted in after the
// restart proves its watches are live again. The test reports the outage and the time to
// converge.
func TestAPIServerRestart(t *testing.T) {
	ctx := context.Background()
	// The HA peer first (its start is not part of the outage).
	peer, err := env.StartAPIServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	peerServer := "--server=" + peer.Config.Host

	leaseNS := leaseNamespace(t, "e2e-guard-restart")
	health, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	wh := env.Environment.WebhookInstallOptions
	guard := startGuardProcess(t, "guard-restart", wh.LocalServingPort, leaseNS, fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", health))
	framework.EventuallyWithin(t, "the guard to lead", time.Minute, func() (bool, error) { return acquired(guard), nil })
	ready := probe(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
	framework.EventuallyWithin(t, "the guard to be ready", time.Minute, func() (bool, error) {
		total, failed, _ := ready.Stop()
		ready = probe(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		return total > failed, nil
	})

	tls := map[string]string{keys.AnnotationTLSSecret: "operator-tls"}
	manifest := framework.ECKManifest(t, "operator-3.5.0.yaml")
	// Seen by the guard before the restart, not opted in: opted in while it is down (late),
	// and after it (after).
	late := env.Namespace(t, "e2e-restart-late", tls, nil)
	after := env.Namespace(t, "e2e-restart-after", tls, nil)
	for _, ns := range []string{late, after} {
		env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, ns))
	}
	secured := func(ns string) bool {
		o := env.Operator(t, ns)
		_, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap)
		return len(findings) == 0 && o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured"
	}
	for _, ns := range []string{late, after} {
		if secured(ns) {
			t.Fatalf("the operator of %s is secured before any opt-in: the test's premise is wrong", ns)
		}
	}

	var fresh string
	var changed time.Time
	restart, err := env.RestartAPIServer(ctx, time.Second, func() error {
		// The guard's API server is down: the administrator uses the other one.
		ns := &corev1.Namespace{}
		if err := peer.Client.Get(ctx, client.ObjectKey{Name: late}, ns); err != nil {
			return err
		}
		ns.Annotations[keys.AnnotationSecure] = "true"
		if err := peer.Client.Update(ctx, ns); err != nil {
			return err
		}
		fresh = fmt.Sprintf("e2e-restart-fresh-%d", time.Now().UnixNano()%100000)
		if err := peer.Client.Create(ctx, namespace(fresh, map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "operator-tls"})); err != nil {
			return err
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), namespace(fresh, nil)) })
		if _, stderr, err := env.Kubectl(t, peerServer, "apply", "-f", framework.Manifest(t, manifest, fresh)); err != nil {
			return fmt.Errorf("kubectl apply through the second API server: %v\n%s", err, stderr)
		}
		changed = time.Now()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	framework.EventuallyWithin(t, "the guard to catch up (both operators changed during the outage secured)", 2*time.Minute, func() (bool, error) {
		if guard.Exited() {
			return false, fmt.Errorf("the guard exited:\n%s", guard.Tail(30))
		}
		return secured(late) && secured(fresh), nil
	})
	caughtAt := time.Now()
	caughtUp := caughtAt.Sub(back)

	// Watches live again: a change after the restart.
	ns := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: after}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Annotations[keys.AnnotationSecure] = "true"
	if err := env.Client.Update(ctx, ns); err != nil {
		t.Fatal(err)
	}
	optedAfter := time.Now()
	framework.EventuallyWithin(t, "an operator opted in after the restart to be secured", time.Minute, func() (bool, error) { return secured(after), nil })
	afterTook := time.Since(optedAfter)

	total, failed, first := ready.Stop()
	if failed > 0 {
		t.Errorf("/readyz failed %d of %d times, first %s", failed, total, first)
	}
	if guard.Exited() {
		t.Fatalf("the guard exited:\n%s", guard.Tail(30))
	}
	log := guard.Log()
	for _, bad := range []string{"leader election lost", "panic", "Observed a panic"} {
		if strings.Contains(log, bad) {
			t.Errorf("the guard's log has %q:\n%s", bad, guard.Tail(40))
		}
	}
	if n := strings.Count(log, "Successfully acquired lease"); n != 1 {
		t.Errorf("the guard acquired its Lease %d times, want 1 (kept across the outage)", n)
	}
	t.Logf("kube-apiserver stopped in %s, down %s (of which %s starting again; the writes through the other API server %s before it was back); "+
		"guard caught up %s after its API server was back (%s after the writes); an opt-in after the restart secured in %s; /readyz %d of %d polls 200",
		restart.Stopped.Round(time.Millisecond), restart.Down.Round(time.Millisecond), restart.Started.Round(time.Millisecond),
		back.Sub(changed).Round(time.Millisecond), caughtUp.Round(time.Millisecond), caughtAt.Sub(changed).Round(time.Millisecond),
		afterTook.Round(time.Millisecond), total-failed, total)
}

func namespace(name string, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
}
