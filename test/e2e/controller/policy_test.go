package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestPolicyValidation: the API server itself refuses a MetricsSecurityPolicy that makes no
// sense, with a message that names the field (the CRD's schema and CEL rules), and accepts
// the sample in config/samples.
func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	env.MustKubectl(t, "apply", "--server-side", "--dry-run=server", "-f", filepath.Join(repo, "config", "samples", "policy.yaml"))

	port := func(p int32) *int32 { return &p }
	dur := func(s string) *metav1.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Duration{Duration: d}
	}
	issuer := &v1alpha1.IssuerReference{Name: "ca"}
	tests := map[string]struct {
		spec v1alpha1.MetricsSecurityPolicySpec
		want string
	}{
		"unknown mode": {spec: v1alpha1.MetricsSecurityPolicySpec{Mode: "Block"},
			want: `spec.mode: Unsupported value: "Block": supported values: "Audit", "Mutate", "Enforce"`},
		"privileged port": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{MetricsPort: port(80)}},
			want: "spec.defaults.metricsPort: Invalid value: 80: spec.defaults.metricsPort in body should be greater than or equal to 1024"},
		"issuer kind": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Issuer: &v1alpha1.IssuerReference{Name: "ca", Kind: "Vault"}}},
			want: `spec.defaults.issuer: Invalid value: kind must be Issuer or ClusterIssuer for group cert-manager.io`},
		"issuer name": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Issuer: &v1alpha1.IssuerReference{Name: "My_CA"}}},
			want: `spec.defaults.issuer.name: Invalid value: "My_CA"`},
		"renewBefore not shorter than duration": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Issuer: issuer,
			Certificate: &v1alpha1.CertificateDefaults{Duration: dur("24h"), RenewBefore: dur("48h")}}},
			want: "spec.defaults.certificate: Invalid value: renewBefore must be shorter than duration"},
		"duration too short": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Issuer: issuer,
			Certificate: &v1alpha1.CertificateDefaults{Duration: dur("10m")}}},
			want: `spec.defaults.certificate.duration: Invalid value: "10m0s": must be at least 1h`},
		"unknown monitor kind": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Monitor: &v1alpha1.MonitorDefaults{Kind: "Probe"}}},
			want: `spec.defaults.monitor.kind: Unsupported value: "Probe": supported values: "ServiceMonitor", "PodMonitor", "None"`},
		"PodMonitor without a token Secret": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Monitor: &v1alpha1.MonitorDefaults{Kind: "PodMonitor"}}},
			want: "spec.defaults.monitor: Invalid value: a PodMonitor has no bearerTokenFile"},
		"serviceMonitor and monitor.kind": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{ServiceMonitor: ptr(true), Monitor: &v1alpha1.MonitorDefaults{Kind: "ServiceMonitor"}}},
			want: "spec.defaults: Invalid value: set monitor.kind or serviceMonitor, not both"},
		"scrape interval": {spec: v1alpha1.MetricsSecurityPolicySpec{Defaults: v1alpha1.PolicyDefaults{Monitor: &v1alpha1.MonitorDefaults{Interval: "30 seconds"}}},
			want: `spec.defaults.monitor.interval: Invalid value: "30 seconds"`},
	}
	t.Run("external issuer", func(t *testing.T) {
		p := &v1alpha1.MetricsSecurityPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "external-"}, Spec: v1alpha1.MetricsSecurityPolicySpec{NamespaceSelector: &metav1.LabelSelector{},
			Defaults: v1alpha1.PolicyDefaults{Issuer: &v1alpha1.IssuerReference{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}}}}
		if err := env.Client.Create(context.Background(), p, client.DryRunAll); err != nil {
			t.Errorf("an external issuer was refused: %v", err)
		}
		p = &v1alpha1.MetricsSecurityPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "defaulted-"}, Spec: v1alpha1.MetricsSecurityPolicySpec{NamespaceSelector: &metav1.LabelSelector{},
			Defaults: v1alpha1.PolicyDefaults{Issuer: &v1alpha1.IssuerReference{Name: "ca"}}}}
		if err := env.Client.Create(context.Background(), p, client.DryRunAll); err != nil || p.Spec.Defaults.Issuer.Kind != "Issuer" || p.Spec.Defaults.Issuer.Group != "cert-manager.io" {
			t.Errorf("issuer defaults: %v, kind %q, group %q", err, p.Spec.Defaults.Issuer.Kind, p.Spec.Defaults.Issuer.Group)
		}
	})
	t.Run("no namespaceSelector", func(t *testing.T) {
		// Covering every namespace must be said out loud: namespaceSelector: {}.
		manifest := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(manifest, []byte("apiVersion: metrics-guard.eck.dev/v1alpha1\nkind: MetricsSecurityPolicy\nmetadata: {name: everything}\nspec: {mode: Enforce}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := env.Kubectl(t, "create", "--dry-run=server", "-f", manifest)
		if want := "spec.namespaceSelector: Required value"; err == nil || !strings.Contains(stderr, want) {
			t.Errorf("create without namespaceSelector: %v %s; want %q", err, stderr, want)
		}
	})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.spec.NamespaceSelector = &metav1.LabelSelector{}
			p := &v1alpha1.MetricsSecurityPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "invalid-"}, Spec: tc.spec}
			err := env.Client.Create(context.Background(), p, client.DryRunAll)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("create: %v\nwant an Invalid error containing %q", err, tc.want)
			}
		})
	}
}

