package eck

// Security review of the model of what ECK reads (internal/eck). Each test names the
// attack (a namespace user with StatefulSet/Deployment/ConfigMap/Service rights, or a
// careless user) and the ground truth, with the source it comes from:
//
//	ECK     /root/go/pkg/mod/github.com/elastic/cloud-on-k8s/v3@v3.5.0/cmd/manager/main.go
//	viper   /root/go/pkg/mod/github.com/spf13/viper@v1.21.0
//	kubelet /root/go/pkg/mod/k8s.io/kubernetes@v1.37.2/pkg/kubelet
//
// A test that fails is a finding: the guard claims more than ECK does. The tests that pass
// pin corner cases the model gets right.

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func judgeReview(t *testing.T, sts *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) Verdict {
	t.Helper()
	op, ok := FromStatefulSet(sts)
	if !ok {
		t.Fatal("not recognised as an operator")
	}
	get := func(name string) *corev1.ConfigMap { return cms[name] }
	return Judge(op, &sts.Spec.Template, Resolve(&sts.Spec.Template, op.ContainerIndex, get))
}

// TestReviewConfigPathExpandsServiceVariables: FALSE SECURED (plain HTTP).
//
// Attack: --config=/conf/$(KUBERNETES_SERVICE_PORT).yaml, with a ConfigMap volume whose items
// put the secure eck.yaml at the literal path "$(KUBERNETES_SERVICE_PORT).yaml" and an
// insecure one at "443.yaml".
//
// Ground truth: the kubelet expands command and args with the container's final environment,
// which includes the service link variables (kubelet/container/helpers.go:269
// ExpandContainerCommandAndArgs, fed from makeEnvironmentVariables, kubelet_pods.go:995-1003
// "Append remaining service env vars"). The master service "kubernetes" is always linked, even
// with enableServiceLinks: false (kubelet_pods.go:731-738, masterServices at :701), so
// $(KUBERNETES_SERVICE_PORT) is "443" in every pod, and every Service of the namespace adds
// <NAME>_SERVICE_HOST/_PORT and friends (kubelet/envvars/envvars.go:32). ECK reads
// /conf/443.yaml. The guard's expandLookup keeps a reference it does not know as written
// (effective.go expandLookup returns "not defined"), reads the secure item, says secured, and
// edits the wrong ConfigMap key.
func TestReviewConfigPathExpandsServiceVariables(t *testing.T) {
	sts, cms := securedOperator()
	c := &sts.Spec.Template.Spec.Containers[0]
	c.Args = []string{"manager", "--config=/conf/$(KUBERNETES_SERVICE_PORT).yaml"}
	sts.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{
		{Key: "eck.yaml", Path: "$(KUBERNETES_SERVICE_PORT).yaml"},
		{Key: "insecure.yaml", Path: "443.yaml"},
	}
	cms["elastic-operator"].Data["insecure.yaml"] = "metrics-port: 8081\nmetrics-secure: false\n"
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; the kubelet expands $(KUBERNETES_SERVICE_PORT) to 443, so ECK reads /conf/443.yaml (metrics-secure: false) and serves plain HTTP", v)
	}
}

// TestReviewCertDirExpandsServiceVariables: false secured (self-signed certificate).
//
// Same mechanism as above on --metrics-cert-dir: the guard looks for the Secret at the literal
// path, ECK (after the kubelet's expansion, kubelet/container/helpers.go:269) reads
// /certs-443, finds no tls.crt and makes a self-signed one (controller-runtime@v0.24.1
// pkg/metrics/server/server.go:286-326).
func TestReviewCertDirExpandsServiceVariables(t *testing.T) {
	sts, cms := securedOperator()
	c := &sts.Spec.Template.Spec.Containers[0]
	dir := "/certs-$(KUBERNETES_SERVICE_PORT)"
	c.Args = append(c.Args, "--metrics-cert-dir="+dir)
	c.VolumeMounts[1].MountPath = dir
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; ECK reads the certificate from /certs-443, where none is mounted", v)
	}
}

