package policy

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// operator returns an ECK 3.5.0 operator StatefulSet with extra container ports.
func operator(ports ...corev1.ContainerPort) (*eck.Operator, *corev1.PodTemplateSpec) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"control-plane": "elastic-operator"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
					Args:         []string{"manager", "--config=/conf/eck.yaml"},
					Ports:        ports,
					VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf"}},
				}},
				Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
			}},
		},
	}
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		panic("test operator not recognised")
	}
	return op, &sts.Spec.Template
}

func config(eckYAML string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Data:       map[string]string{"eck.yaml": eckYAML},
	}
}

var secureTrue = map[string]string{keys.AnnotationSecure: "true"}

func TestPortChoice(t *testing.T) {
	tests := map[string]struct {
		ports       []corev1.ContainerPort
		eckYAML     string
		annotations map[string]string
		want        int
		wantErr     string
	}{
		"default":                       {eckYAML: "metrics-port: 0\n", want: 8081},
		"no config known yet":           {want: 8081},
		"container port takes 8081":     {ports: []corev1.ContainerPort{{Name: "health", ContainerPort: 8081}}, want: 8082},
		"host port takes 8081":          {ports: []corev1.ContainerPort{{Name: "x", ContainerPort: 9000, HostPort: 8081}}, want: 8082},
		"probes bind address":           {eckYAML: "probes-bind-address: \":8081\"\n", want: 8082},
		"probes and container":          {ports: []corev1.ContainerPort{{Name: "h", ContainerPort: 8082}}, eckYAML: "probes-bind-address: 0.0.0.0:8081\n", want: 8083},
		"our own metrics port is free":  {ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8081}}, eckYAML: "metrics-port: 8081\n", want: 8081},
		"existing metrics-port kept":    {eckYAML: "metrics-port: 9090\n", want: 9090},
		"existing metrics-port string":  {eckYAML: "metrics-port: \"9090\"\n", want: 9090},
		"existing metrics-port clashes": {eckYAML: "metrics-port: 9443\n", want: 8081},
		"annotation":                    {annotations: map[string]string{keys.AnnotationMetricsPort: "9100"}, want: 9100},
		"annotation clashes with webhook-port": {
			eckYAML: "webhook-port: 9100\n", annotations: map[string]string{keys.AnnotationMetricsPort: "9100"},
			wantErr: `metadata.annotations[metrics-guard.eck.dev/metrics-port]: Invalid value: 9100: port 9100 is already used by eck.yaml webhook-port: 9100`,
		},
		"annotation clashes with a container port": {
			ports: []corev1.ContainerPort{{Name: "https-webhook", ContainerPort: 9443}}, eckYAML: "webhook-port: 9000\n",
			annotations: map[string]string{keys.AnnotationMetricsPort: "9443"},
			wantErr:     `already used by container "manager" port "https-webhook"`,
		},
		"annotation default webhook port": {annotations: map[string]string{keys.AnnotationMetricsPort: "9443"}, wantErr: "ECK's default webhook-port"},
		"annotation below 1024":           {annotations: map[string]string{keys.AnnotationMetricsPort: "80"}, wantErr: "must be a port number from 1024 to 65535"},
		"annotation not a number":         {annotations: map[string]string{keys.AnnotationMetricsPort: "metrics"}, wantErr: "must be a port number from 1024 to 65535"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator(tc.ports...)
			in := Input{NamespaceAnnotations: secureTrue, Operator: op, Template: tmpl, WorkloadAnnotations: tc.annotations}
			if tc.eckYAML != "" {
				in.ConfigMap = config(tc.eckYAML)
			}
			d := Decide(in)
			if tc.wantErr != "" {
				if err := d.Errs.ToAggregate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("errors = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if len(d.Errs) > 0 || d.Plan == nil {
				t.Fatalf("no plan: %v %s", d.Errs, d.Skip)
			}
			if d.Plan.Port != tc.want {
				t.Errorf("port = %d, want %d", d.Plan.Port, tc.want)
			}
		})
	}
}

