package mutate

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/patch"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

func operatorSTS(mut ...func(*corev1.PodSpec)) (*appsv1.StatefulSet, *eck.Operator) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"control-plane": "elastic-operator"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{
					{Name: "sidecar", Image: "busybox"},
					{
						Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
						Args:         []string{"manager", "--config=/conf/eck.yaml"},
						Ports:        []corev1.ContainerPort{{Name: "https-webhook", ContainerPort: 9443}},
						VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf"}},
					},
				},
				Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
			}},
		},
	}
	for _, m := range mut {
		m(&sts.Spec.Template.Spec)
	}
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		panic("not recognised")
	}
	return sts, op
}

var plan = &policy.Plan{Port: 8081, Host: "0.0.0.0", CertDir: "/tmp/k8s-metrics-server/serving-certs", SecretName: "metrics-tls", ServiceName: "elastic-operator-metrics-guard"}

func TestPodTemplate(t *testing.T) {
	yes := true
	tests := map[string]struct {
		spec  func(*corev1.PodSpec)
		plan  *policy.Plan
		check func(t *testing.T, s *corev1.PodSpec)
	}{
		"fresh operator": {check: func(t *testing.T, s *corev1.PodSpec) {
			c := s.Containers[1]
			if len(c.Ports) != 2 || c.Ports[1] != (corev1.ContainerPort{Name: "metrics", ContainerPort: 8081, Protocol: corev1.ProtocolTCP}) {
				t.Errorf("ports = %+v", c.Ports)
			}
			if m := c.VolumeMounts[1]; m.Name != keys.VolumeName || m.MountPath != plan.CertDir || !m.ReadOnly {
				t.Errorf("mount = %+v", m)
			}
			if v := s.Volumes[1]; v.Secret == nil || v.Secret.SecretName != "metrics-tls" || v.Secret.Optional != nil {
				t.Errorf("volume = %+v", v)
			}
			if len(s.Containers[0].Ports)+len(s.Containers[0].VolumeMounts) != 0 {
				t.Error("the sidecar was changed")
			}
		}},
		"wrong metrics port is set": {
			spec: func(s *corev1.PodSpec) {
				s.Containers[1].Ports = append(s.Containers[1].Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9000, Protocol: corev1.ProtocolTCP})
			},
			check: func(t *testing.T, s *corev1.PodSpec) {
				if p := s.Containers[1].Ports; len(p) != 2 || p[1].ContainerPort != 8081 {
					t.Errorf("ports = %+v", p)
				}
			},
		},
		"optional secret becomes required": {
			spec: func(s *corev1.PodSpec) {
				s.Volumes = append(s.Volumes, corev1.Volume{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "metrics-tls", Optional: &yes, DefaultMode: ptr.To[int32](0o400)}}})
			},
			check: func(t *testing.T, s *corev1.PodSpec) {
				v := s.Volumes[1].Secret
				if len(s.Volumes) != 2 || v.Optional == nil || *v.Optional || *v.DefaultMode != 0o400 {
					t.Errorf("volume = %+v", v)
				}
			},
		},
		"user's own volume source is kept": {
			spec: func(s *corev1.PodSpec) {
				s.Volumes = append(s.Volumes, corev1.Volume{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "csi.cert-manager.io"}}})
			},
			check: func(t *testing.T, s *corev1.PodSpec) {
				if v := s.Volumes[1]; v.CSI == nil || v.Secret != nil {
					t.Errorf("volume = %+v", v)
				}
			},
		},
		"env and flags that override eck.yaml": {
			spec: func(s *corev1.PodSpec) {
				c := &s.Containers[1]
				c.Env = []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "false"}, {Name: "METRICS_PORT", Value: "9999"}, {Name: "OTHER", Value: "x"}}
				c.Args = append(c.Args, "--metrics-secure=false", "--log-verbosity=1")
			},
			check: func(t *testing.T, s *corev1.PodSpec) {
				c := s.Containers[1]
				if c.Env[0].Value != "true" || c.Env[1].Value != "8081" || c.Env[2].Value != "x" {
					t.Errorf("env = %+v", c.Env)
				}
				if c.Args[2] != "--metrics-secure=true" || c.Args[3] != "--log-verbosity=1" {
					t.Errorf("args = %q", c.Args)
				}
			},
		},
		"no certificate source: no volume": {
			plan: &policy.Plan{Port: 8081, CertDir: plan.CertDir},
			check: func(t *testing.T, s *corev1.PodSpec) {
				if len(s.Volumes) != 1 || len(s.Containers[1].VolumeMounts) != 1 || len(s.Containers[1].Ports) != 2 {
					t.Errorf("spec = %+v", s)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := plan
			if tc.plan != nil {
				p = tc.plan
			}
			var muts []func(*corev1.PodSpec)
			if tc.spec != nil {
				muts = append(muts, tc.spec)
			}
			sts, op := operatorSTS(muts...)
			original := sts.DeepCopy()
			if !podTemplate(&sts.Spec.Template, op, p) {
				t.Fatal("no change reported")
			}
			tc.check(t, &sts.Spec.Template.Spec)
			if sts.Spec.Template.Annotations[keys.AnnotationMetricsHash] != p.Hash() {
				t.Error("the settings hash is not on the pod template")
			}
			once := sts.DeepCopy()
			if podTemplate(&sts.Spec.Template, op, p) || !equality.Semantic.DeepEqual(once, sts) {
				t.Error("not idempotent")
			}
			if _, err := patch.Diff(original, sts); err != nil {
				t.Errorf("the change is not add/set only: %v", err)
			}
		})
	}
}

