package policy

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/meta"
)

func msp(name string, mode v1alpha1.Mode, matchLabels map[string]string) v1alpha1.MetricsSecurityPolicy {
	return v1alpha1.MetricsSecurityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.MetricsSecurityPolicySpec{Mode: mode, NamespaceSelector: metav1.LabelSelector{MatchLabels: matchLabels}},
	}
}

func TestCover(t *testing.T) {
	prod := map[string]string{"env": "prod"}
	badSelector := msp("bad", v1alpha1.ModeEnforce, nil)
	badSelector.Spec.NamespaceSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}
	tests := map[string]struct {
		policies  []v1alpha1.MetricsSecurityPolicy
		namespace string
		labels    map[string]string
		want      string // "name/mode", or "" for none
	}{
		"none":                       {want: ""},
		"selector does not match":    {policies: []v1alpha1.MetricsSecurityPolicy{msp("p", v1alpha1.ModeMutate, prod)}, labels: map[string]string{"env": "dev"}, want: ""},
		"selector matches":           {policies: []v1alpha1.MetricsSecurityPolicy{msp("p", v1alpha1.ModeMutate, prod)}, labels: prod, want: "p/Mutate"},
		"empty selector matches all": {policies: []v1alpha1.MetricsSecurityPolicy{msp("all", "", nil)}, want: "all/Audit"},
		"strongest mode wins": {policies: []v1alpha1.MetricsSecurityPolicy{
			msp("a", v1alpha1.ModeAudit, nil), msp("z", v1alpha1.ModeEnforce, prod), msp("m", v1alpha1.ModeMutate, nil),
		}, labels: prod, want: "z/Enforce"},
		"tie goes to the first name": {policies: []v1alpha1.MetricsSecurityPolicy{
			msp("b", v1alpha1.ModeMutate, nil), msp("a", v1alpha1.ModeMutate, nil),
		}, want: "a/Mutate"},
		"invalid selector selects nothing": {policies: []v1alpha1.MetricsSecurityPolicy{badSelector, msp("ok", v1alpha1.ModeAudit, nil)}, labels: prod, want: "ok/Audit"},
		"kube-system is never covered":     {policies: []v1alpha1.MetricsSecurityPolicy{msp("all", v1alpha1.ModeEnforce, nil)}, namespace: "kube-system", want: ""},
		"excluded namespace":               {policies: []v1alpha1.MetricsSecurityPolicy{msp("all", v1alpha1.ModeEnforce, nil)}, labels: map[string]string{meta.LabelExclude: ""}, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := tc.namespace
			if ns == "" {
				ns = "elastic-system"
			}
			got := ""
			if c := Cover(tc.policies, ns, tc.labels); c != nil {
				got = c.Policy + "/" + string(c.Mode)
			}
			if got != tc.want {
				t.Errorf("Cover = %q, want %q", got, tc.want)
			}
		})
	}
}

func coverage(mode v1alpha1.Mode) *Coverage {
	return &Coverage{Policy: "platform", Mode: mode}
}

func TestDecideUnderPolicy(t *testing.T) {
	optOut := map[string]string{meta.AnnotationSecure: "false"}
	tests := map[string]struct {
		mode      v1alpha1.Mode
		workload  map[string]string
		namespace map[string]string
		cm        map[string]string
		env       []corev1.EnvVar

		guarded bool
		denied  string // substring of the denial; "" for none
		warning string // substring of a warning; "" for none
	}{
		"audit leaves alone, with a warning": {mode: v1alpha1.ModeAudit, warning: "MetricsSecurityPolicy platform (Audit) covers StatefulSet elastic-system/elastic-operator, and its metrics endpoint is not secured"},
		"audit keeps an explicit opt-in":     {mode: v1alpha1.ModeAudit, workload: secureTrue, guarded: true},
		"mutate secures without annotation":  {mode: v1alpha1.ModeMutate, guarded: true},
		"mutate allows opting out":           {mode: v1alpha1.ModeMutate, workload: optOut, warning: "opted out"},
		"enforce secures without annotation": {mode: v1alpha1.ModeEnforce, guarded: true},
		"enforce denies a workload opt-out": {mode: v1alpha1.ModeEnforce, workload: optOut, guarded: true,
			denied: `metadata.annotations[metrics-guard.eck.dev/secure]: Forbidden: MetricsSecurityPolicy platform (Enforce) enforces secure metrics in namespace elastic-system: the StatefulSet may not opt out`},
		"enforce denies a ConfigMap opt-out": {mode: v1alpha1.ModeEnforce, cm: optOut, guarded: true, denied: "the ConfigMap may not opt out"},
		"enforce overrides a namespace opt-out": {mode: v1alpha1.ModeEnforce, namespace: optOut, guarded: true,
			warning: `MetricsSecurityPolicy platform (Enforce) overrides metrics-guard.eck.dev/secure: "false" on namespace elastic-system`},
		"enforce denies METRICS_SECURE from elsewhere": {mode: v1alpha1.ModeEnforce, guarded: true,
			env:    []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "secure"}}}},
			denied: "spec.template.spec.containers[0].env[0].valueFrom: Forbidden: METRICS_SECURE overrides eck.yaml's metrics-secure"},
		"mutate warns of METRICS_SECURE from elsewhere": {mode: v1alpha1.ModeMutate, guarded: true,
			env:     []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "secure"}}}},
			warning: "METRICS_SECURE overrides eck.yaml's metrics-secure"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			tmpl.Spec.Containers[0].Env = tc.env
			cm := config("metrics-port: 0\n")
			cm.Annotations = tc.cm
			d := Decide(Input{Operator: op, Template: tmpl, ConfigMap: cm, WorkloadAnnotations: tc.workload, NamespaceAnnotations: tc.namespace, Coverage: coverage(tc.mode)})
			if len(d.Errs) > 0 {
				t.Fatalf("Errs = %v", d.Errs)
			}
			if d.Guarded != tc.guarded || (d.Plan != nil) != tc.guarded {
				t.Errorf("guarded = %v, plan = %v, want guarded %v (skip: %s)", d.Guarded, d.Plan != nil, tc.guarded, d.Skip)
			}
			denied := d.Denied.ToAggregate()
			switch {
			case tc.denied == "" && denied != nil:
				t.Errorf("denied: %v", denied)
			case tc.denied != "" && (denied == nil || !strings.Contains(denied.Error(), tc.denied)):
				t.Errorf("denial = %v, want it to contain %q", denied, tc.denied)
			}
			if tc.warning != "" && !strings.Contains(strings.Join(append(d.Warnings, d.Skip), "\n"), tc.warning) {
				t.Errorf("warnings %q and skip %q do not contain %q", d.Warnings, d.Skip, tc.warning)
			}
		})
	}
}

