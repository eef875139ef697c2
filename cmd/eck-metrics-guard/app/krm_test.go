package app

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/kyaml/fn/framework"
	"sigs.k8s.io/kustomize/kyaml/kio"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// untouched is an item no inject changes, with what a round trip loses if it is careless:
// comments (head, line, foot), a kind nobody knows, unknown fields, flow style, odd quoting.
const untouched = `# head comment of an item the function leaves alone
apiVersion: example.com/v1
kind: Widget # a kind nobody knows
metadata:
  name: w
  namespace: elastic-system
spec:
  unknownField: {nested: [1, 2], "quoted": 'single'} # trailing comment
  other: |
    a literal block
# foot comment
`

// resourceList wraps ECK's manifest of that name, after the untouched item, into a
// ResourceList with functionConfig fc, as kustomize hands it to a function.
func resourceList(t *testing.T, manifest, fc string) ([]byte, []*kyaml.RNode) {
	t.Helper()
	path, err := eckmanifests.Path(manifest)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(data)}).Read()
	if err != nil {
		t.Fatal(err)
	}
	w := kyaml.MustParse(untouched)
	nodes = append([]*kyaml.RNode{w}, nodes...)
	var buf bytes.Buffer
	bw := &kio.ByteWriter{Writer: &buf, KeepReaderAnnotations: true, FunctionConfig: kyaml.MustParse(fc),
		WrappingKind: kio.ResourceListKind, WrappingAPIVersion: kio.ResourceListAPIVersion}
	if err := bw.Write(nodes); err != nil {
		t.Fatal(err)
	}
	// What the function is handed, item by item, as written and read again.
	in, err := (&kio.ByteReader{Reader: bytes.NewReader(buf.Bytes())}).Read()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), in
}

// readResourceList parses a function's output.
func readResourceList(t *testing.T, out []byte) (items []*kyaml.RNode, fc, results *kyaml.RNode) {
	t.Helper()
	rw := &kio.ByteReadWriter{Reader: bytes.NewReader(out), KeepReaderAnnotations: true}
	items, err := rw.Read()
	if err != nil {
		t.Fatalf("reading the output ResourceList: %v\n%s", err, out)
	}
	return items, rw.FunctionConfig, rw.Results
}

