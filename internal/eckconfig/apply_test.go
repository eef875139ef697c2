package eckconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestApply(t *testing.T) {
	port := Change{Key: "metrics-port", Value: "8081"}
	host := Change{Key: "metrics-host", Value: "0.0.0.0", IfAbsent: true}
	secure := Change{Key: "metrics-secure", Value: "true"}
	tests := map[string]struct {
		in      string
		changes []Change
		want    string // "" means unchanged
	}{
		"comments above and inline survive": {
			in:      "# operator settings\nlog-verbosity: 0 # quiet\n# metrics\nmetrics-port: 0 # off\n",
			changes: []Change{port},
			want:    "# operator settings\nlog-verbosity: 0 # quiet\n# metrics\nmetrics-port: 8081 # off\n",
		},
		"key order kept, missing keys appended in order": {
			in:      "metrics-secure: false\nlog-verbosity: 0\nmetrics-port: 0\n",
			changes: []Change{port, host, secure},
			want:    "metrics-secure: true\nlog-verbosity: 0\nmetrics-port: 8081\nmetrics-host: 0.0.0.0\n",
		},
		"flow-style list untouched": {
			in:      "exposed-node-labels: [topology.kubernetes.io/.*,failure-domain.beta.kubernetes.io/.*]\nmetrics-port: 0\n",
			changes: []Change{port},
			want:    "exposed-node-labels: [topology.kubernetes.io/.*,failure-domain.beta.kubernetes.io/.*]\nmetrics-port: 8081\n",
		},
		"quoted port that means 8081 is kept": {
			in:      "metrics-port: \"8081\"\n",
			changes: []Change{port},
		},
		"hexadecimal port that means 8081 is kept": {
			in:      "metrics-port: 0x1F91\n",
			changes: []Change{port},
		},
		"quoted port replaced inside its quotes": {
			in:      "metrics-port: \"0\"\nmetrics-host: '127.0.0.1'\n",
			changes: []Change{port, {Key: "metrics-host", Value: "0.0.0.0"}},
			want:    "metrics-port: \"8081\"\nmetrics-host: '0.0.0.0'\n",
		},
		"bool replaced before its comment": {
			in:      "metrics-secure: false # off\n",
			changes: []Change{secure},
			want:    "metrics-secure: true # off\n",
		},
		"True already means true": {
			in:      "metrics-secure: True\n",
			changes: []Change{secure},
		},
		"yes is not true to viper": {
			in:      "metrics-secure: yes\n",
			changes: []Change{secure},
			want:    "metrics-secure: true\n",
		},
		"IfAbsent keeps the user's host": {
			in:      "metrics-host: 127.0.0.1\n",
			changes: []Change{host},
		},
		"IfAbsent fills a null host": {
			in:      "metrics-host:\nmetrics-port: ~\n",
			changes: []Change{host, port},
			want:    "metrics-host: 0.0.0.0\nmetrics-port: 8081\n",
		},
		"empty document": {
			in:      "",
			changes: []Change{port, secure},
			want:    "metrics-port: 8081\nmetrics-secure: true\n",
		},
		"comments-only document": {
			in:      "# nothing yet\n",
			changes: []Change{port},
			want:    "# nothing yet\nmetrics-port: 8081\n",
		},
		"no trailing newline preserved": {
			in:      "log-verbosity: 0\nmetrics-port: 0",
			changes: []Change{port, host},
			want:    "log-verbosity: 0\nmetrics-port: 8081\nmetrics-host: 0.0.0.0",
		},
		"CRLF line endings": {
			in:      "log-verbosity: 0\r\nmetrics-port: 0\r\n",
			changes: []Change{port, host},
			want:    "log-verbosity: 0\r\nmetrics-port: 8081\r\nmetrics-host: 0.0.0.0\r\n",
		},
		"flow mapping document": {
			in:      "{log-verbosity: 0, metrics-port: 0}\n",
			changes: []Change{port, secure},
			want:    "{log-verbosity: 0, metrics-port: 8081, metrics-secure: true}\n",
		},
		"empty flow mapping": {
			in:      "{}",
			changes: []Change{port, host},
			want:    "{metrics-port: 8081, metrics-host: 0.0.0.0}",
		},
		"flow mapping key without a value": {
			in:      "{metrics-port, log-verbosity: 0}",
			changes: []Change{port},
			want:    "{metrics-port: 8081, log-verbosity: 0}",
		},
		"only top-level keys count": {
			in:      "tracing:\n  metrics-port: 0\n  metrics-secure: false\nlog-verbosity: 0\n",
			changes: []Change{port},
			want:    "tracing:\n  metrics-port: 0\n  metrics-secure: false\nlog-verbosity: 0\nmetrics-port: 8081\n",
		},
		"added after the nested block of the last key": {
			in:      "log-verbosity: 0\nnamespaces:\n  - a\n  - b\n",
			changes: []Change{port},
			want:    "log-verbosity: 0\nnamespaces:\n  - a\n  - b\nmetrics-port: 8081\n",
		},
		"indented document keeps its indentation": {
			in:      "  log-verbosity: 0\n  metrics-port: 0\n",
			changes: []Change{port, host},
			want:    "  log-verbosity: 0\n  metrics-port: 8081\n  metrics-host: 0.0.0.0\n",
		},
		"keys match case-insensitively, as in viper": {
			in:      "Metrics-Port: 0\n",
			changes: []Change{port},
			want:    "Metrics-Port: 8081\n",
		},
		"trailing blank lines stay after added keys": {
			in:      "log-verbosity: 0\n\n\n",
			changes: []Change{port},
			want:    "log-verbosity: 0\nmetrics-port: 8081\n\n\n",
		},
		"added before a document end marker": {
			in:      "---\nlog-verbosity: 0\n...\n",
			changes: []Change{port},
			want:    "---\nlog-verbosity: 0\nmetrics-port: 8081\n...\n",
		},
		"value on the next line": {
			in:      "metrics-port:\n  0\nlog-verbosity: 0\n",
			changes: []Change{port},
			want:    "metrics-port: 8081\nlog-verbosity: 0\n",
		},
		"block scalar replaced whole": {
			in:      "metrics-cert-dir: |\n  /tmp/a\n  /tmp/b\nlog-verbosity: 0\n",
			changes: []Change{{Key: "metrics-cert-dir", Value: "/tmp/certs"}},
			want:    "metrics-cert-dir: /tmp/certs\nlog-verbosity: 0\n",
		},
		"list value replaced whole": {
			in:      "metrics-port:\n- 1\n- 2\nlog-verbosity: 0\n",
			changes: []Change{port},
			want:    "metrics-port: 8081\nlog-verbosity: 0\n",
		},
		"unused anchor and tag dropped with the value": {
			in:      "metrics-port: &p !!str 0\n",
			changes: []Change{port},
			want:    "metrics-port: 8081\n",
		},
		"added before a last block scalar that has no final newline": {
			in:      "log-verbosity: 0\nbanner: |\n  hi",
			changes: []Change{port},
			want:    "log-verbosity: 0\nmetrics-port: 8081\nbanner: |\n  hi",
		},
		"later change to the same key wins": {
			in:      "metrics-port: 0\n",
			changes: []Change{port, {Key: "metrics-port", Value: "9090"}},
			want:    "metrics-port: 9090\n",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got, changed, err := Apply(tt.in, tt.changes...)
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			if got != want || changed != (want != tt.in) {
				t.Fatalf("Apply() = %q, %v\nwant      %q, %v", got, changed, want, want != tt.in)
			}
			again, changed, err := Apply(got, tt.changes...)
			if err != nil || changed || again != got {
				t.Fatalf("second Apply() = %q, %v, %v; want it unchanged", again, changed, err)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	port := Change{Key: "metrics-port", Value: "8081"}
	tests := map[string]struct {
		in      string
		changes []Change
		is      error
		mention []string
	}{
		"duplicate key": {
			in:      "metrics-port: 0\nlog-verbosity: 0\nmetrics-port: 9090\n",
			is:      &DuplicateKeyError{},
			mention: []string{`"metrics-port"`, "lines 1 and 3"},
		},
		"duplicate key differing in case": {
			in:      "metrics-port: 0\nMetrics-Port: 9090\n",
			is:      &DuplicateKeyError{},
			mention: []string{`"Metrics-Port"`, "lines 1 and 2"},
		},
		"duplicate nested key, which ECK refuses too": {
			in:      "tracing:\n  a: 1\n  a: 2\n",
			is:      ErrInvalidYAML,
			mention: []string{`"a" already defined`},
		},
		"list document":      {in: "- metrics-port: 0\n", is: ErrNotMapping, mention: []string{"list"}},
		"scalar document":    {in: "metrics-port\n", is: ErrNotMapping, mention: []string{"scalar"}},
		"several documents":  {in: "a: 1\n---\nb: 2\n", is: ErrNotMapping, mention: []string{"several documents"}},
		"invalid yaml":       {in: "metrics-port: [0\n", is: ErrInvalidYAML},
		"tab indentation":    {in: "a:\n\tb: 1\n", is: ErrInvalidYAML},
		"not UTF-8":          {in: "a: \xff\n", is: ErrInvalidYAML, mention: []string{"UTF-8"}},
		"value is not plain": {changes: []Change{{Key: "metrics-host", Value: "a # b"}}, is: ErrInvalidChange},
		"value is null":      {changes: []Change{{Key: "metrics-host", Value: "~"}}, is: ErrInvalidChange},
		"key needs quoting":  {changes: []Change{{Key: "a: b", Value: "1"}}, is: ErrInvalidChange},
		"value shared through an alias": {
			in:      "metrics-port: &p 0\nwebhook-port: *p\n",
			is:      ErrUnsupported,
			mention: []string{"metrics-port", "alias"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			changes := tt.changes
			if changes == nil {
				changes = []Change{port}
			}
			got, changed, err := Apply(tt.in, changes...)
			if err == nil {
				t.Fatalf("Apply() = %q, want an error", got)
			}
			if got != tt.in || changed {
				t.Errorf("Apply() = %q, %v; want the input back, false", got, changed)
			}
			if dup := new(*DuplicateKeyError); errors.As(tt.is, dup) {
				if !errors.As(err, dup) {
					t.Errorf("error %v is not a *DuplicateKeyError", err)
				}
			} else if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			for _, s := range tt.mention {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestReencode covers the fallback for flow mappings that cannot be edited in place.
func TestReencode(t *testing.T) {
	in := "{log-verbosity: 0, metrics-port: 0, banner: }\n"
	d, err := parse(in)
	if err != nil {
		t.Fatal(err)
	}
	c := Change{Key: "metrics-port", Value: "8081"}
	out, err := d.reencode(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{log-verbosity: 0, metrics-port: 8081, banner: null}\n"; out != want {
		t.Fatalf("reencode() = %q, want %q", out, want)
	}
	before, _ := parse(in)
	if _, err := before.verify(out, c); err != nil {
		t.Fatalf("verify() error = %v", err)
	}
}