func TestPodTemplateAlreadySecuredIsUntouched(t *testing.T) {
	sts, op := operatorSTS(func(s *corev1.PodSpec) {
		c := &s.Containers[1]
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 8081, Protocol: corev1.ProtocolTCP})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: keys.VolumeName, MountPath: plan.CertDir + "/", ReadOnly: true})
		s.Volumes = append(s.Volumes, corev1.Volume{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "metrics-tls"}}})
	})
	if podTemplate(&sts.Spec.Template, op, plan) {
		t.Errorf("an already secured template was changed: %+v", sts.Spec.Template)
	}
	if _, ok := sts.Spec.Template.Annotations[keys.AnnotationMetricsHash]; ok {
		t.Error("the hash annotation was added without a change: the pod would restart for nothing")
	}
}

func TestPodTemplateHashFollowsSettings(t *testing.T) {
	sts, op := operatorSTS()
	podTemplate(&sts.Spec.Template, op, plan)
	first := sts.Spec.Template.Annotations[keys.AnnotationMetricsHash]
	moved := *plan
	moved.Port = 8082
	if !podTemplate(&sts.Spec.Template, op, &moved) || sts.Spec.Template.Annotations[keys.AnnotationMetricsHash] == first {
		t.Error("a new port did not change the pod template hash")
	}
}

