package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// The release the chart is rendered as: with these, the chart's objects have the names and
// namespace of config/default.
const (
	releaseName      = "eck-metrics-guard"
	releaseNamespace = "eck-metrics-guard"
)

// rendered is the output of `helm template` or `kubectl kustomize`.
type rendered struct {
	// YAML is the output as is.
	YAML []byte
	// Objects are its documents, in order, without the empty ones.
	Objects []*unstructured.Unstructured
}

// find returns the object of a kind and name, or nil.
func (r *rendered) find(kind, name string) *unstructured.Unstructured {
	for _, o := range r.Objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// must is find that fails the test when there is no such object.
func (r *rendered) must(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := r.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered; rendered: %v", kind, name, r.keys())
	}
	return o
}

// ofKind returns the objects of a kind.
func (r *rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.Objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// keys are kind/namespace/name of every object, sorted.
func (r *rendered) keys() []string {
	var keys []string
	for _, o := range r.Objects {
		keys = append(keys, objectKey(o))
	}
	sort.Strings(keys)
	return keys
}

func objectKey(o *unstructured.Unstructured) string {
	return o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
}

// into converts o into a typed object.
func into[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var typed T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &typed, true); err != nil {
		t.Fatalf("%s: %v", objectKey(o), err)
	}
	return &typed
}

// parseObjects splits multi-document YAML into objects.
func parseObjects(data []byte) ([]*unstructured.Unstructured, error) {
	var objects []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objects, nil
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%w in:\n%s", err, doc)
		}
		if len(obj) == 0 {
			continue
		}
		objects = append(objects, &unstructured.Unstructured{Object: obj})
	}
}

func newRendered(t *testing.T, data []byte) *rendered {
	t.Helper()
	objects, err := parseObjects(data)
	if err != nil {
		t.Fatal(err)
	}
	return &rendered{YAML: data, Objects: objects}
}

// helmPath is $HELM, else helm in $KUBEBUILDER_ASSETS, else <repo>/bin/helm (`make helm`).
func helmPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HELM"); p != "" {
		return p
	}
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(repo, "bin")
	}
	p := filepath.Join(dir, "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("run `make helm` first: %s not found", p)
	}
	return p
}

func kubectlPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed to render config/ (kubectl kustomize): install it or set KUBECTL")
	}
	return p
}

// runHelm runs helm with its directories in helmHome.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(helmPath(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// kubeVersion is the version of the test control plane, given to `helm template` and
// `helm lint` so that the chart's kubeVersion constraint is checked against it.
func kubeVersion(t *testing.T) string {
	t.Helper()
	v, err := framework.KubernetesVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// helmTemplate renders the chart as release releaseName in releaseNamespace, with the CRDs,
// and with args (--set ..., --set-json ...) added.
func helmTemplate(t *testing.T, args ...string) (*rendered, error) {
	t.Helper()
	all := append([]string{"template", releaseName, chartDir(), "--namespace", releaseNamespace,
		"--include-crds", "--kube-version", kubeVersion(t)}, args...)
	stdout, stderr, err := runHelm(t, all...)
	if err != nil {
		return nil, fmt.Errorf("helm %s: %w\n%s", strings.Join(all, " "), err, stderr)
	}
	return newRendered(t, []byte(stdout)), nil
}

func mustHelmTemplate(t *testing.T, args ...string) *rendered {
	t.Helper()
	r, err := helmTemplate(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// kustomize renders a kustomization directory with kubectl's built-in kustomize.
func kustomize(t *testing.T, dir string) *rendered {
	t.Helper()
	cmd := exec.Command(kubectlPath(t), "kustomize", dir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, errOut.String())
	}
	return newRendered(t, out.Bytes())
}

// kustomizeDefault renders config/default.
func kustomizeDefault(t *testing.T) *rendered {
	t.Helper()
	return kustomize(t, filepath.Join(repo, "config", "default"))
}

// kustomizeAllComponents renders config/default with every optional component of config/
// (prometheus, network-policy) added: testdata/all-components.
func kustomizeAllComponents(t *testing.T) *rendered {
	t.Helper()
	return kustomize(t, filepath.Join("testdata", "all-components"))
}

// kustomizeSelfManaged renders config/default as its comments say to switch to the guard's own
// certificate: the component ../selfmanaged instead of ../certmanager, nothing else changed.
// The kustomization is config/default's, rewritten into a temporary directory.
func kustomizeSelfManaged(t *testing.T) *rendered {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "config", "default", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	switched := 0
	for i, line := range lines {
		switch line {
		case "- ../certmanager":
			lines[i] = "#- ../certmanager"
			switched++
		case "#- ../selfmanaged":
			lines[i] = "- ../selfmanaged"
			switched++
		}
	}
	if switched != 2 {
		t.Fatal("config/default/kustomization.yaml no longer lists `- ../certmanager` and `#- ../selfmanaged`")
	}
	dir := t.TempDir()
	// kustomize takes no absolute paths: config/, relative to dir.
	config, err := filepath.Rel(dir, filepath.Join(repo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	kustomization := strings.ReplaceAll(strings.Join(lines, "\n"), "../", filepath.ToSlash(config)+"/")
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o644); err != nil {
		t.Fatal(err)
	}
	return kustomize(t, dir)
}
