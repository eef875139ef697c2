package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestLeaderStopped runs two guard processes (the binary the image ships) with leader
// election, as the chart's two replicas. The first, whose webhook the API server calls, is the
// leader; it is stopped (SIGTERM; the Lease is not released, as after a crash), so the webhook
// is down too, and the operator's eck.yaml is then changed behind the guard's back. The second
// takes the Lease over and heals it; the test reports how long that takes (the Lease lasts
// 15s, renewed every 2s: controller-runtime's defaults).
func TestLeaderStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for a Lease to expire")
	}
	ctx := context.Background()
	leaseNS := leaseNamespace(t, "e2e-guard-leader")
	wh := env.Environment.WebhookInstallOptions
	start := func(name string, port int) *framework.Process { return startGuardProcess(t, name, port, leaseNS) }

	first := start("guard-first", wh.LocalServingPort)
	framework.EventuallyWithin(t, "the first guard to lead", time.Minute, func() (bool, error) { return acquired(first), nil })
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	second := start("guard-second", port)

	ns := env.Namespace(t, "e2e-leader", map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "operator-tls"}, nil)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	framework.EventuallyWithin(t, "the operator to be secured", time.Minute, func() (bool, error) {
		o := env.Operator(t, ns)
		_, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap)
		return len(findings) == 0 && o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	if acquired(second) {
		t.Fatal("both guards lead")
	}

	stopped := time.Now()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	stopTook := time.Since(stopped)
	// The webhook is down with it: a change behind the guard's back goes through.
	o := env.Operator(t, ns)
	cm := o.ConfigMap.DeepCopy()
	cm.Data[o.Op.ConfigKey] = strings.ReplaceAll(cm.Data[o.Op.ConfigKey], "metrics-secure: true", "metrics-secure: false")
	if err := env.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if got := env.Operator(t, ns).ConfigMap.Data[o.Op.ConfigKey]; !strings.Contains(got, "metrics-secure: false") {
		t.Fatalf("the change did not go through unmutated:\n%s", got)
	}
	drifted := time.Now()
	framework.EventuallyWithin(t, "the second guard to take over and heal eck.yaml", time.Minute, func() (bool, error) {
		return strings.Contains(env.Operator(t, ns).ConfigMap.Data[o.Op.ConfigKey], "metrics-secure: true"), nil
	})
	healed := time.Since(drifted)
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: leaseNS, Name: "eck-metrics-guard.metrics-guard.eck.dev"}, lease); err != nil {
		t.Fatal(err)
	}
	if !acquired(second) {
		t.Error("the second guard healed without holding the Lease")
	}
	t.Logf("leader stopped in %s (Lease not released); the other replica took over and healed the drift %s after it (%s after the stop); Lease transitions %d",
		stopTook.Round(time.Millisecond), healed.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond), ptrValue(lease.Spec.LeaseTransitions))
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
