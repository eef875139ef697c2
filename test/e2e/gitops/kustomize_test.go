package gitops

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// overlay writes a kustomization of ECK's rendered install manifest (the base) and an overlay
// that runs the guard as an exec KRM transformer with spec as its MetricsGuard's spec, and
// returns the overlay's directory.
func overlay(t *testing.T, manifest, spec string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(framework.ECKManifest(t, manifest))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"base/operator.yaml":      string(data),
		"base/kustomization.yaml": "resources:\n- operator.yaml\n",
		"overlay/kustomization.yaml": `resources:
- ../base
transformers:
- metrics-guard.yaml
`,
		"overlay/metrics-guard.yaml": `apiVersion: metrics-guard.eck.dev/v1alpha1
kind: MetricsGuard
metadata:
  name: secure-eck-metrics
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ` + guard + `
        args: [krm]
spec:
` + spec,
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "overlay")
}

func kustomizeBuild(t *testing.T, dir string) (string, string, error) {
	t.Helper()
	k, err := framework.Tool("kustomize", "kustomize")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(k, "build", "--enable-alpha-plugins", "--enable-exec", dir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// TestKustomizeKRMFunction: `kustomize build --enable-alpha-plugins --enable-exec` of an
// overlay whose transformer is the guard's KRM function secures ECK's install manifest; the
// output, applied to the API server as it is, stores a secured operator with its companions.
func TestKustomizeKRMFunction(t *testing.T) {
	dir := overlay(t, "operator-"+eckVersion+".yaml", "  issuer: metrics-ca\n  issuerKind: ClusterIssuer\n  serviceMonitor: true\n")
	out, stderr, err := kustomizeBuild(t, dir)
	if err != nil {
		t.Fatalf("kustomize build: %v\n%s", err, stderr)
	}
	for _, want := range []string{"kind: Certificate", "kind: ServiceMonitor", "kind: ClusterRoleBinding\nmetadata:\n  labels:\n    app.kubernetes.io/managed-by: eck-metrics-guard"} {
		if !strings.Contains(out, want) {
			t.Errorf("kustomize build: no %q in the output", want)
		}
	}
	path := filepath.Join(t.TempDir(), "built.yaml")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	// ECK's manifest names its namespace (elastic-system) and cluster-wide objects; this
	// suite's Helm releases use other names.
	env.MustKubectl(t, "apply", "--server-side", "-f", path)
	t.Cleanup(func() { _, _, _ = env.Kubectl(t, "delete", "--wait=false", "-f", path) })
	assertSecured(t, "elastic-system", "")
}

// TestKustomizeKRMFunctionFailsUnsecured: ECK 2.14.0 predates metrics-secure, so the guard
// cannot secure it: the function says so in a result of severity error and exits non-zero,
// and kustomize build fails with that message.
func TestKustomizeKRMFunctionFailsUnsecured(t *testing.T) {
	dir := overlay(t, "operator-2.14.0.yaml", "  tlsSecret: my-tls\n")
	out, stderr, err := kustomizeBuild(t, dir)
	if err == nil {
		t.Fatalf("kustomize build of ECK 2.14.0 succeeded:\n%.2000s", out)
	}
	if !strings.Contains(stderr, "[error] apps/v1/StatefulSet/elastic-system/elastic-operator") {
		t.Fatalf("kustomize build: the error does not name the operator:\n%s", stderr)
	}
	t.Logf("kustomize build fails as it should:\n%s", stderr)
}

// TestKustomizeKRMFunctionConfigErrors: a misspelt option fails the build, naming it.
func TestKustomizeKRMFunctionConfigErrors(t *testing.T) {
	dir := overlay(t, "operator-"+eckVersion+".yaml", "  isuer: metrics-ca\n")
	_, stderr, err := kustomizeBuild(t, dir)
	if err == nil || !strings.Contains(stderr, `unknown option "isuer"`) {
		t.Fatalf("kustomize build with a misspelt option: %v\n%s", err, stderr)
	}
}