// TestReviewTMPDIRMovesTheDefaultCertDir: false secured (self-signed certificate).
//
// Attack/careless: env TMPDIR=/scratch (common for read-only root filesystems). ECK's
// --metrics-cert-dir default is filepath.Join(os.TempDir(), "k8s-metrics-server",
// "serving-certs") (main.go:306-310), evaluated in the container, and os.TempDir is $TMPDIR
// on Unix; viper returns that flag default when nothing sets it (viper.go find, flag default
// last). ECK reads /scratch/k8s-metrics-server/serving-certs and makes a self-signed
// certificate; the guard checks /tmp/k8s-metrics-server/serving-certs (settings.go
// DefaultMetricsCertDir) and the mutation does not pin metrics-cert-dir at the default
// (mutate.go overrideSources "nothing above eck.yaml moves it").
func TestReviewTMPDIRMovesTheDefaultCertDir(t *testing.T) {
	sts, cms := securedOperator()
	sts.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TMPDIR", Value: "/scratch"}}
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; with TMPDIR=/scratch ECK reads its certificate from /scratch/k8s-metrics-server/serving-certs", v)
	}
}

// TestReviewMergeKeySetsCertDir: false secured (self-signed certificate).
//
// Attack: eck.yaml with a YAML merge key, `<<: {metrics-cert-dir: /nowhere}`. viper decodes
// eck.yaml with go.yaml.in/yaml/v3 into a map (viper.go:1720-1731 unmarshalReader), and
// yaml.v3 applies merge keys, so ECK sees metrics-cert-dir /nowhere. The guard's Config
// indexes only the literal top-level keys ("<<" is one of them) and falls back to the
// default directory, where the Secret is mounted.
func TestReviewMergeKeySetsCertDir(t *testing.T) {
	text := "metrics-port: 8081\nmetrics-secure: true\n<<: {metrics-cert-dir: /nowhere}\n"
	var m map[string]any
	if err := yaml.Unmarshal([]byte(text), &m); err != nil || m["metrics-cert-dir"] != "/nowhere" {
		t.Fatalf("yaml.v3 decodes %v (%v), want the merged metrics-cert-dir", m, err)
	}
	sts, cms := securedOperator()
	cms["elastic-operator"].Data["eck.yaml"] = text
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; ECK reads metrics-cert-dir /nowhere from the merge key", v)
	}
}

// TestReviewMergeKeyCaseCollision: false secured (plain HTTP about half the time).
//
// Attack: `metrics-secure: true` plus `<<: {METRICS-SECURE: false}`. yaml.v3 keeps both keys
// (they differ in case, so the merge does not skip it), then viper lower-cases the map with
// insensitiviseMap (viper@v1.21.0/util.go:89-100), iterating a Go map: whichever key comes
// last wins, at random. The guard refuses case-folded duplicates at the top level
// (eckconfig.go index) but does not see keys brought by "<<".
func TestReviewMergeKeyCaseCollision(t *testing.T) {
	text := "metrics-port: 8081\nmetrics-secure: true\n<<: {METRICS-SECURE: false}\n"
	var m map[string]any
	if err := yaml.Unmarshal([]byte(text), &m); err != nil || m["METRICS-SECURE"] != false || m["metrics-secure"] != true {
		t.Fatalf("yaml.v3 decodes %v (%v), want both keys", m, err)
	}
	sts, cms := securedOperator()
	cms["elastic-operator"].Data["eck.yaml"] = text
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; viper's insensitiviseMap picks metrics-secure true or false at random", v)
	}
}

// TestReviewMergeKeyInsecureIsOpen (passes): a merge key that brings `metrics-secure: false`
// alone is read as the default false, so the guard reports open either way.
func TestReviewMergeKeyInsecureIsOpen(t *testing.T) {
	sts, cms := securedOperator()
	cms["elastic-operator"].Data["eck.yaml"] = "metrics-port: 8081\n<<: {metrics-secure: false}\n"
	if v := judgeReview(t, sts, cms); v.Exposure != ExposureUnknown {
		t.Errorf("verdict %s, want unknown: the guard refuses top-level merge keys", v)
	}
}

