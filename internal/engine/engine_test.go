package engine

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/patch"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// operator is an opted-in ECK 3.5.0 as Elastic's manifests install it (open metrics).
func operator() (*appsv1.StatefulSet, map[string]*corev1.ConfigMap) {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"control-plane": "elastic-operator"}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{
					Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
					Args:         []string{"manager", "--config=/conf/eck.yaml"},
					VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf", ReadOnly: true}},
				}},
				Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
			}},
		},
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Data: map[string]string{"eck.yaml": "log-verbosity: 0\nmetrics-port: 0\n"}}
	return sts, map[string]*corev1.ConfigMap{"elastic-operator": cm}
}

// input is the decision's input for sts, with cms as the namespace's ConfigMaps.
func input(t *testing.T, sts *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) policy.Input {
	t.Helper()
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		t.Fatal("not recognised")
	}
	in := policy.Input{
		NamespaceAnnotations: map[string]string{keys.AnnotationSecure: "true"},
		Operator:             op, Template: &sts.Spec.Template, WorkloadAnnotations: sts.Annotations,
		ConfigMap:  cms[op.ConfigMapName],
		ConfigMaps: map[string]*corev1.ConfigMap{},
		Defaults:   policy.Defaults{TLSSecret: "metrics-tls"},
	}
	for _, name := range eck.ConfigMapRefs(&sts.Spec.Template, op.ContainerIndex) {
		in.ConfigMaps[name] = cms[name]
	}
	return in
}

func cmRef(name, prefix string) corev1.EnvFromSource {
	return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
}