func TestOptIn(t *testing.T) {
	tests := map[string]struct {
		namespace, workload, configMap map[string]string
		wantGuarded                    bool
		wantErr                        string
	}{
		"nothing":                      {},
		"namespace":                    {namespace: secureTrue, wantGuarded: true},
		"workload":                     {workload: secureTrue, wantGuarded: true},
		"configmap":                    {configMap: secureTrue, wantGuarded: true},
		"workload opts out":            {namespace: secureTrue, workload: map[string]string{keys.AnnotationSecure: "false"}},
		"configmap opts out":           {namespace: secureTrue, configMap: map[string]string{keys.AnnotationSecure: "false"}},
		"workload wins over configmap": {configMap: map[string]string{keys.AnnotationSecure: "false"}, workload: secureTrue, wantGuarded: true},
		"invalid value": {workload: map[string]string{keys.AnnotationSecure: "yes"},
			wantErr: `metadata.annotations[metrics-guard.eck.dev/secure]: Unsupported value: "yes": supported values: "true", "false"`},
		"invalid value on namespace": {namespace: map[string]string{keys.AnnotationSecure: "TRUE"}, wantErr: `Unsupported value: "TRUE"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			cm := config("metrics-port: 0\n")
			cm.Annotations = tc.configMap
			d := Decide(Input{NamespaceAnnotations: tc.namespace, Operator: op, Template: tmpl, WorkloadAnnotations: tc.workload, ConfigMap: cm})
			if tc.wantErr != "" {
				if err := d.Errs.ToAggregate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("errors = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if d.Guarded != tc.wantGuarded || (d.Plan != nil) != tc.wantGuarded {
				t.Errorf("guarded = %v plan = %v, want %v (skip: %s)", d.Guarded, d.Plan != nil, tc.wantGuarded, d.Skip)
			}
			if !tc.wantGuarded && d.Skip == "" {
				t.Error("no reason given for leaving the operator alone")
			}
		})
	}
}

func TestCertificateSource(t *testing.T) {
	tests := map[string]struct {
		annotations map[string]string
		defaults    Defaults
		withVolume  string
		wantSecret  string
		wantIssuer  *IssuerRef
		wantCertDir string
		wantWarning string
		wantErr     string
	}{
		"none: self-signed, with a warning": {wantCertDir: "/tmp/k8s-metrics-server/serving-certs", wantWarning: "self-signed"},
		"own secret":                        {annotations: map[string]string{keys.AnnotationTLSSecret: "my-tls"}, wantSecret: "my-tls", wantCertDir: "/tmp/k8s-metrics-server/serving-certs"},
		"issuer":                            {annotations: map[string]string{keys.AnnotationIssuer: "ca"}, wantSecret: "elastic-operator-metrics-guard-tls", wantIssuer: &IssuerRef{Name: "ca", Kind: "Issuer"}, wantCertDir: "/tmp/k8s-metrics-server/serving-certs"},
		"cluster issuer and secret":         {annotations: map[string]string{keys.AnnotationIssuer: "ca", keys.AnnotationIssuerKind: "ClusterIssuer", keys.AnnotationTLSSecret: "s"}, wantSecret: "s", wantIssuer: &IssuerRef{Name: "ca", Kind: "ClusterIssuer"}, wantCertDir: "/tmp/k8s-metrics-server/serving-certs"},
		"default issuer from flags":         {defaults: Defaults{Issuer: "platform", IssuerKind: "ClusterIssuer"}, wantSecret: "elastic-operator-metrics-guard-tls", wantIssuer: &IssuerRef{Name: "platform", Kind: "ClusterIssuer"}, wantCertDir: "/tmp/k8s-metrics-server/serving-certs"},
		"annotation beats default issuer":   {defaults: Defaults{Issuer: "platform"}, annotations: map[string]string{keys.AnnotationIssuer: "team"}, wantSecret: "elastic-operator-metrics-guard-tls", wantIssuer: &IssuerRef{Name: "team", Kind: "Issuer"}, wantCertDir: "/tmp/k8s-metrics-server/serving-certs"},
		"existing volume is kept":           {withVolume: "chart-tls", wantSecret: "chart-tls", wantCertDir: "/tmp/k8s-metrics-server/serving-certs"},
		"cert dir":                          {annotations: map[string]string{keys.AnnotationTLSSecret: "s", keys.AnnotationCertDir: "/certs"}, wantSecret: "s", wantCertDir: "/certs"},
		"cert dir relative":                 {annotations: map[string]string{keys.AnnotationCertDir: "certs"}, wantErr: "metrics-guard.eck.dev/cert-dir]: Invalid value: \"certs\": must be a clean absolute path"},
		"issuer kind without issuer":        {annotations: map[string]string{keys.AnnotationIssuerKind: "Issuer"}, wantErr: "metrics-guard.eck.dev/issuer]: Required value"},
		"issuer kind unknown":               {annotations: map[string]string{keys.AnnotationIssuer: "ca", keys.AnnotationIssuerKind: "issuer"}, wantErr: `Unsupported value: "issuer": supported values: "Issuer", "ClusterIssuer"`},
		"secret name invalid":               {annotations: map[string]string{keys.AnnotationTLSSecret: "My_TLS"}, wantErr: "metrics-guard.eck.dev/tls-secret]: Invalid value: \"My_TLS\": must be the name of a Secret"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, tmpl := operator()
			if tc.withVolume != "" {
				tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: tc.withVolume}}})
			}
			d := Decide(Input{NamespaceAnnotations: secureTrue, Operator: op, Template: tmpl, WorkloadAnnotations: tc.annotations, Defaults: tc.defaults})
			if tc.wantErr != "" {
				if err := d.Errs.ToAggregate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("errors = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if d.Plan == nil {
				t.Fatalf("no plan: %v", d.Errs)
			}
			p := d.Plan
			if p.SecretName != tc.wantSecret || p.CertDir != tc.wantCertDir {
				t.Errorf("secret %q dir %q, want %q %q", p.SecretName, p.CertDir, tc.wantSecret, tc.wantCertDir)
			}
			if (p.Issuer == nil) != (tc.wantIssuer == nil) || p.Issuer != nil && *p.Issuer != *tc.wantIssuer {
				t.Errorf("issuer %+v, want %+v", p.Issuer, tc.wantIssuer)
			}
			if tc.wantWarning != "" && !strings.Contains(strings.Join(d.Warnings, "\n"), tc.wantWarning) {
				t.Errorf("warnings %q, want one about %q", d.Warnings, tc.wantWarning)
			}
		})
	}
}

func TestUnsupportedOperators(t *testing.T) {
	op, tmpl := operator()
	tmpl.Spec.Containers[0].Image = "docker.elastic.co/eck/eck-operator:2.14.0"
	op, _ = eck.FromStatefulSet(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: op.Name, Namespace: op.Namespace}, Spec: appsv1.StatefulSetSpec{Template: *tmpl}})
	d := Decide(Input{NamespaceAnnotations: secureTrue, Operator: op, Template: tmpl})
	if d.Plan != nil || !strings.Contains(d.Skip, "2.14.0 ignores metrics-secure") || len(d.Warnings) == 0 {
		t.Errorf("2.14.0: plan %v skip %q warnings %q", d.Plan, d.Skip, d.Warnings)
	}

	cm := config("metrics-port: 0\n")
	cm.Labels = map[string]string{"app.kubernetes.io/version": "2.14.0"}
	d = Decide(Input{NamespaceAnnotations: secureTrue, ConfigMap: cm})
	if d.Plan != nil || !strings.Contains(d.Skip, "2.14.0") {
		t.Errorf("2.14.0 ConfigMap alone: plan %v skip %q", d.Plan, d.Skip)
	}
}

func TestLoopbackHostWarns(t *testing.T) {
	op, tmpl := operator()
	d := Decide(Input{NamespaceAnnotations: secureTrue, Operator: op, Template: tmpl, ConfigMap: config("metrics-host: 127.0.0.1\n")})
	if d.Plan == nil || !strings.Contains(strings.Join(d.Warnings, "\n"), "metrics-host is 127.0.0.1") {
		t.Errorf("warnings = %q, want one about the loopback metrics-host", d.Warnings)
	}
}

func TestHashChangesWithSettings(t *testing.T) {
	base := Plan{Port: 8081, CertDir: "/a", SecretName: "s"}
	same := base
	if base.Hash() != same.Hash() {
		t.Fatal("equal plans hash differently")
	}
	for name, p := range map[string]Plan{
		"port": {Port: 8082, CertDir: "/a", SecretName: "s"}, "dir": {Port: 8081, CertDir: "/b", SecretName: "s"}, "secret": {Port: 8081, CertDir: "/a", SecretName: "t"},
	} {
		if p.Hash() == base.Hash() {
			t.Errorf("changing the %s leaves the hash alone", name)
		}
	}
}

func TestNames(t *testing.T) {
	if got := ServiceName("elastic-operator"); got != "elastic-operator-metrics-guard" {
		t.Errorf("ServiceName = %q", got)
	}
	long := strings.Repeat("a", 60)
	a, b := ServiceName(long+"x"), ServiceName(long+"y")
	if len(a) > 63 || len(b) > 63 || a == b || !strings.HasSuffix(a, "-metrics-guard") {
		t.Errorf("long names: %q %q", a, b)
	}
}

func TestValidateDefaults(t *testing.T) {
	err := ValidateDefaults(Defaults{Port: 80, IssuerKind: "Vault", CertDir: "x", TLSSecret: "A"})
	for _, want := range []string{"--metrics-port 80", "--issuer-kind \"Vault\"", "--cert-dir \"x\"", "--tls-secret \"A\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if err := ValidateDefaults(Defaults{Port: 9100, Issuer: "ca", IssuerKind: "ClusterIssuer"}); err != nil {
		t.Errorf("valid defaults refused: %v", err)
	}
}
