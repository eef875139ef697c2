package policy

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// The certificate validity and the monitor travel in the plan: the flags, under a securing
// policy's defaults, merged once here for every front door.
func TestPlanCompanionsUnderPolicy(t *testing.T) {
	flags := Defaults{Monitor: Monitor{Kind: ServiceMonitorKind}, Certificate: Certificate{Duration: 2160 * time.Hour, RenewBefore: 720 * time.Hour}}
	day := &metav1.Duration{Duration: 24 * time.Hour}
	off := false
	tests := map[string]struct {
		mode        v1alpha1.Mode
		defaults    v1alpha1.PolicyDefaults
		monitor     string
		certificate Certificate
	}{
		"no policy": {monitor: ServiceMonitorKind, certificate: flags.Certificate},
		"audit changes nothing": {mode: v1alpha1.ModeAudit, defaults: v1alpha1.PolicyDefaults{ServiceMonitor: &off, Certificate: &v1alpha1.CertificateDefaults{Duration: day}},
			monitor: ServiceMonitorKind, certificate: flags.Certificate},
		"mutate takes the policy's": {mode: v1alpha1.ModeMutate, defaults: v1alpha1.PolicyDefaults{ServiceMonitor: &off, Certificate: &v1alpha1.CertificateDefaults{
			Duration: day, RenewBefore: &metav1.Duration{Duration: time.Hour}}},
			monitor: "", certificate: Certificate{Duration: 24 * time.Hour, RenewBefore: time.Hour}},
		// A duration of 24h under the flags' renewBefore of 720h: cert-manager would refuse it.
		"duration only, shorter than the flags' renewBefore": {mode: v1alpha1.ModeEnforce, defaults: v1alpha1.PolicyDefaults{Certificate: &v1alpha1.CertificateDefaults{Duration: day}},
			monitor: ServiceMonitorKind, certificate: Certificate{Duration: 24 * time.Hour, RenewBefore: 8 * time.Hour}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			in := Input{Operator: op, Template: tmpl, ConfigMap: config(""), NamespaceAnnotations: secureTrue, Defaults: flags}
			if tc.mode != "" {
				in.Coverage = &Coverage{Policy: "p", Mode: tc.mode, Defaults: tc.defaults}
			}
			d := Decide(in)
			if d.Plan == nil {
				t.Fatalf("not planned: %s %v", d.Skip, d.Errs)
			}
			monitor := ""
			if d.Plan.Monitor != nil {
				monitor = d.Plan.Monitor.Kind
			}
			if monitor != tc.monitor || d.Plan.Certificate != tc.certificate {
				t.Errorf("monitor %q, certificate %+v; want %q, %+v", monitor, d.Plan.Certificate, tc.monitor, tc.certificate)
			}
		})
	}
	// Front doors that set no validity get cert-manager's defaults, written out.
	op, tmpl := operator()
	if d := Decide(Input{Operator: op, Template: tmpl, ConfigMap: config(""), NamespaceAnnotations: secureTrue}); d.Plan == nil || d.Plan.Certificate != DefaultCertificate || d.Plan.Monitor != nil {
		t.Errorf("zero defaults: %+v", d.Plan)
	}
}