// TestSecureReachesTheSourceThatWins: for every shape the guard can fix, the result is
// proven secured by the model, the patch only adds and sets, and a second pass changes
// nothing; for the shapes it cannot fix, it says so and the verdict is not secured.
func TestSecureReachesTheSourceThatWins(t *testing.T) {
	manager := func(s *appsv1.StatefulSet) *corev1.Container { return &s.Spec.Template.Spec.Containers[0] }
	tests := map[string]struct {
		change func(*appsv1.StatefulSet, map[string]*corev1.ConfigMap)
		// check looks at the secured container; want is the verdict's exposure.
		check func(t *testing.T, c *corev1.Container, cms map[string]*corev1.ConfigMap)
		want  eck.Exposure
	}{
		"Elastic's manifest": {want: eck.ExposureSecured},
		"env": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "false"}, {Name: "METRICS_PORT", Value: "tcp://10.0.0.1:80"}}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if c.Env[0].Value != "true" || c.Env[1].Value != "8081" {
				t.Errorf("env = %v", c.Env)
			}
		}},
		"envFrom a ConfigMap": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{cmRef("insecure-env", "METRICS_")}
			cms["insecure-env"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "insecure-env"}, Data: map[string]string{"SECURE": "false"}}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if len(c.Env) != 3 || c.Env[1] != (corev1.EnvVar{Name: "METRICS_SECURE", Value: "true"}) {
				t.Errorf("env = %v, want explicit entries that outrank envFrom", c.Env)
			}
		}},
		"envFrom a Secret": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}
		}},
		"valueFrom a Secret": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if c.Args[len(c.Args)-1] != "--metrics-secure=true" || c.Env[0].ValueFrom == nil {
				t.Errorf("args = %q, env = %v: want a flag, which outranks env, and the entry kept", c.Args, c.Env)
			}
		}},
		"a flag in the command": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Command = []string{"/elastic-operator", "manager", "--metrics-secure=false", "--metrics-port", "0"}
			manager(s).Args = []string{"--config=/conf/eck.yaml"}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if c.Command[2] != "--metrics-secure=true" || c.Command[4] != "8081" {
				t.Errorf("command = %q", c.Command)
			}
		}},
		"a variable in a flag": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "X", Value: "false"}}
			manager(s).Args = append(manager(s).Args, "--metrics-secure=$(X)")
		}},
		"a flag after --": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].ConfigMap = nil
			s.Spec.Template.Spec.Volumes[0].EmptyDir = &corev1.EmptyDirVolumeSource{}
			manager(s).Args = append(manager(s).Args, "--", "extra")
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if c.Args[len(c.Args)-2] != "--" || !strings.HasPrefix(c.Args[len(c.Args)-3], "--metrics") {
				t.Errorf("args = %q: flags must go before --", c.Args)
			}
		}},
		"items remap the key": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "eck.yaml", Path: "unused.yaml"}, {Key: "evil", Path: "eck.yaml"}}
			cms["elastic-operator"].Data["evil"] = "metrics-secure: false\n"
		}, check: func(t *testing.T, _ *corev1.Container, cms map[string]*corev1.ConfigMap) {
			if !strings.Contains(cms["elastic-operator"].Data["evil"], "metrics-secure: true") {
				t.Errorf("the key ECK reads was not edited: %q", cms["elastic-operator"].Data)
			}
		}},
		"binaryData": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cm := cms["elastic-operator"]
			cm.Data, cm.BinaryData = nil, map[string][]byte{"eck.yaml": []byte("metrics-secure: false\n")}
		}, check: func(t *testing.T, _ *corev1.Container, cms map[string]*corev1.ConfigMap) {
			if cm := cms["elastic-operator"]; cm.Data != nil || !strings.Contains(string(cm.BinaryData["eck.yaml"]), "metrics-secure: true") {
				t.Errorf("binaryData not edited in place: %v", cm)
			}
		}},
		"no --config": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = []string{"manager"}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if strings.Join(c.Args, " ") != "manager --metrics-port=8081 --metrics-secure=true" {
				t.Errorf("args = %q", c.Args)
			}
		}},
		"config from a Secret": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "conf"}}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if !strings.Contains(strings.Join(c.Args, " "), "--metrics-cert-dir=") {
				t.Errorf("args = %q: the file may move the cert dir, so the flag must pin it", c.Args)
			}
		}},
		"TMPDIR moves ECK's default cert dir": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "TMPDIR", Value: "/scratch"}}
		}, check: func(t *testing.T, c *corev1.Container, _ map[string]*corev1.ConfigMap) {
			if c.Args[len(c.Args)-1] != "--metrics-cert-dir="+eck.DefaultMetricsCertDir {
				t.Errorf("args = %q: eck.yaml does not name the default, so a flag must pin it", c.Args)
			}
		}},
		"the cert dir moved by env": {want: eck.ExposureSecured, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "METRICS_CERT_DIR", Value: "/elsewhere"}}
		}},
		"a shell": {want: eck.ExposureUnknown, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Command = []string{"sh", "-c", "exec /elastic-operator manager --metrics-secure=false"}
		}},
		"an unsupported version": {want: eck.ExposureOpen, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Image = "docker.elastic.co/eck/eck-operator:2.14.0"
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := operator()
			if tc.change != nil {
				tc.change(sts, cms)
			}
			in := input(t, sts, cms)
			r, err := Secure(in)
			if err != nil || len(r.Decision.Errs) > 0 {
				t.Fatalf("error %v %v", err, r.Decision.Errs)
			}
			if r.Verdict.Exposure != tc.want {
				t.Fatalf("verdict %s, want %s (skip: %s)", r.Verdict, tc.want, r.Decision.Skip)
			}
			if tc.want != eck.ExposureSecured {
				if r.Decision.Plan != nil || len(r.Decision.Warnings) == 0 {
					t.Errorf("an operator it cannot secure: plan %v, warnings %q", r.Decision.Plan, r.Decision.Warnings)
				}
				return
			}
			secured := sts.DeepCopy()
			secured.Spec.Template = *r.Template
			if _, err := patch.Diff(sts, secured); err != nil {
				t.Errorf("the change is not add/set only: %v", err)
			}
			if r.ConfigMap != nil {
				cms[r.ConfigMap.Name] = r.ConfigMap
			}
			if tc.check != nil {
				tc.check(t, &secured.Spec.Template.Spec.Containers[0], cms)
			}
			again, _ := Secure(input(t, secured, cms))
			if again.TemplateChanged || again.ConfigMapChanged || !equality.Semantic.DeepEqual(again.Template, r.Template) {
				t.Errorf("not idempotent: template %v, ConfigMap %v changed", again.TemplateChanged, again.ConfigMapChanged)
			}
			if !again.Verdict.Secured() {
				t.Errorf("the secured objects are judged %s", again.Verdict)
			}
		})
	}
}