func TestPolicyDefaults(t *testing.T) {
	op, tmpl := operator()
	port := int32(9100)
	c := &Coverage{Policy: "platform", Mode: v1alpha1.ModeMutate, Defaults: v1alpha1.PolicyDefaults{
		MetricsPort: &port, Issuer: &v1alpha1.IssuerReference{Name: "platform-ca", Kind: ClusterIssuerKind},
	}}
	in := Input{Operator: op, Template: tmpl, ConfigMap: config("metrics-port: 0\n"), Coverage: c,
		Defaults: Defaults{Port: 8085, Issuer: "flag-issuer", IssuerKind: IssuerKind}}
	d := Decide(in)
	if d.Plan == nil {
		t.Fatalf("not planned: %s %v", d.Skip, d.Errs)
	}
	if d.Plan.Port != 9100 || d.Plan.Issuer == nil || *d.Plan.Issuer != (IssuerRef{Name: "platform-ca", Kind: ClusterIssuerKind}) {
		t.Errorf("policy defaults not used over the flags: port %d, issuer %+v", d.Plan.Port, d.Plan.Issuer)
	}

	// The operator's own annotations still choose over the policy.
	in.WorkloadAnnotations = map[string]string{meta.AnnotationMetricsPort: "8090", meta.AnnotationIssuer: "own", meta.AnnotationIssuerKind: IssuerKind}
	d = Decide(in)
	if d.Plan == nil || d.Plan.Port != 8090 || d.Plan.Issuer.Name != "own" {
		t.Errorf("annotations did not win over the policy: %+v", d.Plan)
	}
}

// BenchmarkCover: which of 100 policies (each a matchLabels and a matchExpressions selector)
// governs a namespace; the webhook does this on every request of a policy-covered operator.
func BenchmarkCover(b *testing.B) {
	var policies []v1alpha1.MetricsSecurityPolicy
	for i := range 100 {
		p := msp(fmt.Sprintf("team-%03d", i), []v1alpha1.Mode{v1alpha1.ModeAudit, v1alpha1.ModeMutate, v1alpha1.ModeEnforce}[i%3], map[string]string{"team": fmt.Sprint(i % 10)})
		p.Spec.NamespaceSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod", "staging"}}}
		p.UID, p.Generation = types.UID(p.Name), 1 // as the API server sets them
		policies = append(policies, p)
	}
	labels := map[string]string{"team": "3", "env": "prod", "kubernetes.io/metadata.name": "elastic-system"}
	for name, s := range map[string]*Selectors{"converted every time": nil, "converted once (Selectors)": {}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if c := s.Cover(policies, "elastic-system", labels); c == nil || c.Mode != v1alpha1.ModeEnforce {
					b.Fatalf("Cover = %+v", c)
				}
			}
		})
	}
}

// TestSelectorsFollowGenerations: a converted selector is used until the policy's generation
// changes (the API server bumps it on every spec change).
func TestSelectorsFollowGenerations(t *testing.T) {
	s := &Selectors{}
	p := msp("p", v1alpha1.ModeMutate, map[string]string{"env": "prod"})
	p.UID, p.Generation = "uid-1", 1
	prod, dev := map[string]string{"env": "prod"}, map[string]string{"env": "dev"}
	if s.Cover([]v1alpha1.MetricsSecurityPolicy{p}, "ns", prod) == nil {
		t.Fatal("generation 1 does not cover env=prod")
	}
	p.Spec.NamespaceSelector.MatchLabels = dev
	p.Generation = 2
	if s.Cover([]v1alpha1.MetricsSecurityPolicy{p}, "ns", prod) != nil || s.Cover([]v1alpha1.MetricsSecurityPolicy{p}, "ns", dev) == nil {
		t.Error("generation 2 is still matched with generation 1's selector")
	}
	if len(s.byUID) != 1 {
		t.Errorf("%d selectors kept for one policy", len(s.byUID))
	}
}
