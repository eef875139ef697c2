package framework

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// ECKManifest is the path of the real ECK install manifest of that name (e.g.
// operator-3.5.0.yaml, helm-3.5.0-default.yaml): Elastic's own Helm chart, from the ECK module
// pinned in test/tools/eckcharts, rendered by `make eck-manifests` (see package eckmanifests).
// The test fails, saying how to render it, if there is none: it never skips.
func ECKManifest(t *testing.T, name string) string {
	t.Helper()
	path, err := eckmanifests.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// ECKManifests is every real ECK install manifest: the rendered ones, then those of
// ../shared/fixtures/eck when that directory exists. The test fails, saying how to render them,
// if none was rendered.
func ECKManifests(t *testing.T) []eckmanifests.Manifest {
	t.Helper()
	all, err := eckmanifests.All()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// Namespace creates a namespace with the annotations and labels, deleted when the test
// ends.
func (e *Env) Namespace(t *testing.T, prefix string, annotations, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Annotations: annotations, Labels: labels}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// Manifest rewrites an ECK install manifest for namespace ns and keeps only its namespaced
// objects of built-in kinds: the cluster-scoped ones (RBAC, ECK's own webhook configuration)
// do not matter to the webhook and would collide between tests, and a ServiceMonitor needs
// the Prometheus Operator's CRDs. A field no Kubernetes API knows (custom-install.yaml keeps
// one for the offline renderer) is dropped too: the API server would refuse it.
// It returns the path of the result.
func Manifest(t *testing.T, path, ns string, edits ...func(string) string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, doc := range strings.Split(string(raw), "\n---") {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if head.Kind == "" || head.Metadata.Namespace == "" || head.Kind == "ServiceMonitor" {
			continue
		}
		doc = strings.ReplaceAll(doc, "      someFutureField: kept\n", "")
		doc = strings.ReplaceAll(doc, head.Metadata.Namespace, ns)
		for _, e := range edits {
			doc = e(doc)
		}
		kept = append(kept, strings.TrimPrefix(doc, "\n"))
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(strings.Join(kept, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// Kubectl runs the real kubectl against the test API server.
func (e *Env) Kubectl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(kubectlPath(t), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// MustKubectl is Kubectl that fails the test on error.
func (e *Env) MustKubectl(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := e.Kubectl(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout, stderr
}

func kubectlPath(t *testing.T) string {
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl is needed to apply manifests as users do: install it or set KUBECTL")
	}
	return p
}

// Operator is an ECK operator workload as stored, with its ConfigMap.
type Operator struct {
	Op        *eck.Operator
	Template  *corev1.PodTemplateSpec
	Object    client.Object
	ConfigMap *corev1.ConfigMap
}

// Operator returns the one ECK operator workload of a namespace.
func (e *Env) Operator(t *testing.T, ns string) Operator {
	t.Helper()
	ctx := context.Background()
	var found []Operator
	var stsList appsv1.StatefulSetList
	if err := e.Client.List(ctx, &stsList, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range stsList.Items {
		if op, ok := eck.FromStatefulSet(&stsList.Items[i]); ok {
			found = append(found, Operator{Op: op, Template: &stsList.Items[i].Spec.Template, Object: &stsList.Items[i]})
		}
	}
	var deployments appsv1.DeploymentList
	if err := e.Client.List(ctx, &deployments, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range deployments.Items {
		if op, ok := eck.FromDeployment(&deployments.Items[i]); ok {
			found = append(found, Operator{Op: op, Template: &deployments.Items[i].Spec.Template, Object: &deployments.Items[i]})
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ECK operators in %s, want 1", len(found), ns)
	}
	o := found[0]
	o.ConfigMap = &corev1.ConfigMap{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Op.ConfigMapName}, o.ConfigMap); err != nil {
		t.Fatal(err)
	}
	return o
}

// Eventually polls cond every 100ms for up to 30s.
func Eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	EventuallyWithin(t, what, 30*time.Second, cond)
}

// EventuallyWithin polls cond every 100ms for up to timeout, and fails the test then.
func EventuallyWithin(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