func TestConfigMap(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}, Data: map[string]string{"eck.yaml": "# keep me\nlog-verbosity: 0\nmetrics-port: 0\n"}}
	changed, err := ConfigMap(cm, "eck.yaml", plan)
	if err != nil || !changed {
		t.Fatalf("changed %v err %v", changed, err)
	}
	want := "# keep me\nlog-verbosity: 0\nmetrics-port: 8081\nmetrics-host: 0.0.0.0\nmetrics-secure: true\n"
	if cm.Data["eck.yaml"] != want {
		t.Errorf("eck.yaml =\n%s\nwant\n%s", cm.Data["eck.yaml"], want)
	}
	if changed, _ := ConfigMap(cm, "eck.yaml", plan); changed {
		t.Error("not idempotent")
	}
	custom := *plan
	custom.CertDir = "/certs"
	if _, err := ConfigMap(cm, "eck.yaml", &custom); err != nil || !strings.Contains(cm.Data["eck.yaml"], "metrics-cert-dir: /certs\n") {
		t.Errorf("cert dir not written: %q %v", cm.Data["eck.yaml"], err)
	}

	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}, Data: map[string]string{"eck.yaml": "- a\n- b\n"}}
	if _, err := ConfigMap(bad, "eck.yaml", plan); err == nil || !strings.Contains(err.Error(), "ConfigMap n/c key eck.yaml") {
		t.Errorf("err = %v, want one naming the ConfigMap and key", err)
	}
	if bad.Data["eck.yaml"] != "- a\n- b\n" {
		t.Error("a failed edit changed the ConfigMap")
	}

	missing := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "n"}}
	if changed, err := ConfigMap(missing, "eck.yaml", plan); err != nil || !changed || !strings.Contains(missing.Data["eck.yaml"], "metrics-secure: true") {
		t.Errorf("a ConfigMap without eck.yaml: changed %v err %v data %q", changed, err, missing.Data)
	}
}

func TestService(t *testing.T) {
	_, op := operatorSTS()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "chart-metrics", Namespace: "elastic-system", Labels: map[string]string{"keep": "me"}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"control-plane": "elastic-operator"}, Ports: []corev1.ServicePort{{Name: "https", Port: 8081}}},
	}
	if IsMetricsService(svc, op, plan) {
		t.Error("a Service without a metrics targetPort was taken for the metrics Service")
	}
	svc.Spec.Ports[0].TargetPort.StrVal, svc.Spec.Ports[0].TargetPort.Type = "metrics", 1
	if !IsMetricsService(svc, op, plan) {
		t.Fatal("the metrics Service was not recognised")
	}
	before := svc.DeepCopy()
	if !Service(svc, op) || svc.Labels["keep"] != "me" || svc.Labels[keys.LabelMetricsService] != "true" {
		t.Errorf("labels = %v", svc.Labels)
	}
	if !equality.Semantic.DeepEqual(before.Spec, svc.Spec) {
		t.Error("the spec of an existing Service changed")
	}
	if Service(svc, op) {
		t.Error("not idempotent")
	}
	other := svc.DeepCopy()
	other.Spec.Selector = map[string]string{"app": "other"}
	other.Name = "other"
	if IsMetricsService(other, op, plan) {
		t.Error("a Service selecting other pods was taken for the metrics Service")
	}
}