// TestKRMRoundTrip runs the function over ECK's install manifest with an untouched item of
// every awkward kind: the operator comes out secured with its companions, the items inject
// does not change come out exactly as they went in (comments, unknown fields, order), the
// changed ones keep their comments, and results name the operator.
func TestKRMRoundTrip(t *testing.T) {
	in, items := resourceList(t, "operator-3.5.0.yaml", `apiVersion: metrics-guard.eck.dev/v1alpha1
kind: MetricsGuard
metadata:
  name: secure
spec:
  issuer: metrics-ca
  issuerKind: ClusterIssuer
  serviceMonitor: true
`)
	var out, stderr bytes.Buffer
	if err := runKRM(bytes.NewReader(in), &out, &stderr); err != nil {
		t.Fatalf("krm: %v\n%s", err, stderr.String())
	}
	got, fc, results := readResourceList(t, out.Bytes())
	if len(got) <= len(items) {
		t.Fatalf("%d items out, %d in: no companions", len(got), len(items))
	}
	changed := map[string]bool{}
	for i, it := range items {
		want, g := it.MustString(), got[i].MustString()
		if want == g {
			continue
		}
		id := it.GetKind() + " " + it.GetName()
		changed[id] = true
		if id != "StatefulSet elastic-operator" && id != "ConfigMap elastic-operator" {
			t.Errorf("item %d (%s) changed:\n%s\nwant\n%s", i, id, g, want)
		}
		// A changed item keeps its comments (helm's "# Source: ...").
		for _, line := range strings.Split(want, "\n") {
			if c := strings.TrimSpace(line); strings.HasPrefix(c, "# ") && !strings.Contains(g, c) {
				t.Errorf("item %d (%s) lost the comment %q", i, id, c)
			}
		}
	}
	if !changed["StatefulSet elastic-operator"] || !changed["ConfigMap elastic-operator"] {
		t.Errorf("changed %v, want the StatefulSet and the ConfigMap", changed)
	}
	for _, keep := range []string{"# head comment", "# a kind nobody knows", "unknownField: {nested: [1, 2], \"quoted\": 'single'} # trailing comment", "# foot comment", "a literal block"} {
		if !strings.Contains(got[0].MustString(), keep) {
			t.Errorf("the untouched item lost %q:\n%s", keep, got[0].MustString())
		}
	}

	// The operator is secured by the verdict, and its companions are there.
	var sts appsv1.StatefulSet
	var cm corev1.ConfigMap
	kinds := map[string]int{}
	for _, it := range got {
		kinds[it.GetKind()]++
		switch {
		case it.GetKind() == "StatefulSet":
			decode(t, it, &sts)
		case it.GetKind() == "ConfigMap" && it.GetName() == "elastic-operator":
			decode(t, it, &cm)
		}
	}
	op, ok := eck.FromStatefulSet(&sts)
	if !ok {
		t.Fatal("no ECK operator in the output")
	}
	if v, findings := compliance.Check(op, &sts.Spec.Template, func(string) *corev1.ConfigMap { return &cm }); !v.Secured() || len(findings) > 0 {
		t.Errorf("operator: %s %v", v, findings)
	}
	for _, k := range []string{"Certificate", "ServiceMonitor", "ClusterRoleBinding"} {
		if kinds[k] == 0 {
			t.Errorf("no %s in the output", k)
		}
	}
	if fc.GetKind() != KRMKind {
		t.Errorf("functionConfig %s, want it handed back", fc.GetKind())
	}
	var rs framework.Results
	if err := results.Document().Decode(&rs); err != nil || len(rs) != 1 {
		t.Fatalf("results: %v %v\n%s", rs, err, results.MustString())
	}
	r := rs[0]
	if r.Severity != framework.Info || r.ResourceRef == nil || r.ResourceRef.Kind != "StatefulSet" || r.ResourceRef.Name != "elastic-operator" || r.ResourceRef.Namespace != "elastic-system" || r.ResourceRef.APIVersion != "apps/v1" || !strings.Contains(r.Message, "over TLS with token authentication") {
		t.Errorf("result: %+v", r)
	}

	// A second run over the output changes nothing and adds nothing.
	again := append([]byte(nil), out.Bytes()...)
	var out2 bytes.Buffer
	if err := runKRM(bytes.NewReader(again), &out2, &stderr); err != nil {
		t.Fatal(err)
	}
	got2, _, _ := readResourceList(t, out2.Bytes())
	if len(got2) != len(got) {
		t.Errorf("second run: %d items, first %d", len(got2), len(got))
	}
	for i := range got2 {
		if i < len(got) && got2[i].MustString() != got[i].MustString() {
			t.Errorf("second run changed item %d (%s %s)", i, got[i].GetKind(), got[i].GetName())
		}
	}
}

func decode(t *testing.T, n *kyaml.RNode, into any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(n.MustString()), into); err != nil {
		t.Fatal(err)
	}
}

// TestKRMUnsecured: ECK 2.14.0 cannot be secured: a result of severity error names it, the
// ResourceList still comes out, and the exit code is 3, which fails kustomize build.
func TestKRMUnsecured(t *testing.T) {
	in, items := resourceList(t, "operator-2.14.0.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {tls-secret: my-tls}\n")
	var out, stderr bytes.Buffer
	err := runKRM(bytes.NewReader(in), &out, &stderr)
	var coded *exitCodeError
	if !errors.As(err, &coded) || coded.code != exitUnsecured {
		t.Fatalf("krm over ECK 2.14.0: %v, want exit code %d", err, exitUnsecured)
	}
	got, _, results := readResourceList(t, out.Bytes())
	if len(got) != len(items) {
		t.Errorf("%d items out, %d in", len(got), len(items))
	}
	if !strings.Contains(results.MustString(), "severity: error") || !strings.Contains(stderr.String(), "[error] apps/v1/StatefulSet/elastic-system/elastic-operator: ") || !strings.Contains(stderr.String(), "2.16.0") {
		t.Errorf("results:\n%s\nstderr:\n%s", results.MustString(), stderr.String())
	}
}

