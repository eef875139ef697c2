package patch

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

func TestDiffRefusesRemovals(t *testing.T) {
	before := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "1", "b": "2"}}}
	after := before.DeepCopy()
	delete(after.Labels, "b")
	after.Data = map[string]string{"eck.yaml": "metrics-port: 8081\n"} // an addition does not excuse the removal
	ops, err := Diff(before, after)
	if err == nil || !strings.Contains(err.Error(), "refusing a patch that removes /metadata/labels/b") {
		t.Fatalf("Diff = %v, %v; want it to refuse removing /metadata/labels/b", ops, err)
	}
	if ops != nil {
		t.Errorf("operations returned with the error: %v", ops)
	}

	// A list that shrinks is a removal too.
	c := &corev1.Container{Name: "manager", Args: []string{"manager", "--config=/conf/eck.yaml"}}
	shorter := c.DeepCopy()
	shorter.Args = shorter.Args[:1]
	if _, err := Diff(c, shorter); err == nil {
		t.Error("a shorter list was not refused")
	}
}

func TestDiffNoChange(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "eck", Annotations: map[string]string{"a": "b"}}}
	ops, err := Diff(sts, sts.DeepCopy())
	if err != nil || len(ops) != 0 {
		t.Errorf("Diff of equal objects = %v, %v; want no operations", ops, err)
	}
}

// TestDiffSortsOperations: operations come ordered by path, token by token, with list
// indexes compared as numbers (10 after 9), and a parent before its children; only add and
// replace.
func TestDiffSortsOperations(t *testing.T) {
	before := &corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "eck-operator:3.4.0"}}}
	after := before.DeepCopy()
	after.Containers[0].Image = "eck-operator:3.5.0"
	for i := 0; i < 11; i++ {
		after.Containers[0].Args = append(after.Containers[0].Args, "--flag")
		after.Volumes = append(after.Volumes, corev1.Volume{Name: "v"})
	}
	before.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "1"}}
	after.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "2"}}
	after.NodeSelector = map[string]string{"zone": "a"}
	after.Containers[0].Env[0].ValueFrom = nil

	ops, err := Diff(before, after)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, op := range ops {
		if op.Operation != "add" && op.Operation != "replace" {
			t.Errorf("%s %s", op.Operation, op.Path)
		}
		paths = append(paths, op.Path)
	}
	// By path, token by token (containers before nodeSelector before volumes; within the
	// container, args < env < image); lists grown from nothing are added whole. The patch is
	// the same on every run.
	want := []string{
		"/containers/0/args",
		"/containers/0/env/0/value",
		"/containers/0/image",
		"/nodeSelector",
		"/volumes",
	}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Errorf("paths = %v, want %v", paths, want)
	}
	for i := 0; i < 20; i++ {
		again, _ := Diff(before, after)
		if b1, b2 := mustMarshal(t, ops), mustMarshal(t, again); !bytes.Equal(b1, b2) {
			t.Fatalf("Diff is not deterministic:\n%s\n%s", b1, b2)
		}
	}
}

// TestSortOperationsNumericAndParentFirst pins the order itself on operations in no order.
func TestSortOperationsNumericAndParentFirst(t *testing.T) {
	ops := []jsonpatch.Operation{
		jsonpatch.NewOperation("add", "/spec/containers/10/ports/0", 1),
		jsonpatch.NewOperation("add", "/spec/containers/9", 1),
		jsonpatch.NewOperation("add", "/spec/containers/2/ports", 1),
		jsonpatch.NewOperation("replace", "/metadata/labels/b", 1),
		jsonpatch.NewOperation("add", "/spec/containers/2/ports/1", 1),
		jsonpatch.NewOperation("add", "/metadata/labels", 1),
		jsonpatch.NewOperation("add", "/metadata/annotations/a~1b", 1),
	}
	sortOperations(ops)
	var got []string
	for _, op := range ops {
		got = append(got, op.Path)
	}
	want := []string{
		"/metadata/annotations/a~1b",
		"/metadata/labels",
		"/metadata/labels/b",
		"/spec/containers/2/ports",
		"/spec/containers/2/ports/1",
		"/spec/containers/9",
		"/spec/containers/10/ports/0",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("order\n %v\nwant\n %v", got, want)
	}
}

