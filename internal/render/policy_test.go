package render

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

func msp(name string, mode v1alpha1.Mode, matchLabels map[string]string) v1alpha1.MetricsSecurityPolicy {
	return v1alpha1.MetricsSecurityPolicy{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.MetricsSecurityPolicySpec{Mode: mode, NamespaceSelector: &metav1.LabelSelector{MatchLabels: matchLabels}}}
}

// TestInjectUnderPolicies: with --policy the command is no longer the opt-in; the stream is
// governed as a cluster with those policies would govern it.
func TestInjectUnderPolicies(t *testing.T) {
	input := read(t, ownInputs+"/custom-install.yaml")
	plain, err := Inject("custom-install.yaml", input, Options{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Mutate secures as the opt-in does", func(t *testing.T) {
		res, err := Inject("custom-install.yaml", input, Options{Policies: []v1alpha1.MetricsSecurityPolicy{msp("platform", v1alpha1.ModeMutate, nil)}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Output, plain.Output) || len(res.Unsecured) > 0 {
			t.Errorf("a Mutate policy over every namespace gave another stream than the opt-in (unsecured: %v)", res.Unsecured)
		}
	})
	t.Run("Audit changes nothing and reports", func(t *testing.T) {
		res, err := Inject("custom-install.yaml", input, Options{Policies: []v1alpha1.MetricsSecurityPolicy{msp("platform", v1alpha1.ModeAudit, nil)}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Output, input) {
			t.Error("an Audit policy changed the stream")
		}
		if len(res.Unsecured) == 0 || !strings.Contains(res.Unsecured[0], "open") {
			t.Errorf("unsecured = %v, want the open operator", res.Unsecured)
		}
	})
	t.Run("a namespace the policy does not select is left alone", func(t *testing.T) {
		res, err := Inject("custom-install.yaml", input, Options{Policies: []v1alpha1.MetricsSecurityPolicy{msp("platform", v1alpha1.ModeEnforce, map[string]string{"team": "search"})}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Output, input) || len(res.Unsecured) > 0 {
			t.Errorf("an operator no policy covers was changed or reported: %v", res.Unsecured)
		}
		// Its Namespace object in the stream gives the labels the policy selects.
		ns := []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + namespaceOf(t, plain) + "\n  labels:\n    team: search\n---\n")
		res, err = Inject("custom-install.yaml", append(ns, input...), Options{Policies: []v1alpha1.MetricsSecurityPolicy{msp("platform", v1alpha1.ModeEnforce, map[string]string{"team": "search"})}})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(res.Output, append(ns, input...)) {
			t.Error("the labelled namespace's operator was not secured under Enforce")
		}
	})
	t.Run("Enforce fails on an opt-out, naming the policy", func(t *testing.T) {
		optedOut := bytes.Replace(input, []byte("    metrics-guard.eck.dev/tls-secret: eck-metrics-cert\n"), []byte("    metrics-guard.eck.dev/tls-secret: eck-metrics-cert\n    metrics-guard.eck.dev/secure: \"false\"\n"), 1)
		if bytes.Equal(optedOut, input) {
			t.Fatal("the test input has no StatefulSet to annotate")
		}
		_, err := Inject("custom-install.yaml", optedOut, Options{Policies: []v1alpha1.MetricsSecurityPolicy{msp("platform", v1alpha1.ModeEnforce, nil)}})
		if err == nil || !strings.Contains(err.Error(), "MetricsSecurityPolicy platform (Enforce)") || !strings.Contains(err.Error(), "StatefulSet") {
			t.Errorf("error %v, want the policy and the document named", err)
		}
		// Mutate lets the opt-out stand.
		res, err := Inject("custom-install.yaml", optedOut, Options{Policies: []v1alpha1.MetricsSecurityPolicy{msp("platform", v1alpha1.ModeMutate, nil)}})
		if err != nil {
			t.Fatalf("Mutate: %v", err)
		}
		if !bytes.Equal(res.Output, optedOut) {
			t.Error("Mutate did not let the opt-out stand")
		}
	})
}

func namespaceOf(t *testing.T, res *Result) string {
	t.Helper()
	s, err := parseStream("out", res.Output, "default")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range s.workloads() {
		if op, ok := w.operator(); ok {
			return op.Namespace
		}
	}
	t.Fatal("no operator")
	return ""
}

func TestParsePolicies(t *testing.T) {
	good := "apiVersion: metrics-guard.eck.dev/v1alpha1\nkind: MetricsSecurityPolicy\nmetadata: {name: platform}\nspec:\n  namespaceSelector: {}\n  mode: Enforce\n"
	ps, err := policy.ParsePolicies([]byte(good + "---\n" + strings.Replace(good, "platform", "second", 1)))
	if err != nil || len(ps) != 2 || ps[1].Name != "second" || ps[0].Spec.Mode != v1alpha1.ModeEnforce {
		t.Fatalf("%v %+v", err, ps)
	}
	for input, want := range map[string]string{
		strings.Replace(good, "mode: Enforce", "mode: Block", 1):           `spec.mode: Unsupported value: "Block"`,
		strings.Replace(good, "  namespaceSelector: {}\n", "", 1):          "spec.namespaceSelector: Required value",
		strings.Replace(good, "mode: Enforce", "modes: Enforce", 1):        `unknown field "modes"`,
		strings.Replace(good, "kind: MetricsSecurityPolicy", "kind: X", 1): "is not a metrics-guard.eck.dev/v1alpha1 MetricsSecurityPolicy",
		"": "no MetricsSecurityPolicy",
	} {
		if _, err := policy.ParsePolicies([]byte(input)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", input, err, want)
		}
	}
}