func TestCompanions(t *testing.T) {
	_, op := operatorSTS()
	op.ServiceAccount = "elastic-operator"
	p := *plan
	p.Issuer = &policy.IssuerRef{Name: "ca", Kind: "ClusterIssuer"}
	svc := MetricsService(op, &p)
	if svc.Spec.Ports[0].Port != 8081 || svc.Spec.Ports[0].TargetPort.StrVal != "metrics" || svc.Spec.Selector["control-plane"] != "elastic-operator" {
		t.Errorf("service = %+v", svc.Spec)
	}
	crb := AuthDelegatorBinding(op)
	if crb.RoleRef.Name != "system:auth-delegator" || crb.Subjects[0].Name != "elastic-operator" || crb.Subjects[0].Namespace != "elastic-system" || crb.Namespace != "" {
		t.Errorf("binding = %+v", crb)
	}
	cert := Certificate(op, &p, svc.Name)
	if cert.Spec.SecretName != "metrics-tls" || cert.Spec.IssuerRef.Kind != "ClusterIssuer" ||
		strings.Join(cert.Spec.DNSNames, ",") != "elastic-operator-metrics-guard.elastic-system.svc,elastic-operator-metrics-guard.elastic-system.svc.cluster.local" {
		t.Errorf("certificate = %+v", cert.Spec)
	}
	if cert.Spec.IssuerRef.Group != "cert-manager.io" {
		t.Errorf("issuer group %q, want cert-manager.io", cert.Spec.IssuerRef.Group)
	}
	external := p
	external.Issuer = &policy.IssuerRef{Name: "pca", Kind: "AWSPCAClusterIssuer", Group: "awspca.cert-manager.io"}
	if ref := Certificate(op, &external, svc.Name).Spec.IssuerRef; ref.Group != "awspca.cert-manager.io" || ref.Kind != "AWSPCAClusterIssuer" {
		t.Errorf("external issuer: %+v", ref)
	}
	if Certificate(op, plan, svc.Name) != nil {
		t.Error("a Certificate without an issuer")
	}
	if ServiceMonitor(op, &p, svc) != nil {
		t.Error("a ServiceMonitor that the plan did not ask for")
	}
	p.Monitor = &policy.Monitor{Kind: policy.ServiceMonitorKind}
	sm := ServiceMonitor(op, &p, svc)
	ep := sm.Spec.Endpoints[0]
	if ep.Port != "https" || *ep.TLSConfig.ServerName != "elastic-operator-metrics-guard.elastic-system.svc" || ep.TLSConfig.CA.Secret.Key != "ca.crt" || ep.TLSConfig.CAFile != "" ||
		ep.BearerTokenFile != ServiceAccountTokenFile || ep.Authorization != nil || ep.Interval != "" || ep.TLSConfig.InsecureSkipVerify != nil {
		t.Errorf("endpoint = %+v", ep)
	}
	if ServiceMonitor(op, &policy.Plan{Port: 8081, Monitor: p.Monitor}, svc) != nil {
		t.Error("a ServiceMonitor without a CA to verify against")
	}

	// The user's labels, annotations, scrape settings and a token Secret; the guard's own
	// labels stay.
	p.Monitor = &policy.Monitor{Kind: policy.ServiceMonitorKind, Labels: map[string]string{"release": "kps", "app.kubernetes.io/managed-by": "helm"},
		Annotations: map[string]string{"team": "platform"}, Interval: "30s", ScrapeTimeout: "10s", TokenSecret: "scraper-token", TokenKey: "token"}
	sm = ServiceMonitor(op, &p, svc)
	ep = sm.Spec.Endpoints[0]
	if sm.Labels["release"] != "kps" || sm.Labels["app.kubernetes.io/managed-by"] != "eck-metrics-guard" || sm.Annotations["team"] != "platform" {
		t.Errorf("metadata = %+v", sm.ObjectMeta)
	}
	if ep.Interval != "30s" || ep.ScrapeTimeout != "10s" || ep.BearerTokenFile != "" || ep.Authorization == nil ||
		ep.Authorization.Credentials.Name != "scraper-token" || ep.Authorization.Credentials.Key != "token" || ep.Authorization.Type != "Bearer" {
		t.Errorf("endpoint = %+v", ep)
	}

	p.Monitor.Kind = policy.PodMonitorKind
	pm := PodMonitor(op, &p, svc)
	pep := pm.Spec.PodMetricsEndpoints[0]
	if pm.Kind != "PodMonitor" || pm.Spec.Selector.MatchLabels["control-plane"] != "elastic-operator" || *pep.Port != "metrics" || *pep.Scheme != "https" ||
		*pep.TLSConfig.ServerName != "elastic-operator-metrics-guard.elastic-system.svc" || pep.TLSConfig.CA.Secret.Name != "metrics-tls" ||
		pep.Authorization.Credentials.Name != "scraper-token" || pep.Interval != "30s" {
		t.Errorf("PodMonitor = %+v", pm.Spec)
	}
	p.Monitor.TokenSecret = ""
	if PodMonitor(op, &p, svc) != nil {
		t.Error("a PodMonitor without a token: it has no token file")
	}
}

// podTemplate secures a template whose ConfigMaps are not needed.
func podTemplate(tmpl *corev1.PodTemplateSpec, op *eck.Operator, plan *policy.Plan) bool {
	return PodTemplate(tmpl, op, plan, eck.Resolve(tmpl, op.ContainerIndex, nil))
}
