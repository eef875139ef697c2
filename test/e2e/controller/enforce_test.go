package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestEnforceJudgesWhatECKReads walks the attacks of a user with only namespace rights (the
// built-in edit role) on an operator under an Enforce policy, on the real API server: every
// write that would leave ECK's endpoint weaker than the guard can fix is denied with the
// policy and the winning source named; what the guard can fix is admitted and secured at the
// source that wins; an operator that was unreadable before the policy keeps being admitted,
// with a warning, and the policy's status lists it as unknown, never compliant.
// managerLine is the manager container's name in a manifest, with its indentation.
var managerLine = regexp.MustCompile(`(?m)^(\s+)name: manager\n`)

func TestEnforceJudgesWhatECKReads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	selector := map[string]string{"e2e.metrics-guard.eck.dev/policy": fmt.Sprintf("enforce-%d", time.Now().UnixNano())}
	fixture := framework.ECKManifest(t, "operator-3.5.0.yaml")
	ns, nsB := env.Namespace(t, "e2e-enforce", nil, nil), env.Namespace(t, "e2e-enforce-b", nil, nil)
	caIssuer(t, ns)

	// B runs behind a shell before any policy covers the namespace: the guard cannot read it.
	shellB := func(m string) string {
		m = strings.Replace(m, "kind: StatefulSet\nmetadata:\n  name: elastic-operator\n", "kind: StatefulSet\nmetadata:\n  name: operator-b\n", 1)
		return managerLine.ReplaceAllString(m, "${1}name: manager\n${1}command: [\"/bin/sh\", \"-c\", \"exec /elastic-operator manager --config=/conf/eck.yaml --metrics-secure=false\"]\n")
	}
	manifest := framework.Manifest(t, fixture, ns)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, fixture, nsB, shellB))

	p := &v1alpha1.MetricsSecurityPolicy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-enforce-"},
		Spec: v1alpha1.MetricsSecurityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: selector},
			Mode:              v1alpha1.ModeEnforce,
			Defaults:          v1alpha1.PolicyDefaults{Issuer: &v1alpha1.IssuerReference{Name: "e2e-ca"}, ServiceMonitor: ptr(false)},
		},
	}
	if err := env.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	for k, v := range selector {
		env.MustKubectl(t, "label", "namespace", ns, nsB, k+"="+v)
	}

	// A, Elastic's manifest install, secured by the policy.
	env.MustKubectl(t, "apply", "-f", manifest)
	framework.EventuallyWithin(t, "A to be secured", 90*time.Second, func() (bool, error) {
		return env.Operator(t, ns).Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})

	// The attacker: a ServiceAccount of the namespace allowed StatefulSets and ConfigMaps there.
	dev := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "dev", Namespace: ns}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "dev", Namespace: ns}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "create", "update", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "create", "update", "patch"}},
	}}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dev", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "dev"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "dev", Namespace: ns}},
	}
	for _, obj := range []client.Object{dev, role, rb} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	as := "--as=system:serviceaccount:" + ns + ":dev"
	patchA := func(ops string) (string, error) {
		_, stderr, err := env.Kubectl(t, as, "-n", ns, "patch", "statefulset", "elastic-operator", "--type=json", "-p", ops)
		return stderr, err
	}
	framework.Eventually(t, "the Role to be in effect", func() (bool, error) {
		_, _, err := env.Kubectl(t, as, "-n", ns, "get", "statefulset", "elastic-operator")
		return err == nil, nil
	})

	policy := "MetricsSecurityPolicy " + p.Name + " (Enforce) enforces secure metrics in namespace " + ns
	denied := map[string]struct{ ops, want string }{
		"a shell launcher": {`[{"op": "add", "path": "/spec/template/spec/containers/0/command", "value": ["/bin/sh", "-c", "exec /elastic-operator manager --config=/conf/eck.yaml"]}]`,
			`would be unknown: the guard cannot tell what ECK reads: the container runs "/bin/sh"`},
		"a downgrade below 2.16": {`[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "docker.elastic.co/eck/eck-operator:2.14.0"}]`,
			"would be open: ECK 2.14.0 ignores metrics-secure"},
		"an unknown flag": {`[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--metrics-insecure"}]`,
			`"--metrics-insecure" is not a flag of ECK's manager`},
		"another image": {`[{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "docker.io/library/busybox:1.37"}]`,
			"StatefulSet elastic-operator runs the ECK operator, and after this write the guard could not tell what it serves"},
	}
	for name, tc := range denied {
		stderr, err := patchA(tc.ops)
		if err == nil || !strings.Contains(stderr, policy) || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: err %v, %q; want a denial naming the policy and %q", name, err, stderr, tc.want)
		}
	}

	// What the guard can fix is admitted, and secured where ECK reads it.
	insecure := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "insecure-env", Namespace: ns}, Data: map[string]string{"SECURE": "false"}}
	if err := env.Client.Create(ctx, insecure); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct{ name, ops string }{
		{"env", `[{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "METRICS_SECURE", "value": "false"}}]`},
		{"envFrom", `[{"op": "add", "path": "/spec/template/spec/containers/0/envFrom", "value": [{"prefix": "METRICS_", "configMapRef": {"name": "insecure-env"}}]}]`},
		{"a flag", `[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--metrics-secure=false"}]`},
		// The user's own second METRICS_SECURE entry, after the guard's: set too.
		{"env again", `[{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "METRICS_SECURE", "value": "false"}}]`},
	} {
		if stderr, err := patchA(w.ops); err != nil {
			t.Errorf("%s: denied: %q", w.name, stderr)
		}
	}
	a := env.Operator(t, ns)
	c := a.Template.Spec.Containers[a.Op.ContainerIndex]
	var secureEnv []string
	for _, e := range c.Env {
		if e.Name == "METRICS_SECURE" {
			secureEnv = append(secureEnv, e.Value)
		}
	}
	if strings.Join(secureEnv, ",") != "true,true" || len(c.EnvFrom) != 1 || !strings.Contains(strings.Join(c.Args, " "), "--metrics-secure=true") || strings.Contains(strings.Join(c.Args, " "), "--metrics-secure=false") {
		t.Errorf("stored: env METRICS_SECURE %q, envFrom %v, args %q; want every source that wins set to true", secureEnv, c.EnvFrom, c.Args)
	}

	// B, unreadable before the policy: its writes are admitted with a warning; the status says
	// unknown and not compliant.
	_, stderr := env.MustKubectl(t, "-n", nsB, "label", "statefulset", "operator-b", "e2e/touched=yes")
	if !strings.Contains(stderr, "cannot tell what ECK reads") {
		t.Errorf("a write of B: warnings %q, want the guard to say it cannot tell", stderr)
	}
	status := waitForStatus(t, p, func(s v1alpha1.MetricsSecurityPolicyStatus) bool {
		return s.Covered == 2 && s.Compliant == 1
	})
	for _, o := range status.Operators {
		if o.Name == "operator-b" && (o.Compliant || !strings.Contains(strings.Join(o.Reasons, "\n"), "unknown")) {
			t.Errorf("B in the policy status: %+v", o)
		}
	}
}
