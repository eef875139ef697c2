package policy

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

func msp(name string, mode v1alpha1.Mode, matchLabels map[string]string) v1alpha1.MetricsSecurityPolicy {
	return v1alpha1.MetricsSecurityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.MetricsSecurityPolicySpec{Mode: mode, NamespaceSelector: &metav1.LabelSelector{MatchLabels: matchLabels}},
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
		"no selector selects nothing":      {policies: []v1alpha1.MetricsSecurityPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "none"}, Spec: v1alpha1.MetricsSecurityPolicySpec{Mode: v1alpha1.ModeEnforce}}}, want: ""},
		"kube-system is never covered":     {policies: []v1alpha1.MetricsSecurityPolicy{msp("all", v1alpha1.ModeEnforce, nil)}, namespace: "kube-system", want: ""},
		"excluded namespace":               {policies: []v1alpha1.MetricsSecurityPolicy{msp("all", v1alpha1.ModeEnforce, nil)}, labels: map[string]string{keys.LabelExclude: ""}, want: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := tc.namespace
			if ns == "" {
				ns = "elastic-system"
			}
			got := ""
			if c := (*Selectors)(nil).Cover(tc.policies, ns, tc.labels); c != nil {
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
	optOut := map[string]string{keys.AnnotationSecure: "false"}
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
		// A value from elsewhere is no longer denied: a flag, which wins, secures it (engine tests).
		"enforce secures METRICS_SECURE from elsewhere": {mode: v1alpha1.ModeEnforce, guarded: true,
			env: []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "secure"}}}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			tmpl.Spec.Containers[0].Env = tc.env
			cm := config("metrics-port: 0\n")
			cm.Annotations = tc.cm
			d := Decide(Input{Operator: op, Template: tmpl, ConfigMap: cm, WorkloadAnnotations: tc.workload, NamespaceAnnotations: tc.namespace, Coverage: coverage(tc.mode),
				Defaults: Defaults{TLSSecret: "metrics-tls"}}) // a certificate source: no warning about it
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
			warnings := strings.Join(d.Warnings, "\n")
			if tc.warning == "" && len(d.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", d.Warnings)
			}
			if !strings.Contains(warnings, tc.warning) {
				t.Errorf("warnings %q do not contain %q", d.Warnings, tc.warning)
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

	// An external issuer keeps its group; an annotation's issuer is cert-manager's.
	c.Defaults.Issuer = &v1alpha1.IssuerReference{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}
	if d := Decide(in); d.Plan == nil || *d.Plan.Issuer != (IssuerRef{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}) {
		t.Errorf("external issuer: %+v", d.Plan)
	}

	// The operator's own annotations still choose over the policy.
	in.WorkloadAnnotations = map[string]string{keys.AnnotationMetricsPort: "8090", keys.AnnotationIssuer: "own", keys.AnnotationIssuerKind: IssuerKind}
	d = Decide(in)
	if d.Plan == nil || d.Plan.Port != 8090 || *d.Plan.Issuer != (IssuerRef{Name: "own", Kind: IssuerKind}) {
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

// TestAuditChangesNothing: an Audit policy's defaults do not reach an operator that opted in
// by annotation (they would move its port and issue a new certificate: a restart).
func TestAuditChangesNothing(t *testing.T) {
	op, tmpl := operator()
	port := int32(9100)
	in := Input{Operator: op, Template: tmpl, ConfigMap: config("metrics-port: 0\n"), WorkloadAnnotations: secureTrue,
		Coverage: &Coverage{Policy: "platform", Mode: v1alpha1.ModeAudit, Defaults: v1alpha1.PolicyDefaults{
			MetricsPort: &port, Issuer: &v1alpha1.IssuerReference{Name: "platform-ca", Kind: ClusterIssuerKind}}}}
	d := Decide(in)
	if d.Plan == nil || d.Plan.Port != 8081 || d.Plan.Issuer != nil {
		t.Errorf("an Audit policy changed the plan of an opted-in operator: %+v", d.Plan)
	}
	in.Coverage.Mode = v1alpha1.ModeMutate
	if d := Decide(in); d.Plan == nil || d.Plan.Port != 9100 || d.Plan.Issuer == nil {
		t.Errorf("a Mutate policy's defaults were not used: %+v", d.Plan)
	}
}

// TestOwnSecretKeepsItsCertificate: a default issuer (policy or flag) never points a
// Certificate at a Secret the operator brought; an issuer annotation next to it does.
func TestOwnSecretKeepsItsCertificate(t *testing.T) {
	c := &Coverage{Policy: "platform", Mode: v1alpha1.ModeMutate, Defaults: v1alpha1.PolicyDefaults{Issuer: &v1alpha1.IssuerReference{Name: "platform-ca"}}}
	tests := map[string]struct {
		annotations map[string]string
		volume      string
		wantSecret  string
		wantIssuer  string
	}{
		"nothing of its own":           {wantSecret: "elastic-operator-metrics-guard-tls", wantIssuer: "platform-ca"},
		"tls-secret annotation":        {annotations: map[string]string{keys.AnnotationTLSSecret: "mine"}, wantSecret: "mine"},
		"volume of its own":            {volume: "mine", wantSecret: "mine"},
		"volume the guard made":        {volume: "elastic-operator-metrics-guard-tls", wantSecret: "elastic-operator-metrics-guard-tls", wantIssuer: "platform-ca"},
		"tls-secret and issuer chosen": {annotations: map[string]string{keys.AnnotationTLSSecret: "mine", keys.AnnotationIssuer: "team-ca"}, wantSecret: "mine", wantIssuer: "team-ca"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			if tc.volume != "" {
				tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: tc.volume}}})
			}
			for _, defaults := range []struct {
				name     string
				coverage *Coverage
				flags    Defaults
			}{{"policy", c, Defaults{}}, {"flag", nil, Defaults{Issuer: "platform-ca"}}} {
				d := Decide(Input{Operator: op, Template: tmpl, ConfigMap: config(""), WorkloadAnnotations: tc.annotations, Coverage: defaults.coverage, Defaults: defaults.flags,
					NamespaceAnnotations: secureTrue})
				if d.Plan == nil {
					t.Fatalf("%s: not planned: %s %v", defaults.name, d.Skip, d.Errs)
				}
				issuer := ""
				if d.Plan.Issuer != nil {
					issuer = d.Plan.Issuer.Name
				}
				if d.Plan.SecretName != tc.wantSecret || issuer != tc.wantIssuer {
					t.Errorf("default issuer from the %s: secret %q, issuer %q; want %q, %q", defaults.name, d.Plan.SecretName, issuer, tc.wantSecret, tc.wantIssuer)
				}
			}
		})
	}
}

