package policy_test

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// decideCase is one fuzz input: annotations ("key=value" lines; a key without "/" is one of
// the guard's, metrics-guard.eck.dev/<key>), eck.yaml, what the operator's container adds
// (args, env "NAME=value" and ports "name:port", one a line), the flag defaults, and a
// covering policy (mode 0 none, 1 Audit, 2 Mutate, 3 Enforce) with its defaults.
type decideCase struct {
	ns, workload, configMap                string
	eckYAML                                string
	args, env, ports                       string
	port                                   int
	certDir, tlsSecret, issuer, issuerKind string
	mode                                   uint8
	policyPort                             int
	policyIssuer, policyIssuerKind         string
	configMapKnown, workloadKnown          bool
}

var decideSeeds = []decideCase{
	{ns: "secure=true\ntls-secret=operator-tls", eckYAML: "log-verbosity: 0\nmetrics-port: 0\n", configMapKnown: true, workloadKnown: true},
	{workload: "secure=true\nissuer=ca\nissuer-kind=ClusterIssuer", eckYAML: "metrics-port: 8080\nmetrics-host: 127.0.0.1\n", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", workload: "metrics-port=9443", eckYAML: "webhook-port: 9443\n", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", workload: "cert-dir=/conf", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", workload: "cert-dir=/conf/tls", configMapKnown: true, workloadKnown: true},
	{configMap: "secure=true", eckYAML: "metrics-port: 9090\nmetrics-secure: false\n", configMapKnown: true},
	{ns: "secure=true", args: "--metrics-port=9000\n--metrics-secure=false", env: "METRICS_HOST=localhost", ports: "https-webhook:9443\nhealth:8081", configMapKnown: true, workloadKnown: true},
	{ns: "secure=false", mode: 3, policyPort: 9100, policyIssuer: "corp-ca", policyIssuerKind: "ClusterIssuer", configMapKnown: true, workloadKnown: true},
	{mode: 2, port: 8085, certDir: "/certs", tlsSecret: "guard-tls", issuer: "ca", issuerKind: "Issuer", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", workload: "secure=maybe\nissuer-kind=Issuer", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", eckYAML: "metrics-port: [", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", eckYAML: "a: &x 1\nmetrics-port: *x\n", configMapKnown: true, workloadKnown: true},
	{ns: "secure=true", args: "--config=/conf/other.yaml\n--", workloadKnown: true},
	{ns: "secure=true", env: "METRICS_PORT=9000\nMETRICS_SECURE=false\nMETRICS_CERT_DIR=/x", eckYAML: "metrics-cert-dir: /tmp/certs\n", configMapKnown: true, workloadKnown: true},
}

func FuzzDecide(f *testing.F) {
	for _, s := range decideSeeds {
		f.Add(s.ns, s.workload, s.configMap, s.eckYAML, s.args, s.env, s.ports, s.port, s.certDir, s.tlsSecret, s.issuer, s.issuerKind,
			s.mode, s.policyPort, s.policyIssuer, s.policyIssuerKind, s.configMapKnown, s.workloadKnown)
	}
	f.Fuzz(func(t *testing.T, ns, workload, configMap, eckYAML, args, env, ports string, port int, certDir, tlsSecret, issuer, issuerKind string,
		mode uint8, policyPort int, policyIssuer, policyIssuerKind string, configMapKnown, workloadKnown bool) {
		checkDecide(t, decideCase{ns, workload, configMap, eckYAML, args, env, ports, port, certDir, tlsSecret, issuer, issuerKind,
			mode, policyPort, policyIssuer, policyIssuerKind, configMapKnown, workloadKnown})
	})
}

// checkDecide: Decide never panics, changes nothing of its input, gives the same decision
// twice; an error names a field; a Plan is sound (a port from 1024 to 65535 that nothing else
// of the pod uses, a clean absolute cert dir, Secret and issuer names the API server would
// accept) and, applied by package mutate, is a fixed point: deciding again on the secured
// objects gives the same Plan and no error, applying it again changes nothing, and ECK, by
// what it reads then, serves its metrics over TLS with token checks on the planned port.
func checkDecide(t *testing.T, c decideCase) {
	in, ok := buildInput(c)
	if !ok {
		return
	}
	before := copyInput(in)
	d := policy.Decide(in)
	if !equality.Semantic.DeepEqual(before.Template, in.Template) || !equality.Semantic.DeepEqual(before.ConfigMap, in.ConfigMap) ||
		!equality.Semantic.DeepEqual(before.NamespaceAnnotations, in.NamespaceAnnotations) || !equality.Semantic.DeepEqual(before.WorkloadAnnotations, in.WorkloadAnnotations) ||
		!equality.Semantic.DeepEqual(before.Defaults, in.Defaults) {
		t.Fatalf("Decide changed its input")
	}
	again := policy.Decide(copyInput(in))
	if fmt.Sprintf("%+v %v %q %q %v %v", plan(d), d.Guarded, d.Skip, d.Warnings, d.Errs, d.Denied) !=
		fmt.Sprintf("%+v %v %q %q %v %v", plan(again), again.Guarded, again.Skip, again.Warnings, again.Errs, again.Denied) {
		t.Fatalf("two decisions on the same input differ:\n%+v\n%+v", d, again)
	}
	for _, err := range append(d.Errs, d.Denied...) {
		if err.Field == "" || !strings.HasPrefix(err.Error(), err.Field+": ") {
			t.Fatalf("an error that names no field: %q (field %q)", err.Error(), err.Field)
		}
		if !knownField(err.Field) {
			t.Fatalf("an error about a field the user cannot find: %q", err.Error())
		}
	}
	if len(d.Errs) > 0 && d.Plan != nil {
		t.Fatalf("a Plan despite errors %v", d.Errs)
	}
	p := d.Plan
	if p == nil {
		return
	}
	if !d.Guarded {
		t.Fatalf("a Plan for an operator that is not guarded (%s)", d.Skip)
	}
	checkPlan(t, in, p)

	// Apply it, as the engine does.
	tmpl, cm, op := in.Template, in.ConfigMap, in.Operator
	if op != nil && tmpl != nil {
		tmpl = in.Template.DeepCopy()
		mutate.PodTemplate(tmpl, op, p, d.Effective)
	}
	if !p.Flags && (cm == nil || !eck.Trimmed(cm)) {
		if cm == nil {
			if op == nil {
				return
			}
			// Not written yet: the one the guard will secure (engine.configMapToEdit).
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: op.ConfigMapName, Namespace: op.Namespace}}
		} else {
			cm = cm.DeepCopy()
		}
		if _, err := mutate.ConfigMap(cm, in.Key(), p); err != nil {
			return // an eck.yaml the guard cannot edit in place: an error of the engine
		}
		if op != nil {
			mutate.ConfigMapLabel(cm, op)
		}
	}
	after := in
	after.Template, after.ConfigMap = tmpl, cm
	if op != nil && tmpl != nil {
		sts := statefulSet(tmpl)
		var ok bool
		if after.Operator, ok = eck.FromStatefulSet(sts); !ok {
			t.Fatalf("the secured StatefulSet is no longer an operator")
		}
		after.Template = &sts.Spec.Template
	}
	d2 := policy.Decide(after)
	if len(d2.Errs) > 0 || d2.Plan == nil {
		t.Fatalf("deciding on the secured objects: errors %v, skip %q\nfirst plan %+v\neck.yaml now %q", d2.Errs, d2.Skip, plan(d), configText(after))
	}
	if fmt.Sprintf("%+v", plan(d2)) != fmt.Sprintf("%+v", plan(d)) {
		t.Fatalf("not a fixed point: the plan on the secured objects differs\nfirst  %+v\nsecond %+v\neck.yaml now %q", plan(d), plan(d2), configText(after))
	}
	if after.Operator != nil && after.Template != nil {
		if mutate.PodTemplate(after.Template.DeepCopy(), after.Operator, d2.Plan, d2.Effective) {
			t.Fatalf("applying the plan again changes the pod template")
		}
		// What ECK reads once secured: TLS with token checks, on the planned port.
		v := eck.Judge(after.Operator, after.Template, eck.Resolve(after.Template, after.Operator.ContainerIndex, after.ConfigMapGetter()))
		if v.Exposure.Weaker(eck.ExposureIncomplete) || (v.Port != 0 && v.Port != p.Port) {
			t.Fatalf("secured by the plan %+v, the operator is %s (port %d)\nargs %q env %v\neck.yaml now %q", plan(d), v, v.Port,
				after.Template.Spec.Containers[after.Operator.ContainerIndex].Args, after.Template.Spec.Containers[after.Operator.ContainerIndex].Env, configText(after))
		}
	}
	if !p.Flags && after.ConfigMap != nil && !eck.Trimmed(after.ConfigMap) {
		changed, err := mutate.ConfigMap(after.ConfigMap.DeepCopy(), after.Key(), d2.Plan)
		if err != nil || changed {
			t.Fatalf("applying the plan again to eck.yaml: changed %v, %v\n%q", changed, err, configText(after))
		}
	}
}