// TestAdmitUnderEnforce: what an Enforce policy denies is what a write brings that the
// guard cannot fix; what it can fix is secured; what the object had already is inherited.
func TestAdmitUnderEnforce(t *testing.T) {
	enforce := &policy.Coverage{Policy: "platform", Mode: v1alpha1.ModeEnforce}
	shell := func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Command = []string{"sh", "-c", "exec /elastic-operator manager"}
	}
	downgrade := func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Image = "docker.elastic.co/eck/eck-operator:2.14.0"
	}
	insecureEnv := func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}}
	}
	label := func(s *appsv1.StatefulSet) { s.Labels = map[string]string{"team": "search"} }
	tests := map[string]struct {
		old, new []func(*appsv1.StatefulSet) // old nil: a create
		create   bool
		denied   string
	}{
		"create, secured by the guard":       {create: true, new: []func(*appsv1.StatefulSet){insecureEnv}},
		"create with a shell":                {create: true, new: []func(*appsv1.StatefulSet){shell}, denied: "unknown"},
		"create unsupported":                 {create: true, new: []func(*appsv1.StatefulSet){downgrade}, denied: "open: ECK 2.14.0 ignores metrics-secure"},
		"update to a shell":                  {new: []func(*appsv1.StatefulSet){shell}, denied: `runs "sh"`},
		"downgrade":                          {new: []func(*appsv1.StatefulSet){downgrade}, denied: "ECK 2.14.0"},
		"an inherited shell":                 {old: []func(*appsv1.StatefulSet){shell}, new: []func(*appsv1.StatefulSet){shell, label}},
		"an update the guard secures anyway": {new: []func(*appsv1.StatefulSet){insecureEnv}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := operator()
			for _, f := range tc.new {
				f(sts)
			}
			in := input(t, sts, cms)
			in.Coverage, in.Admitting = enforce, policy.HolderWorkload
			var old *policy.Input
			if !tc.create {
				was, _ := operator()
				for _, f := range tc.old {
					f(was)
				}
				o := input(t, was, cms)
				o.Coverage, o.Admitting = enforce, policy.HolderWorkload
				old = &o
			}
			r, err := Admit(in, old)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Decision.Denied.ToAggregate()
			switch {
			case tc.denied == "" && got != nil:
				t.Errorf("denied: %v", got)
			case tc.denied != "" && (got == nil || !strings.Contains(got.Error(), tc.denied) || !strings.Contains(got.Error(), "MetricsSecurityPolicy platform")):
				t.Errorf("denial %v, want one naming the policy and %q", got, tc.denied)
			}
		})
	}
}

func TestNoLongerOperator(t *testing.T) {
	sts, _ := operator()
	op, _ := eck.FromStatefulSet(sts)
	if NoLongerOperator(&policy.Coverage{Policy: "p", Mode: v1alpha1.ModeMutate}, op) != nil || NoLongerOperator(nil, op) != nil {
		t.Error("denied without Enforce")
	}
	if err := NoLongerOperator(&policy.Coverage{Policy: "p", Mode: v1alpha1.ModeEnforce}, op); err == nil || !strings.Contains(err.Error(), "StatefulSet elastic-operator runs the ECK operator") {
		t.Errorf("denial %v", err)
	}
}