// TestReviewSecondOperatorContainer: FALSE SECURED (plain HTTP).
//
// Attack: add a second container with the ECK image to the guarded StatefulSet, running
// `manager --metrics-port=9090` (metrics-secure defaults to false, main.go:301-305). It is a
// full ECK manager with the operator's service account; controller-runtime starts the
// metrics server before (and regardless of) leader election, so it serves plain HTTP while
// it waits for the lease. The guard judges only one container (operator.go operatorContainer:
// "the one named manager, else the first").
func TestReviewSecondOperatorContainer(t *testing.T) {
	sts, cms := securedOperator()
	spec := &sts.Spec.Template.Spec
	spec.Containers = append(spec.Containers, corev1.Container{
		Name: "shadow", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
		Args: []string{"manager", "--metrics-port=9090", "--webhook-port=9444", "--enable-leader-election=true"},
	})
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; container shadow runs ECK's manager with plain HTTP metrics on 9090", v)
	}
}

// TestReviewDecoyManagerHidesTheOperator: the operator escapes the guard.
//
// Attack: a container named "manager" with the ECK image that does not run the manager
// (args ["help"]: cobra prints help and exits; the container restarts, the pod keeps
// running), and a second ECK container running `manager` with open metrics. fromWorkload
// picks "manager", sees NotManager and reports no operator at all (operator.go fromWorkload),
// so the webhook admits a create under Enforce ("not an ECK operator") and the controller
// never reports it.
func TestReviewDecoyManagerHidesTheOperator(t *testing.T) {
	sts, _ := securedOperator()
	spec := &sts.Spec.Template.Spec
	real := spec.Containers[0]
	real.Name = "real"
	real.Args = []string{"manager", "--metrics-port=9090"}
	spec.Containers = []corev1.Container{{Name: "manager", Image: real.Image, Args: []string{"help"}}, real}
	if _, ok := FromStatefulSet(sts); !ok {
		t.Error("not recognised as an operator, though container real runs ECK's manager with plain HTTP metrics")
	}
}

// TestReviewSidecarInitContainer: the operator escapes the guard.
//
// Attack: run ECK as a native sidecar, an initContainer with restartPolicy: Always, which
// runs for the pod's whole life. Neither recognition (operatorContainer looks at
// spec.containers only) nor the webhook's matchCondition runs-the-eck-operator
// (config/webhook/manifests.yaml: o.spec.template.spec.containers.exists) look at
// initContainers.
func TestReviewSidecarInitContainer(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	sts, _ := securedOperator()
	spec := &sts.Spec.Template.Spec
	ecks := spec.Containers[0]
	ecks.RestartPolicy = &always
	ecks.Args = []string{"manager", "--metrics-port=9090"}
	spec.InitContainers = []corev1.Container{ecks}
	spec.Containers = []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}}
	if _, ok := FromStatefulSet(sts); !ok {
		t.Error("not recognised as an operator, though a sidecar initContainer runs ECK's manager with plain HTTP metrics")
	}
}