func checkPlan(t *testing.T, in policy.Input, p *policy.Plan) {
	if p.Port < policy.MinPort || p.Port > policy.MaxPort {
		t.Fatalf("metrics port %d outside %d-%d", p.Port, policy.MinPort, policy.MaxPort)
	}
	if !path.IsAbs(p.CertDir) || path.Clean(p.CertDir) != p.CertDir || p.CertDir == "/" {
		t.Fatalf("cert dir %q", p.CertDir)
	}
	if p.SecretName != "" && len(validation.IsDNS1123Subdomain(p.SecretName)) > 0 {
		t.Fatalf("Secret name %q", p.SecretName)
	}
	if p.Issuer != nil && (len(validation.IsDNS1123Subdomain(p.Issuer.Name)) > 0 || p.Issuer.Kind == "") {
		t.Fatalf("issuer %+v", *p.Issuer)
	}
	if p.Issuer != nil && p.SecretName == "" {
		t.Fatalf("an issuer without a Secret to issue into")
	}
	if len(validation.IsDNS1035Label(p.ServiceName)) > 0 {
		t.Fatalf("Service name %q", p.ServiceName)
	}
	if in.Operator == nil || in.Template == nil {
		return
	}
	for i, c := range in.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if i == in.Operator.ContainerIndex && cp.Name == keys.PortName {
				continue
			}
			if int(cp.ContainerPort) == p.Port || int(cp.HostPort) == p.Port {
				t.Fatalf("metrics port %d is container %s's port %s", p.Port, c.Name, cp.Name)
			}
		}
	}
}

