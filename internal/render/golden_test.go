package render

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// Set UPDATE_GOLDEN=1 to rewrite the golden files from the current output.
var update = os.Getenv("UPDATE_GOLDEN") != ""

const (
	ownInputs    = "../../test/testdata/inject"
	fixtureDiffs = "../../test/testdata/fixtures"
)

// goldenOptions are the flags of every golden run: a ClusterIssuer, so that the whole end
// state shows, and a ServiceMonitor.
var goldenOptions = Options{Defaults: policy.Defaults{Issuer: "eck-metrics-ca", IssuerKind: "ClusterIssuer", Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}}

// TestGoldenOwnInputs secures every test/testdata/inject/*.yaml and compares the whole
// output with X.yaml.injected.
func TestGoldenOwnInputs(t *testing.T) {
	inputs, _ := filepath.Glob(filepath.Join(ownInputs, "*.yaml"))
	if len(inputs) == 0 {
		t.Fatal("no inputs found in " + ownInputs)
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			input := read(t, in)
			out := inject(t, in, input)
			golden(t, in+".injected", out)
			checkInvariants(t, in, input, out)
		})
	}
}

// TestGoldenFixtures secures every real ECK manifest (package eckmanifests): ECK's own chart
// rendered from the pinned modules (`make eck-manifests`), and the files of
// ../shared/fixtures/eck when that directory exists. Every input keeps the invariants, and
// those the guard secures reach the end state with their companions while every other document
// stays as read (checkSecured). The shared files are also compared with golden files holding
// the unified diff, so that nothing of ECK's is copied into this repository; the renders have
// none (their bytes follow the pinned helm and chart), what they become is asserted instead.
func TestGoldenFixtures(t *testing.T) {
	for _, m := range realManifests(t) {
		t.Run(m.String(), func(t *testing.T) {
			input := read(t, m.Path)
			out := inject(t, m.Path, input)
			if m.Source == eckmanifests.Shared {
				golden(t, filepath.Join(fixtureDiffs, strings.TrimSuffix(m.Name, ".yaml")+".diff"), unifiedDiff(t, input, out))
			}
			checkInvariants(t, m.Path, input, out)
			if !m.Version.LessThan(eck.MinSecureVersion) && m.Style != eckmanifests.SecureMode {
				checkSecured(t, input, out)
			}
		})
	}
}

// TestOldOperatorIsLeftUnchanged: every real manifest of an ECK older than 2.16.0 comes out
// exactly as read, with the reason.
func TestOldOperatorIsLeftUnchanged(t *testing.T) {
	old := 0
	for _, m := range realManifests(t) {
		if !m.Version.LessThan(eck.MinSecureVersion) {
			continue
		}
		old++
		t.Run(m.String(), func(t *testing.T) {
			input := read(t, m.Path)
			res, err := Inject(m.Path, input, goldenOptions)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(res.Output, input) {
				t.Errorf("the %s operator was changed:\n%s", m.Version, unifiedDiff(t, input, res.Output))
			}
			if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], m.Version.String()+" ignores metrics-secure") {
				t.Errorf("notes = %q, want the reason it was left unchanged", res.Notes)
			}
		})
	}
	if old == 0 {
		t.Fatalf("no real ECK manifest older than %s: pin one in test/tools/eckcharts", eck.MinSecureVersion)
	}
}

// TestAlreadySecuredHelmRenderIsRecognised: ECK's chart in its own secure mode (TLS Secret,
// ServiceMonitor) is recognised: its StatefulSet stays as read and nothing is added.
func TestAlreadySecuredHelmRenderIsRecognised(t *testing.T) {
	secured := 0
	for _, m := range realManifests(t) {
		if m.Style != eckmanifests.SecureMode {
			continue
		}
		secured++
		t.Run(m.String(), func(t *testing.T) {
			input := read(t, m.Path)
			res, err := Inject(m.Path, input, Options{Defaults: policy.Defaults{Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}})
			if err != nil {
				t.Fatal(err)
			}
			before, after := parse(t, input), parse(t, res.Output)
			stsBefore := before.find("StatefulSet", "elastic-system", "elastic-operator")
			stsAfter := after.find("StatefulSet", "elastic-system", "elastic-operator")
			if stsBefore == nil || stsAfter == nil {
				t.Fatal("no StatefulSet elastic-system/elastic-operator")
			}
			if !bytes.Equal(stsBefore.raw, stsAfter.raw) {
				t.Errorf("the StatefulSet changed:\n%s", unifiedDiff(t, stsBefore.raw, stsAfter.raw))
			}
			if n := len(after.docs) - len(before.docs); n != 0 {
				t.Errorf("%d objects added; the chart's metrics Service and auth role binding should have been recognised", n)
			}
		})
	}
	if secured == 0 {
		t.Fatal("no real ECK manifest in the chart's secure mode: see test/tools/eckcharts/render.sh")
	}
}