// The monitor's settings: annotations over the policy's over the flags, setting by setting;
// bad values name the annotation and what is allowed.
func TestMonitorSettings(t *testing.T) {
	flags := Defaults{Monitor: Monitor{Kind: ServiceMonitorKind, Labels: map[string]string{"release": "flags"}, Interval: "1m"}}
	policyMonitor := &v1alpha1.MonitorDefaults{Labels: map[string]string{"release": "platform"}, ScrapeTimeout: "20s",
		Authorization: &v1alpha1.SecretKeyReference{Name: "prom-token", Key: "t"}}
	tests := map[string]struct {
		annotations map[string]string
		namespace   map[string]string
		policy      *v1alpha1.MonitorDefaults
		want        *Monitor
		err         string
	}{
		"flags": {want: &Monitor{Kind: ServiceMonitorKind, Labels: map[string]string{"release": "flags"}, Interval: "1m"}},
		"policy over flags": {policy: policyMonitor,
			want: &Monitor{Kind: ServiceMonitorKind, Labels: map[string]string{"release": "platform"}, Interval: "1m", ScrapeTimeout: "20s", TokenSecret: "prom-token", TokenKey: "t"}},
		"annotations over policy": {policy: policyMonitor, annotations: map[string]string{
			keys.AnnotationMonitor: PodMonitorKind, keys.AnnotationMonitorLabels: "release=team, tier=ops", keys.AnnotationScrapeInterval: "30s"},
			namespace: map[string]string{keys.AnnotationScrapeTokenSecret: "own-token"},
			want:      &Monitor{Kind: PodMonitorKind, Labels: map[string]string{"release": "team", "tier": "ops"}, Interval: "30s", ScrapeTimeout: "20s", TokenSecret: "own-token", TokenKey: DefaultTokenKey}},
		"none":                {annotations: map[string]string{keys.AnnotationMonitor: NoMonitor}},
		"policy says None":    {policy: &v1alpha1.MonitorDefaults{Kind: "None"}},
		"unknown kind":        {annotations: map[string]string{keys.AnnotationMonitor: "Probe"}, err: `metrics-guard.eck.dev/monitor]: Unsupported value: "Probe": supported values: "ServiceMonitor", "PodMonitor", "none"`},
		"PodMonitor no token": {annotations: map[string]string{keys.AnnotationMonitor: PodMonitorKind}, err: "a PodMonitor has no bearerTokenFile"},
		"bad labels":          {annotations: map[string]string{keys.AnnotationMonitorLabels: "release"}, err: `"release" is not key=value`},
		"bad label value":     {annotations: map[string]string{keys.AnnotationMonitorLabels: "release=a b"}, err: "monitor-labels]: Invalid value: \"release=a b\""},
		"guard's own label":   {annotations: map[string]string{keys.AnnotationMonitorLabels: "metrics-guard.eck.dev/operator=x"}, err: "is one of the guard's own keys"},
		"bad interval":        {annotations: map[string]string{keys.AnnotationScrapeInterval: "30 seconds"}, err: "must be a Prometheus duration"},
		"timeout > interval":  {annotations: map[string]string{keys.AnnotationScrapeTimeout: "2m"}, err: "must not be longer than the scrape interval 1m"},
		"bad secret":          {namespace: map[string]string{keys.AnnotationScrapeTokenSecret: "Not_A_Name"}, err: "must be the name of a Secret"},
		// The workload's writer chooses the pods the monitor scrapes: a Secret named there
		// would be sent to a pod of theirs.
		"token Secret on the workload": {annotations: map[string]string{keys.AnnotationScrapeTokenSecret: "prometheus-token"},
			err: "metrics-guard.eck.dev/scrape-token-secret]: Forbidden: may be set on the Namespace only"},
		"token key on the workload": {annotations: map[string]string{keys.AnnotationScrapeTokenKey: "token"},
			err: "metrics-guard.eck.dev/scrape-token-key]: Forbidden: may be set on the Namespace only"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			ns := map[string]string{keys.AnnotationSecure: "true"}
			for k, v := range tc.namespace {
				ns[k] = v
			}
			in := Input{Operator: op, Template: tmpl, ConfigMap: config(""), NamespaceAnnotations: ns, WorkloadAnnotations: tc.annotations, Defaults: flags}
			if tc.policy != nil {
				in.Coverage = &Coverage{Policy: "p", Mode: v1alpha1.ModeMutate, Defaults: v1alpha1.PolicyDefaults{Monitor: tc.policy}}
			}
			d := Decide(in)
			if tc.err != "" {
				if got := d.Errs.ToAggregate(); got == nil || !strings.Contains(got.Error(), tc.err) {
					t.Fatalf("errors %v, want one with %q", got, tc.err)
				}
				return
			}
			if d.Plan == nil {
				t.Fatalf("not planned: %s %v", d.Skip, d.Errs)
			}
			if !reflect.DeepEqual(d.Plan.Monitor, tc.want) {
				t.Errorf("monitor %+v, want %+v", d.Plan.Monitor, tc.want)
			}
		})
	}
}

func TestValidateMonitorFlags(t *testing.T) {
	for _, tc := range []struct {
		m    Monitor
		want string
	}{
		{Monitor{Kind: "Probe"}, "--monitor: Unsupported value"},
		{Monitor{Kind: PodMonitorKind}, "--scrape-token-secret: Required value"},
		{Monitor{Kind: ServiceMonitorKind, Interval: "10s", ScrapeTimeout: "30s"}, "--scrape-timeout: Invalid value"},
		{Monitor{Kind: ServiceMonitorKind, Labels: map[string]string{"app.kubernetes.io/managed-by": "x"}}, "--monitor-labels: Invalid value"},
	} {
		if err := ValidateDefaults(Defaults{Monitor: tc.m}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.m, err, tc.want)
		}
	}
	if err := ValidateDefaults(Defaults{Monitor: Monitor{Kind: NoMonitor, Labels: map[string]string{}}}); err != nil {
		t.Errorf("the flags' defaults: %v", err)
	}
}