// TestDiffKeepsFieldsTheTypesDoNotKnow: Diff compares typed objects, so a field of the input
// its types do not know is on neither side: no operation removes it.
func TestDiffKeepsFieldsTheTypesDoNotKnow(t *testing.T) {
	raw := []byte(`{"metadata":{"name":"eck"},"spec":{"futureField":{"kept":true},"serviceName":"eck"}}`)
	var sts appsv1.StatefulSet
	if err := json.Unmarshal(raw, &sts); err != nil {
		t.Fatal(err)
	}
	after := sts.DeepCopy()
	after.Spec.ServiceName = "eck-2"
	ops, err := Diff(&sts, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Operation != "replace" || ops[0].Path != "/spec/serviceName" || ops[0].Value != "eck-2" {
		t.Errorf("ops = %v", ops)
	}
}

func TestMarshal(t *testing.T) {
	b, err := Marshal([]jsonpatch.Operation{jsonpatch.NewOperation("add", "/a", map[string]any{"b": 1})})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `[{"op":"add","path":"/a","value":{"b":1}}]` {
		t.Errorf("Marshal = %s", b)
	}
}

const deploymentYAML = `# An operator; the comments must stay.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: eck   # the name
  labels: {app: eck}
spec:
  selector:
    matchLabels:
      app: eck
  template:
    metadata:
      labels:
        app: eck
    spec:
      someFutureField: kept
      containers:
      - name: manager
        image: "docker.elastic.co/eck/eck-operator:3.5.0"
        args: [manager, --config=/conf/eck.yaml]
        ports:
        - containerPort: 9443
          name: https-webhook
        env:
        - name: METRICS_SECURE
          value: 'false' # was off
`

// TestApplyYAMLRoundTrip: the operations Diff makes for a typed change, applied to the YAML
// the object was read from, give a document that decodes to the changed object, keeps its
// comments, its key order, the quoting of the scalars it replaces and fields the types do
// not know.
func TestApplyYAMLRoundTrip(t *testing.T) {
	var before appsv1.Deployment
	if err := sigsyaml.Unmarshal([]byte(deploymentYAML), &before); err != nil {
		t.Fatal(err)
	}
	after := before.DeepCopy()
	c := &after.Spec.Template.Spec.Containers[0]
	c.Env[0].Value = "true"
	c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: 8081, Name: "metrics", Protocol: corev1.ProtocolTCP})
	c.Args = append(c.Args, "--metrics-port=8081")
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tls-certificate", MountPath: "/tmp/certs", ReadOnly: true})
	after.Spec.Template.Annotations = map[string]string{"metrics-guard.eck.dev/metrics-hash": "0123"}
	after.Labels["metrics-guard.eck.dev/operator"] = "eck"
	after.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "tls-certificate", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "metrics-tls"}}}}

	ops, err := Diff(&before, after)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(deploymentYAML), &doc); err != nil {
		t.Fatal(err)
	}
	if err := ApplyYAML(&doc, ops); err != nil {
		t.Fatal(err)
	}
	out := encode(t, &doc)

	var got appsv1.Deployment
	if err := sigsyaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !apiequality.Semantic.DeepEqual(&got, after) {
		t.Errorf("the patched YAML does not decode to the changed object:\n%s", out)
	}
	for _, keep := range []string{
		"# An operator; the comments must stay.",
		"name: eck # the name",
		`image: "docker.elastic.co/eck/eck-operator:3.5.0"`, // untouched: as written
		`value: 'true' # was off`,                           // replaced: quoting and comment kept
		"someFutureField: kept",
		"containerPort: 8081\n",                        // a number stays a number
		"metrics-guard.eck.dev/metrics-hash: \"0123\"", // a string that reads as a number is quoted
	} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("output lacks %q:\n%s", keep, out)
		}
	}
	if i, j := strings.Index(string(out), "apiVersion"), strings.Index(string(out), "spec:"); i < 0 || j < i {
		t.Errorf("key order changed:\n%s", out)
	}
	// The flow mapping that got a key is written as a block.
	if strings.Contains(string(out), "labels: {") {
		t.Errorf("a flow mapping with an added key stayed flow:\n%s", out)
	}
}