func TestErrorsNameFileDocumentObjectAndField(t *testing.T) {
	input := read(t, filepath.Join(ownInputs, "custom-install.yaml"))
	tests := map[string]struct {
		input []byte
		want  []string
	}{
		"port taken": {
			input: bytes.Replace(input, []byte("metrics-guard.eck.dev/tls-secret: eck-metrics-cert"), []byte(`metrics-guard.eck.dev/metrics-port: "9443"`), 1),
			want:  []string{"in.yaml: document 1 (StatefulSet platform-eck/eck)", "metrics-guard.eck.dev/metrics-port", "port 9443 is already used by"},
		},
		"port not a number": {
			input: bytes.Replace(input, []byte("metrics-guard.eck.dev/tls-secret: eck-metrics-cert"), []byte(`metrics-guard.eck.dev/metrics-port: "metrics"`), 1),
			want:  []string{"document 1 (StatefulSet platform-eck/eck)", "metrics-guard.eck.dev/metrics-port", "from 1024 to 65535"},
		},
		"issuer kind": {
			input: bytes.Replace(input, []byte("metrics-guard.eck.dev/tls-secret: eck-metrics-cert"), []byte("metrics-guard.eck.dev/issuer: ca\n    metrics-guard.eck.dev/issuer-kind: Vault"), 1),
			want:  []string{"metrics-guard.eck.dev/issuer-kind", `"Vault"`, `"Issuer", "ClusterIssuer"`},
		},
		"duplicate eck.yaml key": {
			input: bytes.Replace(input, []byte("    webhook-port: 9443\n"), []byte("    webhook-port: 9443\n    metrics-port: 1\n"), 1),
			// The error is the ConfigMap's: its document is named, not the workload's.
			want: []string{"document 0 (ConfigMap platform-eck/eck-config)", "metrics-port"},
		},
		"eck.yaml not a mapping": {
			input: bytes.Replace(input, []byte("    # Logging\n"), []byte("    - a list\n    # Logging\n"), 1),
			want:  []string{"ConfigMap platform-eck/eck-config", "data[eck.yaml]"},
		},
		"unparsable document": {
			input: append(append([]byte{}, input...), []byte("---\nkind: [\n")...),
			want:  []string{"in.yaml: document 2"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Inject("in.yaml", tc.input, goldenOptions)
			var rerr *Error
			if !errors.As(err, &rerr) {
				t.Fatalf("err = %v, want a *render.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// checkInvariants holds for every input: inject is idempotent, it never drops a
// document, and every secured operator is in the end state.
func checkInvariants(t *testing.T, name string, input, out []byte) {
	t.Helper()
	if again := inject(t, name, out); !bytes.Equal(again, out) {
		t.Errorf("inject is not idempotent:\n%s", unifiedDiff(t, out, again))
	}
	before, after := parse(t, input), parse(t, out)
	for i, d := range before.docs {
		a := after.docs[i]
		if a.typeMeta != d.typeMeta || a.meta.Name != d.meta.Name {
			t.Errorf("document %d was %s, is %s", i, d.describe(), a.describe())
		}
	}
	for _, w := range after.workloads() {
		op, ok := w.operator()
		if !ok || w.template().Annotations[keys.AnnotationMetricsHash] == "" && !bytes.Contains(w.raw, []byte("name: tls-certificate")) {
			continue // not secured: nothing to check
		}
		checkEndState(t, after, w, op)
	}
}

func checkEndState(t *testing.T, s *stream, w *document, op *eck.Operator) {
	t.Helper()
	cm := s.find("ConfigMap", op.Namespace, op.ConfigMapName).obj.(*corev1.ConfigMap)
	port, findings := compliance.Operator(op, w.template(), cm)
	var services []corev1.Service
	for _, d := range s.docs {
		if svc, ok := d.obj.(*corev1.Service); ok {
			services = append(services, *svc)
		}
	}
	findings = append(findings, compliance.Service(op, port, services)...)
	if !s.existing(op.Namespace).DelegatesAuth(op) && !hasAuthDelegatorBinding(s, op) {
		findings = append(findings, "no binding to system:auth-delegator")
	}
	for _, f := range findings {
		t.Errorf("%s: %s", w.describe(), f)
	}
}

func hasAuthDelegatorBinding(s *stream, op *eck.Operator) bool {
	return s.find("ClusterRoleBinding", "", "eck-metrics-guard:"+op.Namespace+":"+op.Name) != nil
}

func inject(t *testing.T, name string, input []byte) []byte {
	t.Helper()
	res, err := Inject(name, input, goldenOptions)
	if err != nil {
		t.Fatal(err)
	}
	return res.Output
}

func parse(t *testing.T, b []byte) *stream {
	t.Helper()
	s, err := parseStream("test", b, "default")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// realManifests are the real ECK manifests, the rendered ones then those of ../shared/fixtures/eck
// (eckmanifests.ForTest: without renders the test fails under make, skips under a bare go test).
func realManifests(t *testing.T) []eckmanifests.Manifest {
	t.Helper()
	return eckmanifests.ForTest(t)
}

// checkSecured holds for a real install of an ECK the guard secures, injected with
// goldenOptions: exactly one operator is secured, with its Certificate and ServiceMonitor added
// (checkInvariants checks its end state), and every document but its ConfigMap, workload and
// metrics Service comes out exactly as read.
func checkSecured(t *testing.T, input, out []byte) {
	t.Helper()
	before, after := parse(t, input), parse(t, out)
	var secured []*eck.Operator
	for _, w := range after.workloads() {
		if op, ok := w.operator(); ok && w.template().Annotations[keys.AnnotationMetricsHash] != "" {
			secured = append(secured, op)
		}
	}
	if len(secured) != 1 {
		t.Fatalf("%d operators secured, want 1", len(secured))
	}
	op := secured[0]
	name := op.Name + "-metrics-guard"
	for _, kind := range []string{"Certificate", "ServiceMonitor"} {
		if after.find(kind, op.Namespace, name) == nil {
			t.Errorf("no %s %s/%s added", kind, op.Namespace, name)
		}
	}
	for i, d := range before.docs {
		switch {
		case d.typeMeta.Kind == "ConfigMap" && d.meta.Name == op.ConfigMapName,
			d.typeMeta.Kind == op.Kind && d.meta.Name == op.Name,
			d.typeMeta.Kind == "Service" && after.docs[i].obj.(metav1.Object).GetLabels()[keys.LabelMetricsService] == "true":
			continue
		}
		if !bytes.Equal(d.raw, after.docs[i].raw) {
			t.Errorf("%s changed:\n%s", d.describe(), unifiedDiff(t, d.raw, after.docs[i].raw))
		}
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (UPDATE_GOLDEN=1 rewrites it):\n%s", path, unifiedDiff(t, want, got))
	}
}

func unifiedDiff(t *testing.T, a, b []byte) []byte {
	t.Helper()
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)), FromFile: "input", ToFile: "secured", Context: 3})
	if err != nil {
		t.Fatal(err)
	}
	return []byte(d)
}

// BenchmarkInject secures a whole Elastic operator.yaml (the CLI's unit of work).
func BenchmarkInject(b *testing.B) {
	input, err := os.ReadFile(filepath.Join(ownInputs, "custom-install.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Inject("in.yaml", input, goldenOptions); err != nil {
			b.Fatal(err)
		}
	}
}
