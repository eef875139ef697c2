package eck

// Differential review against the real ECK 3.5.0 binary (bin/eck-operator), without a
// cluster: `manager --log-verbosity=1` logs "Effective configuration" with
// viper.AllSettings() (ECK main.go:453) and then exits, because no operator-namespace is set
// (main.go:511-514), before it needs an API server. That is what viper really reads from
// flags, env and the config file, which the model must match setting by setting.
//
// The kubelet is not in the loop here: env is what the kubelet would hand the process
// (including what it adds by itself, such as service link variables or TMPDIR set by the
// image), and the config file is written where --config points.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// realECK runs ECK's manager with args and env, and returns viper's settings, or the error
// line ECK exits with.
func realECK(t *testing.T, args, env []string) (map[string]any, string) {
	t.Helper()
	bin, err := filepath.Abs("../../bin/eck-operator")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no ECK binary: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// --log-verbosity=1 right after the subcommand, before any "--".
	at := len(args)
	for i, a := range args {
		if a == "manager" {
			at = i + 1
			break
		}
	}
	args = append(append(append([]string{}, args[:at]...), "--log-verbosity=1"), args[at:]...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	out, _ := cmd.CombinedOutput()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	last := ""
	for sc.Scan() {
		line := sc.Text()
		last = line
		if !strings.Contains(line, `"Effective configuration"`) {
			continue
		}
		var entry struct {
			Values map[string]any `json:"values"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("cannot read %q: %v", line, err)
		}
		return entry.Values, ""
	}
	return nil, last
}

type realCase struct {
	// args after the program; {dir} is where the files are: /conf for the model.
	args []string
	// files are eck.yaml and others, a ConfigMap mounted at /conf for the model.
	files map[string]string
	// env is in the container spec (the model sees it); kubeletEnv only in the process (the
	// kubelet or the image add it, the pod template does not show it).
	env, kubeletEnv []corev1.EnvVar
}

// compareWithRealECK runs a case both ways and reports every metrics setting on which the
// model and ECK disagree.
func compareWithRealECK(t *testing.T, tc realCase) {
	t.Helper()
	dir := t.TempDir()
	cm := configMap("cfg")
	for name, text := range tc.files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cm.Data[name] = text
	}
	var realArgs, modelArgs []string
	for _, a := range tc.args {
		realArgs = append(realArgs, strings.ReplaceAll(a, "{dir}", dir))
		modelArgs = append(modelArgs, strings.ReplaceAll(a, "{dir}", "/conf"))
	}
	var env []string
	for _, e := range append(append([]corev1.EnvVar{}, tc.env...), tc.kubeletEnv...) {
		env = append(env, e.Name+"="+e.Value)
	}
	values, exited := realECK(t, realArgs, env)

	sts := statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", modelArgs)
	sts.Spec.Template.Spec.Volumes[0].ConfigMap.Name = "cfg"
	sts.Spec.Template.Spec.Containers[0].Env = tc.env
	e := Resolve(&sts.Spec.Template, 0, func(name string) *corev1.ConfigMap {
		if name == "cfg" {
			return cm
		}
		return nil
	})
	if values == nil {
		if e.CommandLine.Unknown == "" && e.CommandLine.NotManager == "" && (e.File == nil || e.File.Unknown == "") {
			t.Errorf("ECK exits (%s), but the model reads the settings: %s", exited, e.Value(MetricsSecure).Describe())
		}
		return
	}
	for _, s := range MetricsSettings {
		v := e.Value(s)
		if v.Unknown != "" {
			t.Logf("model: %s (ECK reads %v)", v.Describe(), values[s.Name])
			continue
		}
		var model, real string
		switch s.Type {
		case Bool: // viper.GetBool is cast.ToBool
			model, real = castString(v.Bool()), castString(castBool(values[s.Name]))
		case Int: // viper.GetInt is cast.ToInt
			model, real = castString(v.Int()), castString(castInt(values[s.Name]))
		default:
			model, real = v.String(), castString(values[s.Name])
			if s == MetricsCertDir && model == "" {
				model = DefaultMetricsCertDir
			}
		}
		if model != real {
			t.Errorf("%s: the model reads %s (%s), ECK reads %q", s.Name, model, v.Describe(), real)
		}
	}
}

// TestReviewRealECKFindings: shapes where the real binary disproves the model (each fails).
func TestReviewRealECKFindings(t *testing.T) {
	secured := "metrics-port: 8081\nmetrics-secure: true\n"
	tests := map[string]realCase{
		// yaml.v3 applies merge keys; viper sees the merged key (eckconfig indexes "<<" only).
		"a merge key sets metrics-cert-dir": {args: []string{"manager", "--config={dir}/eck.yaml"},
			files: map[string]string{"eck.yaml": secured + "<<: {metrics-cert-dir: /nowhere}\n"}},
		// viper util.go:89-100 insensitiviseMap: the key not in lower case is written last
		// whatever the iteration order, so METRICS-SECURE: false always wins.
		"a merge key with another case overrides metrics-secure": {args: []string{"manager", "--config={dir}/eck.yaml"},
			files: map[string]string{"eck.yaml": secured + "<<: {METRICS-SECURE: false}\n"}},
		// main.go:306-310: the flag default is filepath.Join(os.TempDir(), ...): $TMPDIR.
		"TMPDIR moves the default cert dir": {args: []string{"manager", "--config={dir}/eck.yaml"},
			files: map[string]string{"eck.yaml": secured}, env: []corev1.EnvVar{{Name: "TMPDIR", Value: "/scratch"}}},
		// viper picks the codec by the extension, case-sensitively: ECK exits, the model
		// lower-cases it (effective.go resolveFile) and reads the file (low: nothing is served).
		"an upper-case extension": {args: []string{"manager", "--config={dir}/eck.YAML"},
			files: map[string]string{"eck.YAML": secured}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { compareWithRealECK(t, tc) })
	}
}

// TestReviewRealECKAgrees: corner cases where the real binary confirms the model (regression).
func TestReviewRealECKAgrees(t *testing.T) {
	secured := "metrics-port: 8081\nmetrics-secure: true\n"
	cfg := []string{"manager", "--config={dir}/eck.yaml"}
	with := func(extra ...string) []string { return append(append([]string{}, cfg...), extra...) }
	file := func(text string) map[string]string { return map[string]string{"eck.yaml": text} }
	tests := map[string]realCase{
		"the end state":                    {args: cfg, files: file(secured)},
		"a bare bool before a word":        {args: with("--metrics-secure", "false"), files: file("metrics-port: 8081\n")},
		"a value that looks like a flag":   {args: with("--metrics-host", "--metrics-secure=false"), files: file(secured)},
		"0 is false":                       {args: with("--metrics-secure=0"), files: file(secured)},
		"+8082 is a port":                  {args: with("--metrics-port=+8082"), files: file(secured)},
		"hex port flag":                    {args: with("--metrics-port=0x1F92"), files: file(secured)},
		"after -- nothing is a flag":       {args: with("--", "--metrics-secure=false"), files: file(secured)},
		"--config twice":                   {args: []string{"manager", "--config={dir}/other.yaml", "--config={dir}/eck.yaml"}, files: map[string]string{"eck.yaml": secured, "other.yaml": "metrics-secure: false\n"}},
		"duplicate env, the last wins":     {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "true"}, {Name: "METRICS_SECURE", Value: "false"}}},
		"an empty env is unset":            {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: ""}}},
		"a trailing space is false":        {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "true "}}},
		"a dash in the env name":           {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS-SECURE", Value: "false"}}},
		"env port with a decimal":          {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "8083.9"}}},
		"nested keys are other keys":       {args: cfg, files: file(secured + "metrics: {secure: false}\n")},
		"a quoted trailing space":          {args: cfg, files: file("metrics-port: 8081\nmetrics-secure: \"true \"\n")},
		"!!str true":                       {args: cfg, files: file("metrics-port: 8081\nmetrics-secure: !!str true\n")},
		"yes is a string":                  {args: cfg, files: file("metrics-port: 8081\nmetrics-secure: yes\n")},
		"an alias":                         {args: cfg, files: file("x: &f false\nmetrics-port: 8081\nmetrics-secure: *f\n")},
		"a flow mapping":                   {args: cfg, files: file("{\"metrics-port\": 8081, \"metrics-secure\": true}\n")},
		"a BOM":                            {args: cfg, files: file("\ufeffmetrics-port: 8081\nmetrics-secure: true\n")},
		"mixed case key":                   {args: cfg, files: file("metrics-port: 8081\nMetrics-Secure: false\n")},
		"hex port in the file":             {args: cfg, files: file("metrics-port: 0x1F91\nmetrics-secure: true\n")},
		"a string port with a decimal":     {args: cfg, files: file("metrics-port: \"8081.5\"\nmetrics-secure: true\n")},
		"a float port":                     {args: cfg, files: file("metrics-port: 8081.7\nmetrics-secure: true\n")},
		"null is the default":              {args: cfg, files: file("metrics-port: 8081\nmetrics-secure: ~\n")},
		"an IPv6 host":                     {args: cfg, files: file(secured + "metrics-host: \"::\"\n")},
		"a duplicate key makes ECK exit":   {args: cfg, files: file(secured + "metrics-secure: false\n")},
		"several documents":                {args: cfg, files: file(secured + "---\nmetrics-secure: false\n")},
		"case-folded duplicate top level":  {args: cfg, files: file(secured + "METRICS-SECURE: false\n")},
		"unknown flag exits":               {args: with("--metrics_secure=false"), files: file(secured)},
		"a flag before the subcommand":     {args: []string{"--metrics-secure=false", "manager", "--config={dir}/eck.yaml"}, files: file(secured)},
		"the development flag at the root": {args: []string{"--development", "manager", "--config={dir}/eck.yaml"}, files: file(secured)},
		"env METRICS_PORT=␠8081":           {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: " 8081"}}},
		"env METRICS_PORT=8081␠":           {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "8081 "}}},
		"env METRICS_PORT=0x1F91":          {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "0x1F91"}}},
		"env METRICS_PORT=1e3":             {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "1e3"}}},
		"env METRICS_PORT=08081":           {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "08081"}}},
		"env METRICS_PORT=0b1":             {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "0b1"}}},
		"env METRICS_PORT=8_081":           {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "8_081"}}},
		"env METRICS_PORT=-8081":           {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_PORT", Value: "-8081"}}},
		"env METRICS_SECURE=TRUE":          {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "TRUE"}}},
		"env METRICS_SECURE=t":             {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "t"}}},
		"env METRICS_SECURE=1":             {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "1"}}},
		"env METRICS_SECURE=␠true":         {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: " true"}}},
		"env METRICS_SECURE=True":          {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "True"}}},
		"env METRICS_SECURE=on":            {args: cfg, files: file(secured), env: []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "on"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { compareWithRealECK(t, tc) })
	}
}
