package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes: inject and diff answer like diff(1): 0 nothing to change, 1 changes,
// 2 trouble, with errors on standard error.
func TestExitCodes(t *testing.T) {
	sample := filepath.Join("..", "..", "..", "config", "samples", "eck-operator.yaml")
	secured := filepath.Join(t.TempDir(), "secured.yaml")
	var out, errOut bytes.Buffer
	if code := Main([]string{"inject", "-f", sample, "--issuer", "ca"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("inject: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "metrics on port 8081") {
		t.Errorf("inject did not say what it did: %q", errOut.String())
	}
	if err := os.WriteFile(secured, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// An operator inject cannot secure (it runs ECK behind a shell): diff must fail a GitOps
	// check with its own code, whether or not anything else changes.
	shell := filepath.Join(t.TempDir(), "shell.yaml")
	raw, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shell, []byte(strings.Replace(string(raw), "      - name: manager\n", "      - name: manager\n        command: [sh, -c, exec /elastic-operator manager]\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "      - name: manager\n") {
		t.Fatal("the sample has no manager container line to edit")
	}
	duplicate := filepath.Join(t.TempDir(), "duplicate.yaml")
	if err := os.WriteFile(duplicate, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  eck.yaml: |\n    metrics-secure: true\n  eck.yaml: |\n    metrics-secure: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := map[string]struct {
		args     []string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		"diff with changes":                    {args: []string{"diff", "-f", sample, "--issuer", "ca"}, wantCode: 1, wantOut: "+    metrics-secure: true"},
		"diff of secured":                      {args: []string{"diff", "-f", secured, "--issuer", "ca"}, wantCode: 0},
		"inject from stdin":                    {args: []string{"inject", "-f", "-"}, stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n", wantCode: 0, wantOut: "kind: Namespace"},
		"unparsable input":                     {args: []string{"inject", "-f", bad}, wantCode: 2, wantErr: "bad.yaml: document 0"},
		"missing file":                         {args: []string{"diff", "-f", filepath.Join(t.TempDir(), "nope.yaml")}, wantCode: 2, wantErr: "failed to read"},
		"no -f":                                {args: []string{"inject"}, wantCode: 2, wantErr: "-f/--filename is required"},
		"invalid flag value":                   {args: []string{"inject", "-f", sample, "--issuer", "ca", "--issuer-kind", "Vault"}, wantCode: 2, wantErr: `--issuer-kind "Vault": must be Issuer or ClusterIssuer`},
		"port flag below 1024":                 {args: []string{"inject", "-f", sample, "--metrics-port", "80"}, wantCode: 2, wantErr: "--metrics-port 80"},
		"version":                              {args: []string{"version"}, wantCode: 0, wantOut: Version},
		"diff of an operator it cannot secure": {args: []string{"diff", "-f", shell, "--issuer", "ca"}, wantCode: 3, wantErr: `not secured: StatefulSet elastic-system/elastic-operator: unknown: the guard cannot tell what ECK reads: the container runs "sh"`},
		"inject of it says so":                 {args: []string{"inject", "-f", shell, "--issuer", "ca"}, wantCode: 0, wantErr: "left unchanged: the guard cannot tell what ECK reads"},
		"a key written twice":                  {args: []string{"inject", "-f", duplicate}, wantCode: 2, wantErr: `duplicate.yaml: document 0 (unparsable): ConfigMap: yaml: unmarshal errors:`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(tc.args, strings.NewReader(tc.stdin), &out, &errOut)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.wantCode, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tc.wantOut, out.String())
			}
			if !strings.Contains(errOut.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.wantErr)
			}
		})
	}
}
