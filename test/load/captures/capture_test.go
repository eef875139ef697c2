package captures_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/webhook"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

// Namespaces of the captures: the opted-in ones serve their metrics with a TLS Secret named
// by the namespace's annotation.
const (
	eckNamespace       = "elastic-system"
	securedNamespace   = "eck-secured"
	unrelatedNamespace = "apps"
	tlsSecret          = "eck-metrics-tls"
)

// OptedIn are the annotations of the opted-in namespaces.
var optedIn = map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: tlsSecret}

const nginx = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
  namespace: apps
  labels: {app: web}
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - {name: http, containerPort: 80}
        resources:
          requests: {cpu: 100m, memory: 64Mi}
`

// TestCapture records the admission requests a real kube-apiserver sends for `kubectl apply`
// of the objects of package captures, answered by the guard's own handler (so that the
// objects are stored secured, as in a cluster), and compares them with testdata: the same
// requests, the same objects (but for what the API server makes up: uid, timestamps,
// resourceVersion). UPDATE_CAPTURES=1 rewrites testdata instead.
func TestCapture(t *testing.T) {
	env := framework.Start(t, framework.Options{
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{{
				ObjectMeta: metav1.ObjectMeta{Name: "capture"},
				Webhooks: []admissionregistrationv1.MutatingWebhook{{
					Name: "capture.metrics-guard.eck.dev",
					ClientConfig: admissionregistrationv1.WebhookClientConfig{
						Service: &admissionregistrationv1.ServiceReference{Namespace: "system", Name: "webhook", Path: ptr.To(webhook.Path)},
					},
					Rules: []admissionregistrationv1.RuleWithOperations{{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"", "apps"}, APIVersions: []string{"v1"}, Resources: []string{"configmaps", "statefulsets"}},
					}},
					NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
						Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{eckNamespace, securedNamespace, unrelatedNamespace},
					}}},
					FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
					SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
					AdmissionReviewVersions: []string{"v1"},
					TimeoutSeconds:          ptr.To[int32](10),
				}},
			}},
		},
	})
	ctx := t.Context()
	for _, ns := range []string{eckNamespace, securedNamespace, unrelatedNamespace} {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if ns != unrelatedNamespace {
			n.Annotations = optedIn
		}
		if err := env.Client.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}

	// The guard's handler, reading the cluster directly (no cache: a test), behind a recorder.
	rec := &recorder{bodies: map[string][]byte{}}
	guard := &admission.Webhook{Handler: &webhook.Handler{Lookup: cluster.CachedLookup{Reader: env.Client}}}
	o := env.Environment.WebhookInstallOptions
	server := crwebhook.NewServer(crwebhook.Options{Host: o.LocalServingHost, Port: o.LocalServingPort, CertDir: o.LocalServingCertDir})
	server.Register(webhook.Path, rec.wrap(guard))
	env.Go(server.Start)
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return server.StartedChecker()(&http.Request{}) == nil, nil
	}); err != nil {
		t.Fatalf("webhook server did not start: %v", err)
	}

	// ECK 3.5.0 as released, applied: the ConfigMap first, then the StatefulSet.
	manifest := framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), eckNamespace)
	rec.expect(eckNamespace, "ConfigMap", "elastic-operator", captures.ECKConfigMap)
	rec.expect(eckNamespace, "StatefulSet", "elastic-operator", captures.ECKStatefulSet)
	env.MustKubectl(t, "apply", "-f", manifest)

	// The same objects as the guard stored them, applied into another opted-in namespace.
	var secured []string
	var state []client.Object
	for _, obj := range []client.Object{&corev1.ConfigMap{}, &appsv1.StatefulSet{}} {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: eckNamespace, Name: "elastic-operator"}, obj); err != nil {
			t.Fatal(err)
		}
		secured = append(secured, applicable(t, obj, securedNamespace))
	}
	path := filepath.Join(t.TempDir(), "secured.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(secured, "---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	rec.expect(securedNamespace, "StatefulSet", "elastic-operator", captures.SecuredStatefulSet)
	out, _ := env.MustKubectl(t, "apply", "-f", path)
	t.Logf("secured copy: %s", out)

	path = filepath.Join(t.TempDir(), "nginx.yaml")
	if err := os.WriteFile(path, []byte(nginx), 0o644); err != nil {
		t.Fatal(err)
	}
	rec.expect(unrelatedNamespace, "StatefulSet", "web", captures.Unrelated)
	env.MustKubectl(t, "apply", "-f", path)

	// What the guard's cache would hold afterwards.
	for _, ns := range []string{eckNamespace, securedNamespace, unrelatedNamespace} {
		n := &corev1.Namespace{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, n); err != nil {
			t.Fatal(err)
		}
		n.APIVersion, n.Kind = "v1", "Namespace"
		state = append(state, n)
		var cms corev1.ConfigMapList
		if err := env.Client.List(ctx, &cms, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for i := range cms.Items {
			if cms.Items[i].Name == "kube-root-ca.crt" {
				continue
			}
			cms.Items[i].APIVersion, cms.Items[i].Kind = "v1", "ConfigMap"
			state = append(state, &cms.Items[i])
		}
		var sts appsv1.StatefulSetList
		if err := env.Client.List(ctx, &sts, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for i := range sts.Items {
			sts.Items[i].APIVersion, sts.Items[i].Kind = "apps/v1", "StatefulSet"
			state = append(state, &sts.Items[i])
		}
	}
	for _, obj := range state {
		if _, err := cluster.Transform(obj); err != nil { // as the cache holds it: no managed fields
			t.Fatal(err)
		}
	}
	stateJSON, err := json.MarshalIndent(state, "", " ")
	if err != nil {
		t.Fatal(err)
	}

	got := rec.result(t)
	got[captures.StateFile] = stateJSON
	if os.Getenv("UPDATE_CAPTURES") != "" {
		for name, body := range got {
			if err := os.WriteFile(filepath.Join("testdata", name+".json"), body, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote testdata/%s.json (%d bytes)", name, len(body))
		}
		return
	}
	for name, body := range got {
		want, err := os.ReadFile(filepath.Join("testdata", name+".json"))
		if err != nil {
			t.Fatalf("%v: run UPDATE_CAPTURES=1 go test ./test/load/captures/", err)
		}
		if a, b := normalise(t, want), normalise(t, body); a != b {
			t.Errorf("%s: the API server sends another request than testdata holds (UPDATE_CAPTURES=1 rewrites it)\nwant %s\ngot  %s", name, a, b)
		}
	}
	// Every case loads (ManyEnv too) and decodes.
	all, err := captures.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if _, err := c.Review(); err != nil {
			t.Error(err)
		}
	}
}

// recorder keeps the body of the first request for each expected object.
type recorder struct {
	mu     sync.Mutex
	names  map[string]string // namespace/kind/name -> case
	bodies map[string][]byte
}

func (r *recorder) expect(ns, kind, name, as string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = map[string]string{}
	}
	r.names[ns+"/"+kind+"/"+name] = as
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var head struct {
			Request struct {
				Kind      metav1.GroupVersionKind `json:"kind"`
				Namespace string                  `json:"namespace"`
				Name      string                  `json:"name"`
			} `json:"request"`
		}
		if json.Unmarshal(body, &head) == nil {
			key := head.Request.Namespace + "/" + head.Request.Kind.Kind + "/" + head.Request.Name
			r.mu.Lock()
			if as, ok := r.names[key]; ok {
				if _, seen := r.bodies[as]; !seen {
					r.bodies[as] = body
				}
			}
			r.mu.Unlock()
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) result(t *testing.T) map[string][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]byte{}
	for _, as := range r.names {
		body, ok := r.bodies[as]
		if !ok {
			t.Fatalf("no request captured for %s", as)
		}
		out[as] = body
	}
	return out
}

// applicable is obj as a user would apply it: without what the API server adds, in ns.
func applicable(t *testing.T, obj client.Object, ns string) string {
	t.Helper()
	m, err := toMap(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration")
	u.SetNamespace(ns)
	gvk := map[string][2]string{"*v1.ConfigMap": {"v1", "ConfigMap"}, "*v1.StatefulSet": {"apps/v1", "StatefulSet"}}[typeName(obj)]
	u.SetAPIVersion(gvk[0])
	u.SetKind(gvk[1])
	b, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func typeName(obj any) string {
	switch obj.(type) {
	case *corev1.ConfigMap:
		return "*v1.ConfigMap"
	case *appsv1.StatefulSet:
		return "*v1.StatefulSet"
	}
	return ""
}

func toMap(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// normalise drops what differs between runs of the API server: uids, timestamps,
// resourceVersions, the user's credential; of a request, it keeps the operation and the object.
func normalise(t *testing.T, raw []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				switch k {
				case "uid", "resourceVersion", "creationTimestamp", "time", "generateName":
					delete(x, k)
				default:
					x[k] = walk(e)
				}
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		}
		return v
	}
	v = walk(v)
	if m, ok := v.(map[string]any); ok {
		if req, ok := m["request"].(map[string]any); ok {
			v = []any{req["operation"], req["namespace"], req["kind"], req["object"]} // not userInfo: the certificate differs
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}