// knownField: the annotations, eck.yaml's key in the ConfigMap, or one of its settings.
func knownField(f string) bool {
	return strings.HasPrefix(f, "metadata.annotations[") || strings.HasPrefix(f, "data[") || f == "metrics-port" || f == "cert-dir"
}

type planView struct {
	policy.Plan
	Issuer policy.IssuerRef
}

func plan(d policy.Decision) *planView {
	if d.Plan == nil {
		return nil
	}
	v := &planView{Plan: *d.Plan}
	if d.Plan.Issuer != nil {
		v.Issuer = *d.Plan.Issuer
	}
	v.Plan.Issuer = nil
	return v
}

func configText(in policy.Input) string {
	if in.ConfigMap == nil {
		return ""
	}
	return in.ConfigMap.Data[in.Key()]
}

func copyInput(in policy.Input) policy.Input {
	out := in
	if in.Template != nil {
		out.Template = in.Template.DeepCopy()
	}
	if in.ConfigMap != nil {
		out.ConfigMap = in.ConfigMap.DeepCopy()
	}
	out.NamespaceAnnotations = copyMap(in.NamespaceAnnotations)
	out.WorkloadAnnotations = copyMap(in.WorkloadAnnotations)
	if in.Coverage != nil {
		c := *in.Coverage
		c.Defaults = *in.Coverage.Defaults.DeepCopy()
		out.Coverage = &c
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func annotations(lines string) map[string]string {
	if lines == "" {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(lines, "\n") {
		k, v, _ := strings.Cut(line, "=")
		if !strings.Contains(k, "/") {
			k = "metrics-guard.eck.dev/" + k
		}
		out[k] = v
	}
	return out
}

var (
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	kindPattern  = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// buildInput makes the Input; false when the case is one the guard never decides on: defaults
// its command line refuses, policy defaults the API server refuses (the CRD's validation),
// or a workload that is no ECK operator.
func buildInput(c decideCase) (policy.Input, bool) {
	in := policy.Input{
		NamespaceAnnotations: annotations(c.ns),
		Defaults:             policy.Defaults{Port: c.port, CertDir: c.certDir, TLSSecret: c.tlsSecret, Issuer: c.issuer, IssuerKind: c.issuerKind},
	}
	if policy.ValidateDefaults(in.Defaults) != nil || (c.issuerKind != "" && c.issuer == "") {
		return in, false
	}
	if c.mode%4 != 0 {
		cov := &policy.Coverage{Policy: "fuzz", Mode: []v1alpha1.Mode{v1alpha1.ModeAudit, v1alpha1.ModeMutate, v1alpha1.ModeEnforce}[c.mode%4-1]}
		if c.policyPort != 0 {
			if c.policyPort < policy.MinPort || c.policyPort > policy.MaxPort {
				return in, false
			}
			p := int32(c.policyPort)
			cov.Defaults.MetricsPort = &p
		}
		if c.policyIssuer != "" {
			kind := c.policyIssuerKind
			if kind == "" {
				kind = policy.IssuerKind
			}
			if len(c.policyIssuer) > 253 || !dnsSubdomain.MatchString(c.policyIssuer) || len(kind) > 63 || !kindPattern.MatchString(kind) ||
				(kind != policy.IssuerKind && kind != policy.ClusterIssuerKind) {
				return in, false
			}
			cov.Defaults.Issuer = &v1alpha1.IssuerReference{Name: c.policyIssuer, Kind: kind, Group: "cert-manager.io"}
		}
		in.Coverage = cov
	}
	if c.configMapKnown {
		in.ConfigMap = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system", Annotations: annotations(c.configMap),
				Labels: map[string]string{"app.kubernetes.io/version": "3.5.0"}},
			Data: map[string]string{"eck.yaml": c.eckYAML},
		}
	}
	if !c.workloadKnown {
		return in, in.ConfigMap != nil
	}
	container := corev1.Container{
		Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
		Args:         []string{"manager", "--config=/conf/eck.yaml"},
		VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf", ReadOnly: true}},
	}
	if c.args != "" {
		container.Args = append(container.Args, strings.Split(c.args, "\n")...)
	}
	for _, line := range strings.Split(c.env, "\n") {
		if name, value, ok := strings.Cut(line, "="); ok {
			container.Env = append(container.Env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	for _, line := range strings.Split(c.ports, "\n") {
		name, number, ok := strings.Cut(line, ":")
		p, err := strconv.Atoi(number)
		if !ok || err != nil || p < 1 || p > 65535 {
			continue
		}
		container.Ports = append(container.Ports, corev1.ContainerPort{Name: name, ContainerPort: int32(p), Protocol: corev1.ProtocolTCP})
	}
	sts := statefulSet(&corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"control-plane": "elastic-operator"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{container},
			Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
		},
	})
	sts.Annotations = annotations(c.workload)
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		return in, false
	}
	in.Operator, in.Template, in.WorkloadAnnotations = op, &sts.Spec.Template, sts.Annotations
	return in, true
}

func statefulSet(tmpl *corev1.PodTemplateSpec) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"control-plane": "elastic-operator"}},
			Template: *tmpl.DeepCopy(),
		},
	}
}