// TestReviewCommandLineCorners (passes): pflag and cobra corner cases the model gets right.
// pflag@v1.0.10/flag.go parseLongArg: a bool flag alone is true and takes no value, "--" ends
// the flags, a non-bool flag takes the next word whatever it is; the last Set wins.
func TestReviewCommandLineCorners(t *testing.T) {
	tests := map[string]struct {
		command, args []string
		want          Exposure
	}{
		"a bool flag does not take the next word":  {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics-secure", "false"}, want: ExposureSecured},
		"0 is false for ParseBool":                 {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics-secure=0"}, want: ExposureOpen},
		"a single dash is shorthands":              {args: []string{"manager", "--config=/conf/eck.yaml", "-metrics-secure=false"}, want: ExposureUnknown},
		"three dashes is bad syntax":               {args: []string{"manager", "--config=/conf/eck.yaml", "---metrics-secure=false"}, want: ExposureUnknown},
		"a value word that looks like a flag":      {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics-host", "--metrics-secure=false"}, want: ExposureSecured},
		"--config twice, the last wins":            {args: []string{"manager", "--config=/elsewhere/x.yaml", "--config=/conf/eck.yaml"}, want: ExposureSecured},
		"after -- nothing is a flag":               {args: []string{"manager", "--config=/conf/eck.yaml", "--", "--metrics-secure=false"}, want: ExposureSecured},
		"command then args, the last wins":         {command: []string{"/elastic-operator", "manager", "--metrics-secure=false"}, args: []string{"--config=/conf/eck.yaml", "--metrics-secure=true"}, want: ExposureSecured},
		"args override the command":                {command: []string{"/elastic-operator", "manager", "--metrics-secure=true"}, args: []string{"--config=/conf/eck.yaml", "--metrics-secure=false"}, want: ExposureOpen},
		"flags before the subcommand":              {args: []string{"--metrics-secure=false", "manager", "--config=/conf/eck.yaml"}, want: ExposureUnknown},
		"an empty bool value makes ECK exit":       {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics-secure="}, want: ExposureUnknown},
		"an octal-looking port makes pflag fail":   {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics-port=08081"}, want: ExposureUnknown},
		"--help anywhere exits":                    {args: []string{"manager", "--config=/conf/eck.yaml", "--help"}, want: ExposureNone},
		"an unknown flag makes ECK exit":           {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics_secure=false"}, want: ExposureUnknown},
		"a variable defined later is not expanded": {args: []string{"manager", "--config=/conf/eck.yaml", "--metrics-port=$(LATER)"}, want: ExposureUnknown},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			c := &sts.Spec.Template.Spec.Containers[0]
			c.Command, c.Args = tc.command, tc.args
			if tc.want == ExposureNone {
				e := Resolve(&sts.Spec.Template, 0, func(n string) *corev1.ConfigMap { return cms[n] })
				if e.CommandLine.NotManager == "" {
					t.Errorf("not NotManager: %+v", e.CommandLine)
				}
				return
			}
			if v := judgeReview(t, sts, cms); v.Exposure != tc.want {
				t.Errorf("verdict %s, want %s", v, tc.want)
			}
		})
	}
	// +8081 is a port for pflag (strconv.ParseInt(s, 0, 64)) and for cast.
	sts, cms := securedOperator()
	sts.Spec.Template.Spec.Containers[0].Args = append(sts.Spec.Template.Spec.Containers[0].Args, "--metrics-port=+8082")
	if v := judgeReview(t, sts, cms); v.Port != 8082 || !v.Secured() {
		t.Errorf("--metrics-port=+8082: %s port %d", v, v.Port)
	}
}

// TestReviewEnvCorners (passes): kubelet env and viper env corner cases.
func TestReviewEnvCorners(t *testing.T) {
	tests := map[string]struct {
		env  []corev1.EnvVar
		want Exposure
	}{
		// kubelet_pods.go: tmpEnv[envVar.Name] = runtimeVal, the last entry wins.
		"duplicate entries, the last wins": {env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "true"}, {Name: "METRICS_SECURE", Value: "false"}}, want: ExposureOpen},
		// viper replaces "-" by "_" in the key, not in the environment: METRICS-SECURE is not read.
		"a dash in the name is not read": {env: []corev1.EnvVar{{Name: "METRICS-SECURE", Value: "false"}}, want: ExposureSecured},
		// viper.getEnv: an empty variable is unset without AllowEmptyEnv.
		"empty is unset": {env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: ""}}, want: ExposureSecured},
		// cast.ToBool: strconv.ParseBool, no trimming.
		"a trailing space is false": {env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "true "}}, want: ExposureOpen},
		// lower case names are other variables (viper upper-cases the key).
		"lower case is another variable": {env: []corev1.EnvVar{{Name: "metrics_secure", Value: "false"}}, want: ExposureSecured},
		// a reference to a later entry is not expanded, and the literal text is not a bool.
		// The kubelet leaves $(S) as written (S is defined later), and cast reads it as false;
		// the guard says unknown, for the kubelet may define S itself (service links).
		"a later reference": {env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "$(S)"}, {Name: "S", Value: "true"}}, want: ExposureUnknown},
		// an optional key that is missing sets nothing.
		"optional missing key": {env: []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}, Key: "nope", Optional: optional()}}}}, want: ExposureSecured},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			sts.Spec.Template.Spec.Containers[0].Env = tc.env
			if v := judgeReview(t, sts, cms); v.Exposure != tc.want {
				t.Errorf("verdict %s, want %s", v, tc.want)
			}
		})
	}
}

