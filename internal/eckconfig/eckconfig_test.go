package eckconfig

import (
	"slices"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	cfg, err := Parse(`# eck.yaml
log-verbosity: 0
metrics-port: "8081"
Metrics-Host: 127.0.0.1
metrics-secure: True
disable-config-watch: "false"
webhook-port: ninety
ubi-only: yes
metrics-cert-dir:
exposed-node-labels: [a, b]
`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"log-verbosity", "metrics-port", "Metrics-Host", "metrics-secure",
		"disable-config-watch", "webhook-port", "ubi-only", "metrics-cert-dir", "exposed-node-labels"}; !slices.Equal(cfg.Keys(), want) {
		t.Errorf("Keys() = %q, want %q", cfg.Keys(), want)
	}

	strs := map[string]struct {
		want string
		ok   bool
	}{
		"metrics-port":        {"8081", true},
		"metrics-host":        {"127.0.0.1", true},
		"metrics-cert-dir":    {"", false},
		"exposed-node-labels": {"", false},
		"absent":              {"", false},
	}
	for key, tt := range strs {
		t.Run("String/"+key, func(t *testing.T) {
			if got, ok := cfg.String(key); got != tt.want || ok != tt.ok {
				t.Errorf("String(%q) = %q, %v; want %q, %v", key, got, ok, tt.want, tt.ok)
			}
		})
	}

	ints := map[string]struct {
		want    int
		ok      bool
		wantErr string
	}{
		"log-verbosity":       {0, true, ""},
		"metrics-port":        {8081, true, ""},
		"webhook-port":        {0, true, `webhook-port: "ninety" is not an integer`},
		"exposed-node-labels": {0, true, "want an integer, got a list"},
		"metrics-cert-dir":    {0, false, ""},
		"absent":              {0, false, ""},
	}
	for key, tt := range ints {
		t.Run("Int/"+key, func(t *testing.T) {
			got, ok, err := cfg.Int(key)
			if got != tt.want || ok != tt.ok || !errMatches(err, tt.wantErr) {
				t.Errorf("Int(%q) = %d, %v, %v; want %d, %v, %q", key, got, ok, err, tt.want, tt.ok, tt.wantErr)
			}
		})
	}

	bools := map[string]struct {
		want    bool
		ok      bool
		wantErr string
	}{
		"metrics-secure":       {true, true, ""},
		"disable-config-watch": {false, true, ""},
		"ubi-only":             {false, true, `ubi-only: "yes" is not a boolean`},
		"absent":               {false, false, ""},
	}
	for key, tt := range bools {
		t.Run("Bool/"+key, func(t *testing.T) {
			got, ok, err := cfg.Bool(key)
			if got != tt.want || ok != tt.ok || !errMatches(err, tt.wantErr) {
				t.Errorf("Bool(%q) = %v, %v, %v; want %v, %v, %q", key, got, ok, err, tt.want, tt.ok, tt.wantErr)
			}
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"blank":         " \n\n",
		"comments only": "# a\n  # b\n",
		"start marker":  "---\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse(in)
			if err != nil || len(cfg.Keys()) != 0 {
				t.Fatalf("Parse(%q) = %v, %v; want no keys", in, cfg, err)
			}
		})
	}
}

// errMatches reports whether err is nil when want is empty, or else mentions want.
func errMatches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}
