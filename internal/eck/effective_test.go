package eck

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const securedYAML = "metrics-port: 8081\nmetrics-secure: true\n"

// securedOperator is ECK 3.5.0 in the end state: eck.yaml secures it, and the TLS Secret is
// mounted at ECK's default cert dir. Each shape below changes one thing.
func securedOperator() (*appsv1.StatefulSet, map[string]*corev1.ConfigMap) {
	sts := statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", managerArgs)
	spec := &sts.Spec.Template.Spec
	spec.Volumes[0].ConfigMap.Name = "elastic-operator"
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "tls-certificate", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}})
	spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tls-certificate", MountPath: DefaultMetricsCertDir, ReadOnly: true})
	return sts, map[string]*corev1.ConfigMap{"elastic-operator": configMap("elastic-operator", "eck.yaml", securedYAML)}
}

func configMap(name string, kv ...string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ops"}, Data: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		cm.Data[kv[i]] = kv[i+1]
	}
	return cm
}

func optional() *bool { t := true; return &t }

// TestEffectiveShapes is the table of what ECK reads, shape by shape (the facts of how ECK
// 2.16 to 3.5 reads its settings): each with the exposure the model must report and words
// its reasons must hold (the source that wins).
func TestEffectiveShapes(t *testing.T) {
	manager := func(s *appsv1.StatefulSet) *corev1.Container { return &s.Spec.Template.Spec.Containers[0] }
	env := func(kv ...string) []corev1.EnvVar {
		var out []corev1.EnvVar
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, corev1.EnvVar{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := map[string]struct {
		change func(*appsv1.StatefulSet, map[string]*corev1.ConfigMap)
		want   Exposure
		port   int
		reason string
	}{
		"the end state": {want: ExposureSecured, port: 8081},
		"Elastic's released defaults": {want: ExposureOpen, reason: "metrics-secure false from ECK's default: plain HTTP without authentication on a random port (metrics-port 0 from eck.yaml (ConfigMap elastic-operator data[eck.yaml]))", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cms["elastic-operator"].Data["eck.yaml"] = "metrics-port: 0\nmetrics-host: 0.0.0.0\n"
		}},
		"env over the file": {want: ExposureOpen, reason: "env METRICS_SECURE (env[0])", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_SECURE", "false")
		}},
		"an empty variable is unset for viper": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_SECURE", "")
		}},
		"yes is not a boolean for cast, so false": {want: ExposureOpen, reason: "metrics-secure false from env", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_SECURE", "yes")
		}},
		"envFrom a ConfigMap": {want: ExposureOpen, reason: "env METRICS_SECURE from envFrom ConfigMap insecure-env", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "insecure-env"}}}}
			cms["insecure-env"] = configMap("insecure-env", "METRICS_SECURE", "false")
		}},
		"envFrom with a prefix": {want: ExposureOpen, reason: "envFrom ConfigMap insecure-env", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{Prefix: "METRICS_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "insecure-env"}}}}
			cms["insecure-env"] = configMap("insecure-env", "SECURE", "false")
		}},
		"envFrom with a prefix that cannot match": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{Prefix: "OTHER_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "insecure-env"}}}}
			cms["insecure-env"] = configMap("insecure-env", "METRICS_SECURE", "false")
		}},
		"env over envFrom": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "insecure-env"}}}}
			manager(s).Env = env("METRICS_SECURE", "true")
			cms["insecure-env"] = configMap("insecure-env", "METRICS_SECURE", "false")
		}},
		"the later envFrom wins": {want: ExposureOpen, reason: "envFrom ConfigMap b", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "a"}}},
				{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "b"}}},
			}
			cms["a"], cms["b"] = configMap("a", "METRICS_SECURE", "true"), configMap("b", "METRICS_SECURE", "false")
		}},
		"envFrom a Secret": {want: ExposureUnknown, reason: "does not read Secrets", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "x"}}}}
		}},
		"envFrom a missing optional ConfigMap": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}, Optional: optional()}}}
		}},
		"envFrom a missing ConfigMap": {want: ExposureUnknown, reason: "cannot start", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}}
		}},
		"valueFrom a Secret": {want: ExposureUnknown, reason: "env METRICS_SECURE", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}}
		}},
		"valueFrom a ConfigMap": {want: ExposureOpen, reason: "env[0] from ConfigMap x key secure", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).Env = []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "x"}, Key: "secure"}}}}
			cms["x"] = configMap("x", "secure", "false")
		}},
		"a flag in the command": {want: ExposureOpen, reason: "flag --metrics-secure in command[2]", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Command = []string{"/elastic-operator", "manager", "--metrics-secure=false"}
			manager(s).Args = []string{"--config=/conf/eck.yaml"}
		}},
		"a flag over env": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_SECURE", "false")
			manager(s).Args = append(manager(s).Args, "--metrics-secure")
		}},
		"the last flag wins": {want: ExposureOpen, reason: "args[3]", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--metrics-secure", "--metrics-secure=false")
		}},
		"a bare boolean takes no value": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--metrics-secure", "false")
		}},
		"a value flag takes the next word": {want: ExposureSecured, port: 9000, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--metrics-port", "9000")
		}},
		"a value flag takes the next word even with dashes": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--operator-namespace", "--metrics-secure=false")
		}},
		"a flag after -- is no flag": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--", "--metrics-secure=false")
		}},
		"a variable in a flag": {want: ExposureOpen, reason: "flag --metrics-secure in args[2]", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("X", "false")
			manager(s).Args = append(manager(s).Args, "--metrics-secure=$(X)")
		}},
		"an escaped variable is literal": {want: ExposureUnknown, reason: "not a boolean", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("X", "false")
			manager(s).Args = append(manager(s).Args, "--metrics-secure=$$(X)")
		}},
		"a variable that envFrom may set": {want: ExposureUnknown, reason: "$(X)", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "e"}}}}
			cms["e"] = configMap("e")
			manager(s).Args = append(manager(s).Args, "--metrics-secure=$(X)")
		}},
		"an unknown flag stops ECK": {want: ExposureUnknown, reason: "not a flag of ECK's manager", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--metrics-insecure")
		}},
		"a shell": {want: ExposureUnknown, reason: `runs "sh"`, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Command = []string{"sh", "-c", "exec /elastic-operator manager --config=/conf/eck.yaml --metrics-secure=false"}
		}},
		"the last --config": {want: ExposureOpen, reason: "data[open.yaml]", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).Args = append(manager(s).Args, "--config", "/conf/open.yaml")
			cms["elastic-operator"].Data["open.yaml"] = "metrics-port: 8081\nmetrics-secure: false\n"
		}},
		"items remap the key ECK reads": {want: ExposureOpen, reason: "ConfigMap elastic-operator data[evil]", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "eck.yaml", Path: "unused.yaml"}, {Key: "evil", Path: "eck.yaml"}}
			cms["elastic-operator"].Data["evil"] = "metrics-port: 8081\nmetrics-secure: false\n"
		}},
		"items leave the file out": {want: ExposureUnknown, reason: "does not exist", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "eck.yaml", Path: "other.yaml"}}
		}},
		"subPath": {want: ExposureOpen, reason: "data[other]", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			manager(s).VolumeMounts[0] = corev1.VolumeMount{Name: "conf", MountPath: "/conf/eck.yaml", SubPath: "other"}
			cms["elastic-operator"].Data["other"] = "metrics-port: 8081\nmetrics-secure: false\n"
		}},
		"projected ConfigMap": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}},
			}}}
		}},
		"projected Secret": {want: ExposureUnknown, reason: "does not read Secrets", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}},
			}}}
		}},
		"a Secret volume": {want: ExposureUnknown, reason: "Secret", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}
		}},
		"binaryData": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cm := cms["elastic-operator"]
			cm.Data, cm.BinaryData = nil, map[string][]byte{"eck.yaml": []byte(securedYAML)}
		}},
		"binaryData opens it": {want: ExposureOpen, reason: "binaryData[eck.yaml]", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cm := cms["elastic-operator"]
			cm.Data, cm.BinaryData = nil, map[string][]byte{"eck.yaml": []byte("metrics-port: 8081\nmetrics-secure: false\n")}
		}},
		"keys are case-insensitive": {want: ExposureOpen, reason: "metrics-secure false from eck.yaml", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cms["elastic-operator"].Data["eck.yaml"] = "metrics-port: 8081\nMetrics-Secure: false\n"
		}},
		"a duplicate key stops ECK": {want: ExposureUnknown, reason: "duplicate key", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cms["elastic-operator"].Data["eck.yaml"] = securedYAML + "metrics-secure: false\n"
		}},
		"a file ECK parses as JSON": {want: ExposureUnknown, reason: "another parser", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = []string{"manager", "--config=/conf/eck.json"}
		}},
		"no mount where --config points": {want: ExposureUnknown, reason: "from the image", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = []string{"manager", "--config=/etc/eck.yaml"}
		}},
		"no --config: ECK's defaults": {want: ExposureOpen, reason: "metrics-secure false from ECK's default", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = []string{"manager"}
		}},
		"no --config, flags secure it": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Args = []string{"manager", "--metrics-secure=true", "--metrics-port=8081"}
		}},
		"a port cast cannot read is random": {want: ExposureIncomplete, reason: "random port", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_PORT", "tcp://10.0.0.1:8080")
		}},
		"a hexadecimal port": {want: ExposureSecured, port: 8081, change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_PORT", "0x1F91")
		}},
		"the cert dir moved away from the Secret": {want: ExposureIncomplete, reason: "no Secret is mounted at /elsewhere", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Env = env("METRICS_CERT_DIR", "/elsewhere")
		}},
		"an optional Secret": {want: ExposureIncomplete, reason: "optional", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			s.Spec.Template.Spec.Volumes[1].Secret.Optional = optional()
		}},
		"an IPv6 host without brackets": {want: ExposureIncomplete, reason: "brackets", change: func(s *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) {
			cms["elastic-operator"].Data["eck.yaml"] = securedYAML + "metrics-host: \"::\"\n"
		}},
		"an unsupported version": {want: ExposureOpen, reason: "ignores metrics-secure", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Image = "docker.elastic.co/eck/eck-operator:2.14.0"
		}},
		"an unknown version": {want: ExposureUnknown, reason: "version is unknown", change: func(s *appsv1.StatefulSet, _ map[string]*corev1.ConfigMap) {
			manager(s).Image = "docker.elastic.co/eck/eck-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			if tc.change != nil {
				tc.change(sts, cms)
			}
			op, ok := FromStatefulSet(sts)
			if !ok {
				t.Fatal("not recognised")
			}
			e := Resolve(&sts.Spec.Template, op.ContainerIndex, func(name string) *corev1.ConfigMap { return cms[name] })
			v := Judge(op, &sts.Spec.Template, e)
			if v.Exposure != tc.want || (tc.port != 0 && v.Port != tc.port) {
				t.Errorf("verdict %s (port %d), want %s (port %d)", v, v.Port, tc.want, tc.port)
			}
			if got := strings.Join(v.Reasons, "\n"); !strings.Contains(got, tc.reason) {
				t.Errorf("reasons %q do not name %q", got, tc.reason)
			}
			if tc.want == ExposureSecured && len(v.Reasons) > 0 {
				t.Errorf("secured with reasons %q", v.Reasons)
			}
		})
	}
}