// TestReviewFileCorners (passes): eck.yaml as viper (yaml.v3, then lower-cased keys) reads it.
func TestReviewFileCorners(t *testing.T) {
	tests := map[string]struct {
		text string
		want Exposure
	}{
		"nested keys are other keys":         {text: "metrics-port: 8081\nmetrics-secure: true\nmetrics: {secure: false}\n", want: ExposureSecured},
		"a quoted trailing space is false":   {text: "metrics-port: 8081\nmetrics-secure: \"true \"\n", want: ExposureOpen},
		"!!str true is the string true":      {text: "metrics-port: 8081\nmetrics-secure: !!str true\n", want: ExposureSecured},
		"yes is a string, not a bool":        {text: "metrics-port: 8081\nmetrics-secure: yes\n", want: ExposureOpen},
		"an alias":                           {text: "x: &f false\nmetrics-port: 8081\nmetrics-secure: *f\n", want: ExposureOpen},
		"a flow mapping":                     {text: "{\"metrics-port\": 8081, \"metrics-secure\": false}\n", want: ExposureOpen},
		"case-folded duplicates are refused": {text: "metrics-port: 8081\nmetrics-secure: true\nMETRICS-SECURE: false\n", want: ExposureUnknown},
		"several documents are refused":      {text: "metrics-port: 8081\nmetrics-secure: true\n---\nmetrics-secure: false\n", want: ExposureUnknown},
		"a BOM":                              {text: "\ufeffmetrics-port: 8081\nmetrics-secure: false\n", want: ExposureOpen},
		"null is the default":                {text: "metrics-port: 8081\nmetrics-secure: ~\n", want: ExposureOpen},
		"upper case key":                     {text: "metrics-port: 8081\nMetrics-Secure: false\n", want: ExposureOpen},
		"hex port":                           {text: "metrics-port: 0x1F91\nmetrics-secure: true\n", want: ExposureSecured},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			cms["elastic-operator"].Data["eck.yaml"] = tc.text
			if v := judgeReview(t, sts, cms); v.Exposure != tc.want {
				t.Errorf("verdict %s, want %s", v, tc.want)
			}
		})
	}
}

// TestReviewCertificateVolume (passes): shapes of the cert Secret the model refuses.
func TestReviewCertificateVolume(t *testing.T) {
	tests := map[string]func(*corev1.PodSpec){
		"items without tls.key": func(s *corev1.PodSpec) {
			s.Volumes[1].Secret.Items = []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}}
		},
		"a file mounted over tls.crt": func(s *corev1.PodSpec) {
			s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "conf", MountPath: DefaultMetricsCertDir + "/tls.crt", SubPath: "eck.yaml"})
		},
		"an optional Secret": func(s *corev1.PodSpec) { s.Volumes[1].Secret.Optional = optional() },
		"a subPath mount":    func(s *corev1.PodSpec) { s.Containers[0].VolumeMounts[1].SubPath = "x" },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			change(&sts.Spec.Template.Spec)
			if v := judgeReview(t, sts, cms); v.Secured() {
				t.Errorf("verdict %s", v)
			}
		})
	}
}

// TestReviewCertificateItemsRemapKeys: items may map another key to the path tls.crt
// (certificateMounted checks paths only). ECK then loads a key pair that does not match
// and the metrics server fails to start (controller-runtime certwatcher.New): ECK exits,
// nothing is served, but the guard says secured.
func TestReviewCertificateItemsRemapKeys(t *testing.T) {
	sts, cms := securedOperator()
	sts.Spec.Template.Spec.Volumes[1].Secret.Items = []corev1.KeyToPath{{Key: "ca.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}}
	if v := judgeReview(t, sts, cms); v.Secured() && !strings.Contains(strings.Join(v.Reasons, ";"), "ca.crt") {
		t.Errorf("verdict %s; tls.crt is the Secret's ca.crt", v)
	}
}

// TestReviewSameMountPathWithATrailingSlash: FALSE SECURED (plain HTTP).
//
// Attack: mount a second ConfigMap at "/conf/" next to the operator's at "/conf". API
// validation compares mount paths as raw strings (k8s.io/kubernetes@v1.37.2
// pkg/apis/core/validation/validation.go:3179-3195 "must be unique"), so both are accepted.
// The runtime sorts mounts by the depth of the cleaned path, stable (containerd CRI
// orderedMounts: strings.Count(filepath.Clean(dst), "/"); CRI-O breaks ties by destination,
// "/conf" < "/conf/"), so the later "/conf/" is mounted on top and ECK reads its eck.yaml.
// resolveFile takes the first of two equally deep mounts (effective.go: len(mp) > len(...)).
func TestReviewSameMountPathWithATrailingSlash(t *testing.T) {
	sts, cms := securedOperator()
	spec := &sts.Spec.Template.Spec
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "evil", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "evil"}}}})
	spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "evil", MountPath: "/conf/"})
	cms["evil"] = configMap("evil", "eck.yaml", "metrics-port: 8081\nmetrics-secure: false\n")
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; the runtime mounts /conf/ over /conf, so ECK reads ConfigMap evil (metrics-secure: false)", v)
	}
}

