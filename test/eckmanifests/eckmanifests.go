// Package eckmanifests finds the real ECK install manifests that the tests take as input:
//
//   - rendered: Elastic's own Helm chart, from the ECK Go modules pinned in
//     test/tools/eckcharts/<version>, rendered by `make eck-manifests` into ./bin/eck-manifests
//     (or $ECK_MANIFESTS). Every clone can make them; nothing of ECK's is committed.
//   - shared: the files of ../shared/fixtures/eck beside the repository (Elastic's released
//     operator.yaml files among them), run as additional inputs when that directory exists.
//
// Both use the same file names: operator-<version>.yaml (the all-in-one install),
// helm-<version>-default.yaml (the chart's default install) and
// helm-<version>-securemode-tls-servicemonitor.yaml (the chart's own secure mode).
package eckmanifests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/version"
)

// EnvDir names the environment variable that overrides where the rendered manifests are
// (the Makefile exports it).
const EnvDir = "ECK_MANIFESTS"

// HowTo says how to get the rendered manifests.
const HowTo = "run `make eck-manifests` (it renders ECK's own Helm chart, from the ECK modules pinned in test/tools/eckcharts, with the pinned helm)"

// The sources of a Manifest.
const (
	Rendered = "rendered"
	Shared   = "shared"
)

// The styles of install a Manifest is.
const (
	AllInOne   = "operator"        // Elastic's all-in-one operator.yaml
	HelmChart  = "helm-default"    // the chart's default install
	SecureMode = "helm-securemode" // the chart's own secure mode: already secured
)

// Manifest is one real ECK install manifest.
type Manifest struct {
	Name    string // file name, e.g. operator-3.5.0.yaml
	Path    string
	Source  string // Rendered or Shared
	Style   string // AllInOne, HelmChart or SecureMode
	Version *version.Version
}

// String is the source and name, e.g. rendered/operator-3.5.0.yaml: a subtest's name.
func (m Manifest) String() string { return m.Source + "/" + m.Name }

var names = regexp.MustCompile(`^(?:operator-(\d+\.\d+\.\d+)\.yaml|helm-(\d+\.\d+\.\d+)-(default|securemode)[a-z-]*\.yaml)$`)

func parseName(name string) (style string, v *version.Version, ok bool) {
	m := names.FindStringSubmatch(name)
	if m == nil {
		return "", nil, false
	}
	switch {
	case m[1] != "":
		return AllInOne, version.MustParseGeneric(m[1]), true
	case m[3] == "default":
		return HelmChart, version.MustParseGeneric(m[2]), true
	default:
		return SecureMode, version.MustParseGeneric(m[2]), true
	}
}

// RenderedDir is the directory of the rendered manifests: $ECK_MANIFESTS, or bin/eck-manifests
// of the repository. It is an error, saying how to make them, if it holds none.
func RenderedDir() (string, error) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin", "eck-manifests")
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "operator-*.yaml")); len(files) == 0 {
		return "", fmt.Errorf("no rendered ECK manifests in %s: %s", dir, HowTo)
	}
	return dir, nil
}

// SharedDir is ../shared/fixtures/eck beside the repository, and whether it exists.
func SharedDir() (string, bool) {
	root, err := RepoRoot()
	if err != nil {
		return "", false
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "fixtures", "eck")
	info, err := os.Stat(dir)
	return dir, err == nil && info.IsDir()
}

// Path is the rendered manifest of that name, e.g. operator-3.5.0.yaml. It is an error if
// there is none (the version is not pinned in test/tools/eckcharts, or nothing was rendered).
func Path(name string) (string, error) {
	dir, err := RenderedDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("no rendered ECK manifest %s in %s: pin its version in test/tools/eckcharts and %s", name, dir, HowTo)
	}
	return path, nil
}

// All is every rendered manifest, then every shared one (when ../shared/fixtures/eck exists).
// It is an error if none was rendered.
func All() ([]Manifest, error) {
	dir, err := RenderedDir()
	if err != nil {
		return nil, err
	}
	all, err := list(dir, Rendered)
	if err != nil {
		return nil, err
	}
	if shared, ok := SharedDir(); ok {
		more, err := list(shared, Shared)
		if err != nil {
			return nil, err
		}
		all = append(all, more...)
	}
	return all, nil
}

func list(dir, source string) ([]Manifest, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		style, v, ok := parseName(e.Name())
		if !ok {
			return nil, fmt.Errorf("%s: not a name of an ECK manifest (operator-<version>.yaml, helm-<version>-default.yaml, helm-<version>-securemode-*.yaml)", filepath.Join(dir, e.Name()))
		}
		out = append(out, Manifest{Name: e.Name(), Path: filepath.Join(dir, e.Name()), Source: source, Style: style, Version: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RepoRoot is the directory of the first go.mod above the working directory (go test runs
// tests in their package directory, so this is the repository root).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory")
		}
		dir = parent
	}
}

// ForTest is All for a test that needs the real manifests. Without rendered ones the test
// fails, saying how to make them, when $ECK_MANIFESTS is set (make exports it, so `make test`
// and `make test-unit` never skip); under a bare `go test` it is skipped, saying why and how to
// run it.
func ForTest(t testing.TB) []Manifest {
	t.Helper()
	all, err := All()
	switch {
	case err == nil:
		return all
	case os.Getenv(EnvDir) != "":
		t.Fatal(err)
	default:
		t.Skipf("%v (`make test` and `make test-unit` render them first)", err)
	}
	return nil
}
