package e2e

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
)

// fixtureDir holds the real ECK manifests (../shared/fixtures/eck beside the repository).
func fixtureDir(t *testing.T) string {
	dir := filepath.Join(repo, "..", "shared", "fixtures", "eck")
	if _, err := os.Stat(dir); err != nil {
		// Only a clone without the project's shared/ directory lacks them; CI has them.
		t.Skipf("the ECK fixtures are not in %s", dir)
	}
	return dir
}

// newNamespace creates a namespace with the annotations, deleted when the test ends.
func newNamespace(t *testing.T, prefix string, annotations map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Annotations: annotations}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// manifest rewrites an ECK install manifest for namespace ns and keeps only its namespaced
// objects of built-in kinds: the cluster-scoped ones (RBAC, ECK's own webhook configuration)
// do not matter to the webhook and would collide between tests, and a ServiceMonitor needs
// the Prometheus Operator's CRDs. A field no Kubernetes API knows (custom-install.yaml keeps
// one for the offline renderer) is dropped too: the API server would refuse it.
// It returns the path of the result.
func manifest(t *testing.T, path, ns string, edits ...func(string) string) string {
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

// kubectl runs the real kubectl against the test API server.
func kubectl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(kubectlPath(t), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustKubectl is kubectl that fails the test on error.
func mustKubectl(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := kubectl(t, args...)
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

// operatorIn returns the ECK operator workload of a namespace, with its ConfigMap.
type operatorObjects struct {
	op       *eck.Operator
	template *corev1.PodTemplateSpec
	object   client.Object
	cm       *corev1.ConfigMap
}

func operatorIn(t *testing.T, ns string) operatorObjects {
	t.Helper()
	ctx := context.Background()
	var found []operatorObjects
	var stsList appsv1.StatefulSetList
	if err := env.Client.List(ctx, &stsList, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range stsList.Items {
		if op, ok := eck.FromStatefulSet(&stsList.Items[i]); ok {
			found = append(found, operatorObjects{op: op, template: &stsList.Items[i].Spec.Template, object: &stsList.Items[i]})
		}
	}
	var deployments appsv1.DeploymentList
	if err := env.Client.List(ctx, &deployments, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range deployments.Items {
		if op, ok := eck.FromDeployment(&deployments.Items[i]); ok {
			found = append(found, operatorObjects{op: op, template: &deployments.Items[i].Spec.Template, object: &deployments.Items[i]})
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ECK operators in %s, want 1", len(found), ns)
	}
	o := found[0]
	o.cm = &corev1.ConfigMap{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.op.ConfigMapName}, o.cm); err != nil {
		t.Fatal(err)
	}
	return o
}

// eventually polls cond every 100ms for up to 30s.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
