// Package captures holds admission requests as a real kube-apiserver sends them to the
// guard, recorded by TestCapture (capture_test.go) from `kubectl apply` of the objects named
// below, and the objects as the API server stored them afterwards (what the guard's cache
// holds). The Go benchmarks of the hot path and the load tool (test/load) replay them.
//
// The StatefulSet with 1,000 env vars is not stored: ManyEnv derives it from the ECK
// StatefulSet's request (its object, its last-applied-configuration annotation and its
// managedFields, as kubectl apply would have sent them).
package captures

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

//go:embed testdata/*.json
var files embed.FS

// Case is one recorded admission request.
type Case struct {
	// Name is the file's name without .json (see Names).
	Name string
	// What says what the request is, for reports.
	What string
	// Body is the AdmissionReview the API server sent, byte for byte.
	Body []byte
}

// The recorded requests, and what the guard is expected to do with them.
const (
	// ECKStatefulSet is kubectl apply (client-side: last-applied-configuration and
	// managedFields) of ECK 3.5.0's operator StatefulSet in an opted-in namespace: mutated.
	ECKStatefulSet = "eck-statefulset"
	// SecuredStatefulSet is the same StatefulSet as the guard stored it, applied into another
	// opted-in namespace: nothing to patch.
	SecuredStatefulSet = "secured-statefulset"
	// ECKConfigMap is the operator's eck.yaml ConfigMap, applied: mutated (its operator is known).
	ECKConfigMap = "eck-configmap"
	// Unrelated is an nginx StatefulSet: a request that reaches the webhook but is not ours.
	Unrelated = "unrelated-statefulset"
	// ManyEnvStatefulSet is ECKStatefulSet with 1,000 env vars on the manager (ManyEnv).
	ManyEnvStatefulSet = "eck-statefulset-env1000"
)

// Names are the cases in the order reports list them.
var Names = []string{ECKStatefulSet, SecuredStatefulSet, ECKConfigMap, ManyEnvStatefulSet, Unrelated}

var whats = map[string]string{
	ECKStatefulSet:     "ECK StatefulSet, kubectl apply, mutated",
	SecuredStatefulSet: "ECK StatefulSet already secured",
	ECKConfigMap:       "eck.yaml ConfigMap, mutated",
	ManyEnvStatefulSet: "ECK StatefulSet with 1,000 env vars, mutated",
	Unrelated:          "unrelated StatefulSet (nginx)",
}

// StateFile holds the stored objects; the other files are requests.
const StateFile = "state"

// Load returns the case of that name.
func Load(name string) (Case, error) {
	if name == ManyEnvStatefulSet {
		base, err := Load(ECKStatefulSet)
		if err != nil {
			return Case{}, err
		}
		body, err := ManyEnv(base.Body, 1000)
		return Case{Name: name, What: whats[name], Body: body}, err
	}
	body, err := files.ReadFile(path.Join("testdata", name+".json"))
	if err != nil {
		return Case{}, fmt.Errorf("no captured request %s: %w", name, err)
	}
	return Case{Name: name, What: whats[name], Body: body}, nil
}

// All returns every case, in the order of Names.
func All() ([]Case, error) {
	var out []Case
	for _, n := range Names {
		c, err := Load(n)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Review decodes a case's body.
func (c Case) Review() (*admissionv1.AdmissionReview, error) {
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(c.Body, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	if r.Request == nil {
		return nil, fmt.Errorf("%s: no request", c.Name)
	}
	return &r, nil
}

// State returns the objects the API server stored after the captured requests: Namespaces,
// ConfigMaps and StatefulSets, typed, with their managed fields (a cache trims them).
func State() ([]client.Object, error) {
	raw, err := files.ReadFile(path.Join("testdata", StateFile+".json"))
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	var out []client.Object
	for _, item := range items {
		var head metav1.TypeMeta
		if err := json.Unmarshal(item, &head); err != nil {
			return nil, err
		}
		var obj client.Object
		switch head.Kind {
		case "Namespace":
			obj = &corev1.Namespace{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "StatefulSet":
			obj = &appsv1.StatefulSet{}
		default:
			return nil, fmt.Errorf("state: unexpected kind %q", head.Kind)
		}
		if err := json.Unmarshal(item, obj); err != nil {
			return nil, err
		}
		out = append(out, obj)
	}
	return out, nil
}

// ManyEnv returns the AdmissionReview body of a StatefulSet request with n more env vars on
// its first container, as kubectl apply would send it: in the object, in the
// last-applied-configuration annotation, and in the managedFields of kubectl's entry.
func ManyEnv(body []byte, n int) ([]byte, error) {
	var review map[string]any
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, err
	}
	req, _ := review["request"].(map[string]any)
	obj, _ := req["object"].(map[string]any)
	if obj == nil {
		return nil, fmt.Errorf("no object in the request")
	}
	env := make([]any, n)
	fields := map[string]any{}
	for i := range n {
		name := fmt.Sprintf("VAR_%04d", i)
		env[i] = map[string]any{"name": name, "value": fmt.Sprintf("value of variable %d", i)}
		fields[`k:{"name":"`+name+`"}`] = map[string]any{".": map[string]any{}, "f:name": map[string]any{}, "f:value": map[string]any{}}
	}
	addEnv := func(o map[string]any) error {
		containers, _, _ := unstructured.NestedSlice(o, "spec", "template", "spec", "containers")
		if len(containers) == 0 {
			return fmt.Errorf("no container")
		}
		c := containers[0].(map[string]any)
		old, _ := c["env"].([]any)
		c["env"] = append(old, env...)
		return unstructured.SetNestedSlice(o, containers, "spec", "template", "spec", "containers")
	}
	if err := addEnv(obj); err != nil {
		return nil, err
	}
	const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"
	if text, ok, _ := unstructured.NestedString(obj, "metadata", "annotations", lastApplied); ok {
		var applied map[string]any
		if err := json.Unmarshal([]byte(text), &applied); err != nil {
			return nil, err
		}
		if err := addEnv(applied); err != nil {
			return nil, err
		}
		b, err := json.Marshal(applied)
		if err != nil {
			return nil, err
		}
		if err := unstructured.SetNestedField(obj, string(b)+"\n", "metadata", "annotations", lastApplied); err != nil {
			return nil, err
		}
	}
	managed, _, _ := unstructured.NestedSlice(obj, "metadata", "managedFields")
	for _, m := range managed {
		entry := m.(map[string]any)
		if !strings.HasPrefix(fmt.Sprint(entry["manager"]), "kubectl") {
			continue
		}
		containers, ok, _ := unstructured.NestedMap(entry, "fieldsV1", "f:spec", "f:template", "f:spec", "f:containers")
		if !ok {
			continue
		}
		for k, v := range containers {
			c := v.(map[string]any)
			envFields, _ := c["f:env"].(map[string]any)
			if envFields == nil {
				envFields = map[string]any{".": map[string]any{}}
			}
			for fk, fv := range fields {
				envFields[fk] = fv
			}
			c["f:env"] = envFields
			containers[k] = c
			break
		}
		if err := unstructured.SetNestedMap(entry, containers, "fieldsV1", "f:spec", "f:template", "f:spec", "f:containers"); err != nil {
			return nil, err
		}
	}
	if managed != nil {
		if err := unstructured.SetNestedSlice(obj, managed, "metadata", "managedFields"); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(review); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
