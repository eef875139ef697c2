package eckmanifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for name, want := range map[string]string{
		"operator-2.14.0.yaml":                          AllInOne + " 2.14.0",
		"helm-3.5.0-default.yaml":                       HelmChart + " 3.5.0",
		"helm-3.5.0-securemode-tls-servicemonitor.yaml": SecureMode + " 3.5.0",
	} {
		style, v, ok := parseName(name)
		if !ok || style+" "+v.String() != want {
			t.Errorf("%s: %s %v %v, want %s", name, style, v, ok, want)
		}
	}
	for _, name := range []string{"README.md", "operator.yaml", "helm-3.5.0.yaml", "operator-3.5.yaml"} {
		if _, _, ok := parseName(name); ok {
			t.Errorf("%s parsed as an ECK manifest", name)
		}
	}
}

// TestMissingRendersSayHowToMakeThem: without renders every look-up fails, naming the target.
func TestMissingRendersSayHowToMakeThem(t *testing.T) {
	t.Setenv(EnvDir, t.TempDir())
	if _, err := RenderedDir(); err == nil || !strings.Contains(err.Error(), "make eck-manifests") {
		t.Errorf("RenderedDir: %v", err)
	}
	if _, err := Path("operator-3.5.0.yaml"); err == nil || !strings.Contains(err.Error(), "make eck-manifests") {
		t.Errorf("Path: %v", err)
	}
	if _, err := All(); err == nil || !strings.Contains(err.Error(), "make eck-manifests") {
		t.Errorf("All: %v", err)
	}
}

func TestRenderedAndShared(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	for _, name := range []string{"operator-3.5.0.yaml", "helm-2.16.1-default.yaml", "README.md"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range all {
		if m.Source == Rendered {
			got = append(got, m.String()+" "+m.Style+" "+m.Version.String())
		}
	}
	if want := "rendered/helm-2.16.1-default.yaml helm-default 2.16.1,rendered/operator-3.5.0.yaml operator 3.5.0"; strings.Join(got, ",") != want {
		t.Errorf("rendered: %q, want %q", got, want)
	}
	if p, err := Path("helm-3.5.0-default.yaml"); err == nil {
		t.Errorf("Path of a manifest not rendered: %s", p)
	}
	if err := os.WriteFile(filepath.Join(dir, "operator-latest.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := All(); err == nil || !strings.Contains(err.Error(), "operator-latest.yaml") {
		t.Errorf("a file not named like an ECK manifest: %v", err)
	}
}