// TestPolicyLeavesUnownedConfigMapsAlone: a ConfigMap whose operator is not known is covered by
// a policy only when it is labelled as ECK's; an application's config.yaml with a
// metrics-port key is never rewritten because a policy covers its namespace.
func TestPolicyLeavesUnownedConfigMapsAlone(t *testing.T) {
	mutating := &Coverage{Policy: "platform", Mode: v1alpha1.ModeEnforce}
	app := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "apps", Annotations: map[string]string{keys.AnnotationSecure: "false"}},
		Data: map[string]string{"config.yaml": "listen: :8080\nmetrics-port: 9090\n"}}
	d := Decide(Input{ConfigMap: app, ConfigKey: "config.yaml", Coverage: mutating, Admitting: HolderConfigMap})
	if d.Guarded || d.Plan != nil || len(d.Denied) > 0 {
		t.Errorf("an application's ConfigMap under a policy: guarded %v, plan %v, denied %v", d.Guarded, d.Plan != nil, d.Denied)
	}
	eckConfig := config("metrics-port: 0\n")
	eckConfig.Labels = map[string]string{"control-plane": "elastic-operator"}
	if d := Decide(Input{ConfigMap: eckConfig, Coverage: mutating, Admitting: HolderConfigMap}); d.Plan == nil {
		t.Errorf("ECK's own labelled ConfigMap was not secured under Enforce: %s", d.Skip)
	}
}