// TestReviewCertificateShadowedAtTheSamePath (passes): an emptyDir at the cert dir with a
// trailing slash after the Secret: certificateMounted takes the last exact match, which is
// what containerd mounts on top.
func TestReviewCertificateShadowedAtTheSamePath(t *testing.T) {
	sts, cms := securedOperator()
	spec := &sts.Spec.Template.Spec
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "scratch", MountPath: DefaultMetricsCertDir + "/"})
	if v := judgeReview(t, sts, cms); v.Secured() {
		t.Errorf("verdict %s; an emptyDir is mounted over the certificate", v)
	}
}

// TestReviewLowSeverity: the guard says secured, ECK serves nothing or something else. Not
// plain metrics, but the status claims an end state that is not there.
func TestReviewLowSeverity(t *testing.T) {
	tests := map[string]struct {
		change func(*appsv1.StatefulSet)
		why    string
	}{
		// pflag accepts any int64 (strconv.ParseInt(s, 0, 64)); controller-runtime's
		// net.Listen("tcp", "0.0.0.0:70000") fails ("invalid port") and the manager exits.
		"a port out of range": {change: func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Containers[0].Args = append(s.Spec.Template.Spec.Containers[0].Args, "--metrics-port=70000")
		}, why: "ECK cannot listen on port 70000 and exits"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			tc.change(sts)
			if v := judgeReview(t, sts, cms); v.Secured() {
				t.Errorf("verdict %s; %s", v, tc.why)
			}
		})
	}
}

// TestReviewTheEntrypointIsWhatTheImageRuns: FALSE SECURED (anything can run).
//
// The guard reads the command line as ECK's cobra would whenever path.Base(command[0]) is
// "elastic-operator" (cmdline.go parseCommandLine), and trusts the image name alone
// (operator.go IsOperatorImage: "on any registry"). A namespace user can make the container
// run something else with ECK's official image:
//   - command ["/shared/elastic-operator", ...]: a wrapper an initContainer wrote into an
//     emptyDir, which ignores its args and execs `/elastic-operator manager` with open
//     metrics;
//   - the same wrapper mounted with subPath at /elastic-operator, over ECK's binary (the
//     runtime bind-mounts the file over the image's).
//
// and, trivially, any image whose name starts with eck-operator on their own registry.
func TestReviewTheEntrypointIsWhatTheImageRuns(t *testing.T) {
	wrapper := func(s *appsv1.StatefulSet) {
		spec := &s.Spec.Template.Spec
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		spec.InitContainers = []corev1.Container{{Name: "tools", Image: "busybox:1.36", Command: []string{"sh", "-c", "cp /bin/busybox /shared/ && printf '#!/shared/busybox sh\\nexec /elastic-operator manager --metrics-port=8081\\n' > /shared/elastic-operator && chmod +x /shared/elastic-operator"},
			VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}}}
	}
	tests := map[string]func(*appsv1.StatefulSet){
		"a wrapper with the same base name": func(s *appsv1.StatefulSet) {
			wrapper(s)
			c := &s.Spec.Template.Spec.Containers[0]
			c.Command = []string{"/shared/elastic-operator"}
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "shared", MountPath: "/shared"})
		},
		"a wrapper mounted over the entrypoint": func(s *appsv1.StatefulSet) {
			wrapper(s)
			c := &s.Spec.Template.Spec.Containers[0]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "shared", MountPath: "/shared"},
				corev1.VolumeMount{Name: "shared", MountPath: Entrypoint, SubPath: "elastic-operator"})
		},
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := securedOperator()
			change(sts)
			if v := judgeReview(t, sts, cms); v.Secured() {
				t.Errorf("verdict %s; the container does not run ECK's /elastic-operator with these args", v)
			}
		})
	}
}
