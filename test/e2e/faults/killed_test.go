package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// retrofitted is how many operators TestLeaderKilledDuringRetrofit opts in at once.
const retrofitted = 24

// TestLeaderKilledDuringRetrofit runs two guard processes (the shipped binary, leader
// election on: the chart's two replicas). The leader's webhook is the one the API server
// calls. 24 ECK operators are installed in namespaces that did not opt in, then all of those
// namespaces opt in at once; as soon as the leader has secured the first of them it is
// SIGKILLed (no handler runs: the Lease is not released, its webhook is gone mid-retrofit).
// The other replica must take the Lease over once it expires and finish the retrofit: every
// operator secured (none lost), and no companion object twice: one metrics Service per
// operator, one metrics port, TLS volume and mount per pod template, each setting once in
// eck.yaml, and each operator's ServiceAccount once among the auth-delegator binding's
// subjects (and no other binding to system:auth-delegator). The test reports the takeover
// time.
func TestLeaderKilledDuringRetrofit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and waits for a Lease to expire")
	}
	ctx := context.Background()
	leaseNS := leaseNamespace(t, "e2e-guard-killed")
	wh := env.Environment.WebhookInstallOptions
	first := startGuardProcess(t, "guard-killed-first", wh.LocalServingPort, leaseNS)
	framework.EventuallyWithin(t, "the first guard to lead", time.Minute, func() (bool, error) { return acquired(first), nil })
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	second := startGuardProcess(t, "guard-killed-second", port, leaseNS)

	// The operators, in namespaces that have not opted in: one kubectl apply for all.
	manifest := framework.ECKManifest(t, "operator-3.5.0.yaml")
	var namespaces []string
	var docs []string
	for range retrofitted {
		ns := env.Namespace(t, "e2e-killed", map[string]string{keys.AnnotationTLSSecret: "operator-tls"}, nil)
		namespaces = append(namespaces, ns)
		raw, err := os.ReadFile(framework.Manifest(t, manifest, ns))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(raw))
	}
	all := filepath.Join(t.TempDir(), "operators.yaml")
	if err := os.WriteFile(all, []byte(strings.Join(docs, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	env.MustKubectl(t, "apply", "-f", all)
	ours := map[string]bool{}
	for _, ns := range namespaces {
		ours[ns] = true
	}
	securedCount := func() (int, error) {
		var list appsv1.StatefulSetList
		if err := env.Client.List(ctx, &list); err != nil {
			return 0, err
		}
		n := 0
		for _, s := range list.Items {
			if ours[s.Namespace] && s.Annotations[keys.AnnotationStatus] == "secured" {
				n++
			}
		}
		return n, nil
	}
	if n, err := securedCount(); err != nil || n != 0 {
		t.Fatalf("%d operators secured before any opt-in (%v): the test's premise is wrong", n, err)
	}
	if acquired(second) {
		t.Fatal("both guards lead")
	}

	// The retrofit: every namespace opts in; the leader is killed as soon as it has secured
	// one operator, while the opt-ins may still be going on.
	var atKill, optedAtKill int
	var killed time.Time
	kill := func(opted int) {
		n, err := securedCount()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || !killed.IsZero() {
			return
		}
		killed, atKill, optedAtKill = time.Now(), n, opted
		if err := first.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	optIn := time.Now()
	for i, name := range namespaces {
		ns := &corev1.Namespace{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			t.Fatal(err)
		}
		ns.Annotations[keys.AnnotationSecure] = "true"
		if err := env.Client.Update(ctx, ns); err != nil {
			t.Fatal(err)
		}
		kill(i + 1)
	}
	framework.EventuallyWithin(t, "the leader to secure a first operator", time.Minute, func() (bool, error) {
		kill(retrofitted)
		return !killed.IsZero(), nil
	})
	if atKill >= retrofitted {
		t.Fatalf("all %d operators were secured before the leader could be killed: no retrofit was interrupted", atKill)
	}
	afterKill, err := securedCount()
	if err != nil {
		t.Fatal(err)
	}

	// The takeover: the Lease changes hands once it expires (15s).
	lease := &coordinationv1.Lease{}
	holder := func() string {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: leaseNS, Name: "eck-metrics-guard.metrics-guard.eck.dev"}, lease); err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}
	before := holder()
	framework.EventuallyWithin(t, "the second guard to take the Lease over", time.Minute, func() (bool, error) {
		h := holder()
		return h != "" && h != before && acquired(second), nil
	})
	tookOver := time.Since(killed)
	framework.EventuallyWithin(t, "every operator to be secured", 2*time.Minute, func() (bool, error) {
		if second.Exited() {
			return false, fmt.Errorf("the second guard exited:\n%s", second.Tail(30))
		}
		n, err := securedCount()
		return n == retrofitted, err
	})
	finished := time.Since(killed)

	// No lost operator, no duplicate.
	for _, ns := range namespaces {
		o := env.Operator(t, ns)
		if _, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap); len(findings) > 0 {
			t.Errorf("%s: not compliant: %v", ns, findings)
		}
		c := o.Template.Spec.Containers[o.Op.ContainerIndex]
		count := func(n int, what string) {
			if n != 1 {
				t.Errorf("%s: %d %s, want 1", ns, n, what)
			}
		}
		ports, mounts, volumes := 0, 0, 0
		for _, p := range c.Ports {
			if p.Name == keys.PortName {
				ports++
			}
		}
		for _, m := range c.VolumeMounts {
			if m.Name == keys.VolumeName {
				mounts++
			}
		}
		for _, v := range o.Template.Spec.Volumes {
			if v.Name == keys.VolumeName {
				volumes++
			}
		}
		count(ports, "metrics container ports")
		count(mounts, "TLS mounts")
		count(volumes, "TLS volumes")
		text := o.ConfigMap.Data[o.Op.ConfigKey]
		for _, key := range []string{"metrics-port:", "metrics-secure:", "metrics-host:"} {
			n := 0
			for _, line := range strings.Split(text, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), key) {
					n++
				}
			}
			count(n, "eck.yaml lines "+key)
		}
		var services corev1.ServiceList
		if err := env.Client.List(ctx, &services, client.InNamespace(ns), client.MatchingLabels{keys.LabelMetricsService: "true"}); err != nil {
			t.Fatal(err)
		}
		count(len(services.Items), "metrics Services")
	}
	var bindings rbacv1.ClusterRoleBindingList
	if err := env.Client.List(ctx, &bindings); err != nil {
		t.Fatal(err)
	}
	subjects := map[string]int{}
	delegating := 0
	for _, b := range bindings.Items {
		if b.RoleRef.Name != "system:auth-delegator" || b.Name == "system:auth-delegator" {
			continue
		}
		delegating++
		if b.Name != controller.DefaultBindingName {
			t.Errorf("another binding to system:auth-delegator: %s", b.Name)
		}
		for _, s := range b.Subjects {
			subjects[s.Namespace+"/"+s.Name]++
		}
	}
	if delegating != 1 {
		t.Errorf("%d bindings to system:auth-delegator, want 1", delegating)
	}
	for _, ns := range namespaces {
		o := env.Operator(t, ns)
		if n := subjects[ns+"/"+o.Op.ServiceAccount]; n != 1 {
			t.Errorf("%s/%s is %d times a subject of %s, want 1", ns, o.Op.ServiceAccount, n, controller.DefaultBindingName)
		}
	}
	t.Logf("%d operators opted in one after another; the leader was SIGKILLed %s after the first opt-in, with %d opted in and %d secured (%d once it was gone); "+
		"the other replica held the Lease %s after the kill (Lease 15s; transitions %d) and had secured all %d %s after the kill; no duplicate companion",
		retrofitted, killed.Sub(optIn).Round(time.Millisecond), optedAtKill, atKill, afterKill, tookOver.Round(time.Millisecond), ptrValue(lease.Spec.LeaseTransitions),
		retrofitted, finished.Round(time.Millisecond))
}