// TestViolationsOnOtherObjectsWarn: the object under admission is denied only for what it
// holds itself; the ConfigMap's opt-out does not deny a write of the StatefulSet.
func TestViolationsOnOtherObjectsWarn(t *testing.T) {
	op, tmpl := operator()
	cm := config("metrics-port: 0\n")
	cm.Annotations = map[string]string{keys.AnnotationSecure: "false"}
	in := Input{Operator: op, Template: tmpl, ConfigMap: cm, Coverage: &Coverage{Policy: "platform", Mode: v1alpha1.ModeEnforce}}
	in.Admitting = HolderWorkload
	d := Decide(in)
	if len(d.Denied) > 0 || d.Plan == nil || !strings.Contains(strings.Join(d.Warnings, "\n"), "ConfigMap: metadata.annotations[metrics-guard.eck.dev/secure]: Forbidden") {
		t.Errorf("admitting the workload: denied %v, plan %v, warnings %q", d.Denied, d.Plan != nil, d.Warnings)
	}
	in.Admitting = HolderConfigMap
	if d := Decide(in); len(d.Denied) != 1 {
		t.Errorf("admitting the ConfigMap: denied %v, want its opt-out", d.Denied)
	}
	in.Admitting = "" // the controller
	if d := Decide(in); len(d.Denied) != 1 || d.Plan == nil {
		t.Errorf("for the controller: denied %v, plan %v; want the violation and a plan", d.Denied, d.Plan != nil)
	}
}

// TestNothingEnforcedOnUnsupportedOperators: Enforce denies nothing on an operator older than
// 2.16.0, which the guard leaves unchanged anyway.
func TestNothingEnforcedOnUnsupportedOperators(t *testing.T) {
	op, tmpl := operator()
	tmpl.Spec.Containers[0].Image = "docker.elastic.co/eck/eck-operator:2.14.0"
	old, ok := eck.FromStatefulSet(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: op.Name, Namespace: op.Namespace}, Spec: appsv1.StatefulSetSpec{
		Selector: &metav1.LabelSelector{MatchLabels: op.Selector}, Template: *tmpl}})
	if !ok {
		t.Fatal("2.14.0 operator not recognised")
	}
	d := Decide(Input{Operator: old, Template: tmpl, ConfigMap: config(""), WorkloadAnnotations: map[string]string{keys.AnnotationSecure: "false"},
		Coverage: &Coverage{Policy: "platform", Mode: v1alpha1.ModeEnforce}, Admitting: HolderWorkload})
	if len(d.Denied) > 0 || d.Plan != nil {
		t.Errorf("denied %v, plan %v", d.Denied, d.Plan != nil)
	}
}

// TestFlagSecretStaysAFixedPoint: with --tls-secret X and --issuer Y, the first pass mounts X
// and requests a Certificate into it; the second pass, seeing the volume X, must not take X
// for the user's own Secret and drop the Certificate.
func TestFlagSecretStaysAFixedPoint(t *testing.T) {
	op, tmpl := operator()
	flags := Defaults{TLSSecret: "x", Issuer: "y"}
	first := Decide(Input{Operator: op, Template: tmpl, ConfigMap: config(""), NamespaceAnnotations: secureTrue, Defaults: flags})
	if first.Plan == nil || first.Plan.SecretName != "x" || first.Plan.Issuer == nil {
		t.Fatalf("first pass: %+v", first.Plan)
	}
	tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "x"}}})
	second := Decide(Input{Operator: op, Template: tmpl, ConfigMap: config(""), NamespaceAnnotations: secureTrue, Defaults: flags})
	if second.Plan == nil || second.Plan.SecretName != "x" || second.Plan.Issuer == nil || second.Plan.Issuer.Name != "y" {
		t.Errorf("second pass lost the Certificate: %+v", second.Plan)
	}
}
