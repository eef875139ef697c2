// Package audit runs `eck-metrics-guard audit` against a real API server with a mix of ECK
// operators, as a platform engineer would before installing the guard: nothing of the guard
// runs, only its policy CRD is installed.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/audit"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var env *framework.Env

func TestMain(m *testing.M) {
	repo, err := framework.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(framework.RunSuite(m, framework.Options{
		CRDDirectoryPaths: []string{filepath.Join(repo, "config", "crd", "bases")},
		Scheme:            scheme,
	}, &env, nil))
}

// run runs the command line in this process and returns its exit code and standard output.
func run(t *testing.T, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := app.Main(args, bytes.NewReader(stdin), &stdout, &stderr)
	return code, stdout.Bytes(), stderr.String()
}

// TestAudit: an operator as Elastic ships it is open, the same one after inject is secured,
// one whose METRICS_SECURE comes from a Secret is unknown (never compliant), and one in an
// opted-in namespace is open today and guarded; exit 3 while any is not secured, 0 for a
// namespace whose operator is.
func TestAudit(t *testing.T) {
	manifest := framework.ECKManifest(t, "operator-3.5.0.yaml")
	open := env.Namespace(t, "audit-open", nil, nil)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, open))

	secured := env.Namespace(t, "audit-secured", nil, nil)
	code, out, stderr := run(t, nil, "inject", "-f", framework.Manifest(t, manifest, secured), "--tls-secret", "metrics-tls")
	if code != 0 {
		t.Fatalf("inject: exit %d: %s", code, stderr)
	}
	injected := filepath.Join(t.TempDir(), "secured.yaml")
	if err := os.WriteFile(injected, out, 0o600); err != nil {
		t.Fatal(err)
	}
	env.MustKubectl(t, "apply", "-f", injected)

	unknown := env.Namespace(t, "audit-unknown", nil, nil)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, unknown, func(doc string) string {
		// METRICS_SECURE from a Secret: the guard may not read Secrets, so it cannot know.
		return strings.Replace(doc, "          env:\n", "          env:\n            - name: METRICS_SECURE\n              valueFrom:\n                secretKeyRef: {name: flags, key: secure}\n", 1)
	}))

	optedIn := env.Namespace(t, "audit-opted-in", map[string]string{"metrics-guard.eck.dev/secure": "true", "metrics-guard.eck.dev/issuer": "ca"}, nil)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, optedIn))

	code, out, stderr = run(t, nil, "audit", "--kubeconfig", env.Kubeconfig, "-o", "json")
	if code != 3 {
		t.Errorf("exit %d with open operators, want 3: %s", code, stderr)
	}
	var report audit.Report
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	if report.GuardInstalled {
		t.Error("the guard is not installed, the report says it is")
	}
	byNamespace := map[string]audit.Finding{}
	for _, f := range report.Operators {
		byNamespace[f.Namespace] = f
	}
	for ns, want := range map[string]eck.Exposure{open: eck.ExposureOpen, secured: eck.ExposureSecured, unknown: eck.ExposureUnknown, optedIn: eck.ExposureOpen} {
		f, ok := byNamespace[ns]
		if !ok {
			t.Errorf("%s: no operator found", ns)
			continue
		}
		if f.Exposure != want || f.Name != "elastic-operator" || f.Kind != "StatefulSet" || f.Version != "3.5.0" {
			t.Errorf("%s: %+v, want exposure %s", ns, f, want)
		}
	}
	if f := byNamespace[open]; f.Guarded || !strings.Contains(f.Action, "to secure it: annotate namespace "+open) {
		t.Errorf("open: %+v", f)
	}
	if f := byNamespace[optedIn]; !f.Guarded || !strings.Contains(f.Action, "the guard secures it") {
		t.Errorf("opted in: %+v", f)
	}
	if f := byNamespace[unknown]; !strings.Contains(strings.Join(f.Reasons, " "), "METRICS_SECURE") {
		t.Errorf("unknown: the reasons do not name the source: %+v", f)
	}

	// The table, for people; one namespace whose operator is secured exits 0.
	code, out, stderr = run(t, nil, "audit", "--kubeconfig", env.Kubeconfig, "-n", secured)
	if code != 0 || !strings.Contains(string(out), "secured") || !strings.Contains(stderr, "the guard is not installed") {
		t.Errorf("audit -n %s: exit %d\n%s%s", secured, code, out, stderr)
	}
	// -o report: the OpenReports Report of each namespace, as the controller keeps them.
	code, out, stderr = run(t, nil, "audit", "--kubeconfig", env.Kubeconfig, "-n", open, "-o", "report")
	var rep orv1alpha1.Report
	if err := yaml.UnmarshalStrict(out, &rep); err != nil || code != 3 {
		t.Fatalf("-o report: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if rep.Kind != "Report" || rep.Namespace != open || rep.Summary.Fail != 1 || len(rep.Results) != 1 || rep.Results[0].Result != "fail" || rep.Results[0].Policy != audit.OptInPolicy {
		t.Errorf("-o report: %+v", rep)
	}
	if code, _, stderr := run(t, nil, "audit", "--kubeconfig", env.Kubeconfig, "-o", "xml"); code != 2 || !strings.Contains(stderr, "must be table, json, yaml or report") {
		t.Errorf("-o xml: exit %d: %s", code, stderr)
	}
}
