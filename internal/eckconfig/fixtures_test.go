package eckconfig

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// TestFixtures secures the eck.yaml of every real ECK manifest (package eckmanifests: ECK's
// own chart rendered from the pinned modules, and ../shared/fixtures/eck when present) and
// checks that a line diff shows only the metrics lines changed or added.
func TestFixtures(t *testing.T) {
	for _, m := range eckmanifests.ForTest(t) {
		file := m.Path
		t.Run(m.String(), func(t *testing.T) {
			in := eckYAML(t, file)
			cfg, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			out, _, err := Apply(in, secureChanges...)
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			checkDiff(t, in, out, expectedLines(cfg))
		})
	}
}

// eckYAML returns data["eck.yaml"] of the manifest's ConfigMap.
func eckYAML(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range documentSeparator.Split(string(raw), -1) {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal([]byte(doc), &cm); err != nil {
			t.Fatalf("failed to decode a document of %s: %v", file, err)
		}
		if text, ok := cm.Data["eck.yaml"]; cm.Kind == "ConfigMap" && ok {
			return text
		}
	}
	t.Fatalf("%s has no ConfigMap with eck.yaml", file)
	return ""
}

// expectedLines returns, per key that secureChanges must touch in cfg, the line it must end up as.
func expectedLines(cfg *Config) map[string]string {
	want := map[string]string{}
	if port, _, _ := cfg.Int(KeyMetricsPort); port != 8081 {
		want[KeyMetricsPort] = "metrics-port: 8081"
	}
	if _, ok := cfg.String(KeyMetricsHost); !ok {
		want[KeyMetricsHost] = "metrics-host: 0.0.0.0"
	}
	if secure, _, _ := cfg.Bool(KeyMetricsSecure); !secure {
		want[KeyMetricsSecure] = "metrics-secure: true"
	}
	return want
}

// checkDiff fails unless out is in with exactly the want lines replaced in place (same key) or,
// for keys in was absent, appended at the end.
func checkDiff(t *testing.T, in, out string, want map[string]string) {
	t.Helper()
	a, b := strings.Split(in, "\n"), strings.Split(out, "\n")
	seen := map[string]bool{}
	for _, op := range difflib.NewMatcher(a, b).GetOpCodes() {
		switch op.Tag {
		case 'e':
			continue
		case 'r':
			if op.I2-op.I1 != op.J2-op.J1 {
				t.Errorf("lines %d-%d rewritten as %q", op.I1+1, op.I2, b[op.J1:op.J2])
				continue
			}
			for i := range op.I2 - op.I1 {
				key := keyOf(a[op.I1+i])
				if keyOf(b[op.J1+i]) != key || want[key] != b[op.J1+i] {
					t.Errorf("line %d %q became %q", op.I1+i+1, a[op.I1+i], b[op.J1+i])
				}
				seen[key] = true
			}
		case 'i':
			if op.I1 != len(a) {
				t.Errorf("%q inserted at line %d, not at the end", b[op.J1:op.J2], op.I1+1)
			}
			for _, line := range b[op.J1:op.J2] {
				if want[keyOf(line)] != line {
					t.Errorf("unexpected line %q added", line)
				}
				seen[keyOf(line)] = true
			}
		default:
			t.Errorf("lines %d-%d (%q) deleted", op.I1+1, op.I2, a[op.I1:op.I2])
		}
	}
	for key, line := range want {
		if !seen[key] {
			t.Errorf("%q neither replaced nor added", line)
		}
	}
}

func keyOf(line string) string {
	key, _, _ := strings.Cut(line, ":")
	return key
}