// TestPolicyInvalidSelector: a selector the schema cannot check (an unknown operator) is
// stored, selects nothing, and the status says why.
func TestPolicyInvalidSelector(t *testing.T) {
	t.Parallel()
	p := &v1alpha1.MetricsSecurityPolicy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-bad-selector-"},
		Spec: v1alpha1.MetricsSecurityPolicySpec{Mode: v1alpha1.ModeEnforce, NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near", Values: []string{"prod"}}},
		}},
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	status := waitForStatus(t, p, func(s v1alpha1.MetricsSecurityPolicyStatus) bool {
		return apimeta.FindStatusCondition(s.Conditions, "Ready") != nil
	})
	c := apimeta.FindStatusCondition(status.Conditions, "Ready")
	if c.Status != metav1.ConditionFalse || c.Reason != "InvalidSelector" || !strings.Contains(c.Message, `spec.namespaceSelector`) || !strings.Contains(c.Message, `"Near"`) {
		t.Errorf("Ready condition: %+v", c)
	}
	if status.Covered != 0 || len(status.Operators) != 0 {
		t.Errorf("an invalid selector covers %d operators", status.Covered)
	}
}

// TestPolicyAuditMutateEnforce walks two ECK operators, in namespaces that only a label
// connects to a policy, through the three modes. A secures normally; B opted out before the
// policy existed. Audit reports both and changes nothing; Mutate secures A with the policy's
// issuer, certificate lifetime and ServiceMonitor choice, and leaves B alone; Enforce denies a
// new opt-out on A, secures B despite its old one, and does not block other writes of B.
func TestPolicyAuditMutateEnforce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	selector := map[string]string{"e2e.metrics-guard.eck.dev/policy": fmt.Sprintf("walk-%d", time.Now().UnixNano())}
	fixture := framework.ECKManifest(t, "operator-3.5.0.yaml")
	nsA, nsB := env.Namespace(t, "e2e-policy-a", nil, selector), env.Namespace(t, "e2e-policy-b", nil, selector)
	for _, ns := range []string{nsA, nsB} {
		caIssuer(t, ns)
		env.MustKubectl(t, "apply", "-f", framework.Manifest(t, fixture, ns))
	}
	a, b := env.Operator(t, nsA), env.Operator(t, nsB)
	env.MustKubectl(t, "-n", nsB, "annotate", "statefulset", b.Op.Name, keys.AnnotationSecure+"=false")
	name := a.Op.Name + "-metrics-guard"

	p := &v1alpha1.MetricsSecurityPolicy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-walk-"},
		Spec: v1alpha1.MetricsSecurityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: selector},
			// Mode left out: the API server defaults it to Audit.
			Defaults: v1alpha1.PolicyDefaults{
				Issuer:         &v1alpha1.IssuerReference{Name: "e2e-ca"},
				Certificate:    &v1alpha1.CertificateDefaults{Duration: &metav1.Duration{Duration: 48 * time.Hour}, RenewBefore: &metav1.Duration{Duration: 12 * time.Hour}},
				ServiceMonitor: ptr(false),
			},
		},
	}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	if p.Spec.Mode != v1alpha1.ModeAudit {
		t.Errorf("mode defaulted to %q, want Audit", p.Spec.Mode)
	}

	// Audit: the status lists both operators as not compliant, says why, and nothing changes.
	status := waitForStatus(t, p, func(s v1alpha1.MetricsSecurityPolicyStatus) bool {
		return s.Covered == 2 && len(s.Operators) == 2 && len(s.Operators[0].Reasons) > 0
	})
	entry := status.Operators[0]
	if nsB < nsA {
		entry = status.Operators[1]
	}
	if entry.Compliant || status.Compliant != 0 || entry.Namespace != nsA || entry.Name != a.Op.Name || entry.Kind != "StatefulSet" ||
		entry.Policy != p.Name || entry.Mode != v1alpha1.ModeAudit || entry.Version != "3.5.0" {
		t.Errorf("audit status: %+v", status)
	}
	// The reason is the verdict on what ECK reads, naming the source that wins.
	if !strings.Contains(strings.Join(entry.Reasons, "\n"), "open: metrics-secure false from eck.yaml (ConfigMap elastic-operator data[eck.yaml])") {
		t.Errorf("reasons do not say what is missing, and where it comes from: %q", entry.Reasons)
	}
	if c := apimeta.FindStatusCondition(status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation {
		t.Errorf("Ready condition: %+v", c)
	}
	_, stderr := env.MustKubectl(t, "-n", nsA, "annotate", "statefulset", a.Op.Name, "e2e/touch=1")
	if !strings.Contains(stderr, "(Audit) covers StatefulSet "+nsA+"/"+a.Op.Name+", and its metrics endpoint is not secured") {
		t.Errorf("an audited write got no warning: %q", stderr)
	}
	if got := env.Operator(t, nsA); got.Object.GetAnnotations()[keys.AnnotationStatus] != "" || strings.Contains(got.ConfigMap.Data["eck.yaml"], "metrics-secure: true") {
		t.Error("Audit changed the operator")
	}

	// Mutate: A is retrofitted with the policy's defaults and becomes compliant; B opted out.
	setMode(t, p, v1alpha1.ModeMutate)
	framework.EventuallyWithin(t, "A to be secured under Mutate", time.Minute, func() (bool, error) {
		return env.Operator(t, nsA).Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	cert := &cmv1.Certificate{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: nsA, Name: name}, cert); err != nil {
		t.Fatalf("no Certificate from the policy's issuer: %v", err)
	}
	if cert.Spec.IssuerRef.Name != "e2e-ca" || cert.Spec.Duration.Duration != 48*time.Hour || cert.Spec.RenewBefore.Duration != 12*time.Hour {
		t.Errorf("Certificate does not follow the policy: issuer %s, duration %v, renewBefore %v", cert.Spec.IssuerRef.Name, cert.Spec.Duration, cert.Spec.RenewBefore)
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: nsA, Name: name}, &monitoringv1.ServiceMonitor{}); !apierrors.IsNotFound(err) {
		t.Errorf("ServiceMonitor: %v; the policy says serviceMonitor: false", err)
	}
	waitForStatus(t, p, func(s v1alpha1.MetricsSecurityPolicyStatus) bool {
		return s.Compliant == 1 && s.Operators[0].Mode == v1alpha1.ModeMutate
	})
	if got := env.Operator(t, nsB); got.Object.GetAnnotations()[keys.AnnotationStatus] != "" || strings.Contains(got.ConfigMap.Data["eck.yaml"], "metrics-secure: true") {
		t.Error("Mutate secured B, which opted out")
	}

	// Enforce: a new opt-out is denied, with the policy named.
	setMode(t, p, v1alpha1.ModeEnforce)
	framework.Eventually(t, "opting A out to be denied", func() (bool, error) {
		_, stderr, err := env.Kubectl(t, "-n", nsA, "annotate", "statefulset", a.Op.Name, keys.AnnotationSecure+"=false")
		if err == nil { // the cache has not seen the new mode yet: undo, and try again
			env.MustKubectl(t, "-n", nsA, "annotate", "statefulset", a.Op.Name, keys.AnnotationSecure+"-")
			return false, nil
		}
		want := "MetricsSecurityPolicy " + p.Name + " (Enforce) enforces secure metrics in namespace " + nsA + ": the StatefulSet may not opt out"
		if !strings.Contains(stderr, want) {
			return false, fmt.Errorf("denied, but the message %q does not contain %q", stderr, want)
		}
		return true, nil
	})
	if got := env.Operator(t, nsA); got.Object.GetAnnotations()[keys.AnnotationSecure] != "" {
		t.Error("the denied opt-out was written")
	}

	// B's old opt-out: the controller secures B anyway (its own patches are not denied), and
	// another write of B goes through, with a warning.
	framework.EventuallyWithin(t, "B to be secured despite its old opt-out", time.Minute, func() (bool, error) {
		got := env.Operator(t, nsB)
		return got.Object.GetAnnotations()[keys.AnnotationStatus] == "secured" && strings.Contains(got.ConfigMap.Data["eck.yaml"], "metrics-secure: true"), nil
	})
	_, stderr = env.MustKubectl(t, "-n", nsB, "label", "statefulset", b.Op.Name, "e2e/touched=yes")
	if !strings.Contains(stderr, "there before this request; secured anyway") {
		t.Errorf("a write of B kept its old opt-out without a warning: %q", stderr)
	}
	waitForStatus(t, p, func(s v1alpha1.MetricsSecurityPolicyStatus) bool {
		return s.Covered == 2 && s.Compliant == 2
	})

	// A deleted auth-delegator binding (cluster-scoped, so not owned) is noticed and restored,
	// with the policy's operators among its subjects.
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: controller.DefaultBindingName}}
	if err := env.Client.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	waitForSubject(t, nsA, a.Op.ServiceAccount, true)
}

// setMode changes a policy's mode.
func setMode(t *testing.T, p *v1alpha1.MetricsSecurityPolicy, mode v1alpha1.Mode) {
	t.Helper()
	before := p.DeepCopy()
	p.Spec.Mode = mode
	if err := env.Client.Patch(context.Background(), p, client.MergeFrom(before)); err != nil {
		t.Fatal(err)
	}
}

// waitForStatus waits until the policy's status, for its current generation, satisfies ok.
func waitForStatus(t *testing.T, p *v1alpha1.MetricsSecurityPolicy, ok func(v1alpha1.MetricsSecurityPolicyStatus) bool) v1alpha1.MetricsSecurityPolicyStatus {
	t.Helper()
	var last v1alpha1.MetricsSecurityPolicyStatus
	framework.EventuallyWithin(t, "the status of MetricsSecurityPolicy "+p.Name, time.Minute, func() (bool, error) {
		got := &v1alpha1.MetricsSecurityPolicy{}
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), got); err != nil {
			return false, err
		}
		last = got.Status
		return got.Status.ObservedGeneration == got.Generation && ok(got.Status), nil
	})
	return last
}

func ptr[T any](v T) *T { return &v }