// TestEffectiveWithoutConfigMaps: with no ConfigMap readable (recognition), nothing that
// depends on one is claimed.
func TestEffectiveWithoutConfigMaps(t *testing.T) {
	sts, _ := securedOperator()
	op, _ := FromStatefulSet(sts)
	v := Judge(op, &sts.Spec.Template, Resolve(&sts.Spec.Template, 0, nil))
	if v.Exposure != ExposureUnknown {
		t.Errorf("verdict without the ConfigMap: %s, want unknown", v)
	}
}

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "$(A)"}
	lookup := func(name string) (string, bool, string) {
		if name == "U" {
			return "", false, "not readable"
		}
		v, ok := vars[name]
		return v, ok, ""
	}
	for in, want := range map[string]string{
		"plain": "plain", "$(A)": "1", "x$(A)y": "x1y", "$$(A)": "$(A)", "$(A": "$(A",
		"$": "$", "a$b": "a$b", "$(B)": "$(A)", "$$$(A)": "$1",
	} {
		if got, unknown := expand(in, lookup); got != want || unknown != "" {
			t.Errorf("expand(%q) = %q (%q), want %q", in, got, unknown, want)
		}
	}
	if _, unknown := expand("--x=$(U)", lookup); unknown == "" {
		t.Error("an unreadable variable was expanded")
	}
	// The kubelet defines service links the guard does not see: undefined is not known.
	if _, unknown := expand("$(C)", lookup); !strings.Contains(unknown, "service links") {
		t.Errorf("an undefined variable: %q, want it unknown", unknown)
	}
}

func TestEnvData(t *testing.T) {
	got := EnvData(map[string]string{"SECURE": "false", "METRICS_PORT": "1", "OTHER": "x", "": "y", "config.yaml": "z"})
	if len(got) != 2 || got["SECURE"] != "false" || got["METRICS_PORT"] != "1" {
		t.Errorf("kept %v, want the two keys an envFrom can turn into a metrics variable", got)
	}
}