func TestApplyYAMLOperations(t *testing.T) {
	tests := map[string]struct {
		in   string
		ops  []jsonpatch.Operation
		want string
	}{
		"add a key": {
			in:   "a: 1\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("add", "/b", "x")},
			want: "a: 1\nb: x\n",
		},
		"add to an existing key replaces it": {
			in:   "a: 1\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("add", "/a", 2)},
			want: "a: 2\n",
		},
		"escaped tokens": {
			in:   "annotations:\n  x/y: old\n  t~n: old\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("replace", "/annotations/x~1y", "new"), jsonpatch.NewOperation("replace", "/annotations/t~0n", "new")},
			want: "annotations:\n  x/y: new\n  t~n: new\n",
		},
		"insert into a list": {
			in:   "l:\n- a\n- c\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("add", "/l/1", "b")},
			want: "l:\n  - a\n  - b\n  - c\n",
		},
		"append to a list": {
			in:   "l:\n- a\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("add", "/l/1", "b"), jsonpatch.NewOperation("add", "/l/-", "c")},
			want: "l:\n  - a\n  - b\n  - c\n",
		},
		"replace in a list": {
			in:   "l:\n- a\n- b\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("replace", "/l/0", "z")},
			want: "l:\n  - z\n  - b\n",
		},
		"multi-line strings become literal blocks": {
			in:   "data:\n  eck.yaml: \"metrics-port: 0\\n\"\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("replace", "/data/eck.yaml", "metrics-port: 8081\nmetrics-secure: true\n")},
			want: "data:\n  eck.yaml: |\n    metrics-port: 8081\n    metrics-secure: true\n",
		},
		"a plain string replaced by one that reads as a bool stays a string": {
			in:   "v: abc\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("replace", "/v", "true")},
			want: "v: \"true\"\n",
		},
		"objects are written as blocks": {
			in:   "a: 1\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("add", "/m", map[string]any{"k": []any{1, "two"}})},
			want: "a: 1\nm:\n  k:\n    - 1\n    - two\n",
		},
		"through an alias": {
			in:   "base: &b\n  x: 1\nuse: *b\n",
			ops:  []jsonpatch.Operation{jsonpatch.NewOperation("add", "/use/y", 2)},
			want: "base: &b\n  x: 1\n  y: 2\nuse: *b\n",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tc.in), &doc); err != nil {
				t.Fatal(err)
			}
			if err := ApplyYAML(&doc, tc.ops); err != nil {
				t.Fatal(err)
			}
			if got := string(encode(t, &doc)); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestApplyYAMLErrors(t *testing.T) {
	tests := map[string]struct {
		op   jsonpatch.Operation
		want string
	}{
		"remove":            {op: jsonpatch.NewOperation("remove", "/a", nil), want: "unsupported operation"},
		"test":              {op: jsonpatch.NewOperation("test", "/a", 1), want: "unsupported operation"},
		"the whole doc":     {op: jsonpatch.NewOperation("replace", "", 1), want: "cannot replace the whole document"},
		"missing parent":    {op: jsonpatch.NewOperation("add", "/nope/x", 1), want: `no key "nope"`},
		"index beyond list": {op: jsonpatch.NewOperation("add", "/l/5", 1), want: `index "5" out of range`},
		"index not number":  {op: jsonpatch.NewOperation("add", "/l/x", 1), want: `index "x" out of range`},
		"walk beyond list":  {op: jsonpatch.NewOperation("add", "/l/3/x", 1), want: `index "3" out of range`},
		"into a scalar":     {op: jsonpatch.NewOperation("add", "/a/b/c", 1), want: `cannot descend into a scalar at "b"`},
		"parent is scalar":  {op: jsonpatch.NewOperation("add", "/a/b", 1), want: "parent is not a mapping or a list"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte("a: 1\nl: [x]\n"), &doc); err != nil {
				t.Fatal(err)
			}
			err := ApplyYAML(&doc, []jsonpatch.Operation{tc.op})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.op.Path) {
				t.Errorf("err = %v, want it to name %s and say %q", err, tc.op.Path, tc.want)
			}
		})
	}
}

func encode(t *testing.T, doc *yaml.Node) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustMarshal(t *testing.T, ops []jsonpatch.Operation) []byte {
	t.Helper()
	b, err := Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