// TestKRMFunctionConfig: a MetricsGuard's spec and a ConfigMap's data mean what inject's
// flags of the same names mean; a misspelt option, a bad value or another kind is an error.
func TestKRMFunctionConfig(t *testing.T) {
	fc := func(s string) *kyaml.RNode { return kyaml.MustParse(s) }
	o, err := krmRenderOptions(fc(`apiVersion: metrics-guard.eck.dev/v1alpha1
kind: MetricsGuard
spec:
  issuer: ca
  issuerKind: ClusterIssuer
  metricsPort: 8085
  serviceMonitor: true
  monitorLabels: {release: kps, team: search}
  certDuration: 48h
  namespace: elastic-system
`))
	if err != nil {
		t.Fatal(err)
	}
	d := o.Defaults
	if d.Issuer != "ca" || d.IssuerKind != "ClusterIssuer" || d.Port != 8085 || d.Monitor.Kind != policy.ServiceMonitorKind ||
		d.Monitor.Labels["release"] != "kps" || d.Monitor.Labels["team"] != "search" || d.Certificate.Duration.String() != "48h0m0s" || o.Namespace != "elastic-system" {
		t.Errorf("MetricsGuard: %+v", o)
	}
	o, err = krmRenderOptions(fc("apiVersion: v1\nkind: ConfigMap\ndata:\n  tls-secret: my-tls\n  monitor: PodMonitor\n  scrape-token-secret: tok\n"))
	if err != nil || o.Defaults.TLSSecret != "my-tls" || o.Defaults.Monitor.Kind != policy.PodMonitorKind || o.Defaults.IssuerKind != "" {
		t.Errorf("ConfigMap: %+v %v", o, err)
	}
	if o, err = krmRenderOptions(nil); err != nil || o.Defaults.Monitor.Kind != policy.NoMonitor || o.Namespace != "default" {
		t.Errorf("no functionConfig: %+v %v", o, err)
	}
	for name, bad := range map[string]string{
		`unknown option "isuer"`:    "apiVersion: metrics-guard.eck.dev/v1alpha1\nkind: MetricsGuard\nspec: {isuer: ca}\n",
		`unknown option "filename"`: "apiVersion: v1\nkind: ConfigMap\ndata: {filename: x}\n",
		"metrics-port":              "apiVersion: metrics-guard.eck.dev/v1alpha1\nkind: MetricsGuard\nspec: {metricsPort: 1}\n",
		"want a ConfigMap":          "apiVersion: example.com/v1\nkind: Other\n",
		"want a string":             "apiVersion: metrics-guard.eck.dev/v1alpha1\nkind: MetricsGuard\nspec: {issuer: [a]}\n",
	} {
		if _, err := krmRenderOptions(fc(bad)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error with %q", bad, err, name)
		}
	}
}

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{"issuerKind": "issuer-kind", "tlsSecret": "tls-secret", "issuer": "issuer", "scrapeTokenSecret": "scrape-token-secret"} {
		if got := kebab(in); got != want {
			t.Errorf("kebab(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReadmeKRMExample: the functionConfig README.md shows for kustomize is one the function
// takes, and means what it says.
func TestReadmeKRMExample(t *testing.T) {
	root, err := eckmanifests.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "# overlay/metrics-guard.yaml"
	readme := string(raw)
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q example", marker)
	}
	block := readme[i:]
	block = block[:strings.Index(block, "```")]
	o, err := krmRenderOptions(kyaml.MustParse(block))
	if err != nil {
		t.Fatalf("README's MetricsGuard: %v\n%s", err, block)
	}
	if o.Defaults.Issuer != "metrics-ca" || o.Defaults.IssuerKind != "ClusterIssuer" || o.Defaults.Monitor.Kind != policy.ServiceMonitorKind || o.Defaults.Monitor.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("README's MetricsGuard: %+v", o.Defaults)
	}
	if !strings.Contains(block, "args: [krm]") {
		t.Errorf("README's MetricsGuard does not run the krm subcommand:\n%s", block)
	}
}
