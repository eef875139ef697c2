package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// guarded are the annotations of a namespace whose ECK operators are secured with
// certificates from the (here absent) Issuer e2e-ca: the webhook only needs its name.
var guarded = map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "e2e-ca"}

// TestApplySecuresRealManifests applies real ECK install manifests (and the project's own
// ECK-shaped ones) with kubectl into opted-in namespaces: what the API server stores is in
// the end state; applying again, client- or server-side, keeps it without growing lists;
// and the Pod kube-controller-manager creates from the StatefulSet mounts the certificate.
func TestApplySecuresRealManifests(t *testing.T) {
	type input struct {
		name, path string
		// stsSettings: the StatefulSet carries settings (cert dir) that eck.yaml must follow.
		// The ConfigMap comes first in the file, so the webhook sees those settings only on
		// the ConfigMap's next write (the controller applies them at once).
		stsSettings bool
	}
	var inputs []input
	// Every version the guard secures (older ones: TestOptOutInvalidAndOldOperators), in every
	// style of install, rendered and from ../shared/fixtures/eck.
	for _, m := range framework.ECKManifests(t) {
		if !m.Version.LessThan(eck.MinSecureVersion) {
			inputs = append(inputs, input{name: m.String(), path: m.Path})
		}
	}
	for _, name := range []string{"custom-install.yaml", "olm-deployment.yaml"} {
		inputs = append(inputs, input{name: name, path: filepath.Join(repo, "test", "testdata", "inject", name)})
	}
	inputs = append(inputs, input{name: "issuer-and-env.yaml", path: filepath.Join(repo, "test", "testdata", "inject", "issuer-and-env.yaml"), stsSettings: true})

	for _, in := range inputs {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			ns := env.Namespace(t, "e2e-apply", guarded, nil)
			file := framework.Manifest(t, in.path, ns)
			env.MustKubectl(t, "apply", "-f", file)
			if in.stsSettings {
				env.MustKubectl(t, "apply", "-f", file)
			}

			o := env.Operator(t, ns)
			port, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap)
			for _, f := range findings {
				t.Errorf("after kubectl apply: %s", f)
			}
			shape := shapeOf(o)

			// A GitOps re-sync applies the original manifest again, client- and server-side.
			for _, args := range [][]string{
				{"apply", "-f", file},
				{"apply", "--server-side", "--force-conflicts", "-f", file},
				{"apply", "--server-side", "--force-conflicts", "-f", file},
			} {
				env.MustKubectl(t, args...)
				again := env.Operator(t, ns)
				if _, findings := compliance.Operator(again.Op, again.Template, again.ConfigMap); len(findings) > 0 {
					t.Errorf("after kubectl %s: %v", strings.Join(args[:len(args)-2], " "), findings)
				}
				if got := shapeOf(again); got != shape {
					t.Errorf("after kubectl %s: %s, was %s", strings.Join(args[:len(args)-2], " "), got, shape)
				}
			}

			if o.Op.Kind != "StatefulSet" {
				return
			}
			// kube-controller-manager makes the Pod from the stored template.
			pod := &corev1.Pod{}
			framework.Eventually(t, "the operator Pod", func() (bool, error) {
				err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: o.Op.Name + "-0"}, pod)
				return err == nil, client.IgnoreNotFound(err)
			})
			c := pod.Spec.Containers[o.Op.ContainerIndex]
			hasPort, hasMount := false, false
			for _, p := range c.Ports {
				hasPort = hasPort || p.Name == keys.PortName && int(p.ContainerPort) == port
			}
			for _, m := range c.VolumeMounts {
				hasMount = hasMount || m.Name == keys.VolumeName && m.ReadOnly
			}
			if !hasPort || !hasMount {
				t.Errorf("Pod %s: metrics port %v, certificate mount %v", pod.Name, hasPort, hasMount)
			}
		})
	}
}

// shapeOf counts what re-applies must not multiply.
func shapeOf(o framework.Operator) string {
	c := o.Template.Spec.Containers[o.Op.ContainerIndex]
	return strings.Join([]string{
		"ports=" + itoa(len(c.Ports)), "mounts=" + itoa(len(c.VolumeMounts)), "volumes=" + itoa(len(o.Template.Spec.Volumes)),
		"eck.yaml lines=" + itoa(strings.Count(o.ConfigMap.Data[o.Op.ConfigKey], "\n")),
	}, " ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestNotOptedInIsStoredAsSent: the same manifest in a namespace that did not opt in is
// stored exactly as sent.
func TestNotOptedInIsStoredAsSent(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t, "e2e-plain", nil, nil)
	file := framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns)
	env.MustKubectl(t, "apply", "-f", file)
	o := env.Operator(t, ns)
	if sent := sentConfig(t, file); o.ConfigMap.Data["eck.yaml"] != sent {
		t.Errorf("eck.yaml changed:\n%s\nsent:\n%s", o.ConfigMap.Data["eck.yaml"], sent)
	}
	if _, ok := o.Template.Annotations[keys.AnnotationMetricsHash]; ok || len(o.Template.Spec.Volumes) != 2 || len(o.Template.Spec.Containers[0].Ports) != 1 {
		t.Errorf("the StatefulSet changed: %+v", o.Template)
	}
}

// TestUnrelatedObjectsNeverReachTheWebhook counts the admission requests the guard serves:
// the matchConditions of config/webhook keep unrelated objects away from it.
func TestUnrelatedObjectsNeverReachTheWebhook(t *testing.T) {
	ns := env.Namespace(t, "e2e-unrelated", guarded, nil)
	ctx := context.Background()
	before := webhookRequests(t)
	labels := map[string]string{"app": "web"}
	objects := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config", Namespace: ns}, Data: map[string]string{"application.yaml": "server:\n  port: 8080\n", "eck.json": "{}"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}},
		statefulSet(ns, "web", "nginx:1.27", labels),
		statefulSet(ns, "lookalike", "quay.io/someone/not-eck-operator:3.5.0", labels),
	}
	for _, o := range objects {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	if after := webhookRequests(t); after != before {
		t.Errorf("unrelated objects reached the webhook: %v requests", after-before)
	}
	// The counter does count: an ECK config reaches the webhook.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "eck", Namespace: ns}, Data: map[string]string{"eck.yaml": "metrics-port: 0\n"}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if after := webhookRequests(t); after != before+1 {
		t.Errorf("an ECK config made %v webhook requests, want 1", after-before)
	}
}

// TestServerSideDryRun: --dry-run=server returns the secured objects and creates nothing.
func TestServerSideDryRun(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t, "e2e-dryrun", guarded, nil)
	out, _ := env.MustKubectl(t, "apply", "--dry-run=server", "-o", "yaml", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	for _, want := range []string{"metrics-secure: true", "metrics-port: 8081", "name: tls-certificate", "name: metrics"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "elastic-operator"}, &corev1.ConfigMap{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("dry-run created the ConfigMap (err %v)", err)
	}
}

// TestOptOutInvalidAndOldOperators: an operator that opts out, invalid annotations and an
// operator older than 2.16.
func TestOptOutInvalidAndOldOperators(t *testing.T) {
	t.Parallel()
	annotate := func(annotations string) func(string) string {
		return func(doc string) string {
			if !strings.Contains(doc, "kind: StatefulSet") {
				return doc
			}
			return strings.Replace(doc, "metadata:\n", "metadata:\n  annotations:\n"+annotations, 1)
		}
	}
	input := framework.ECKManifest(t, "operator-3.5.0.yaml")

	t.Run("opted out", func(t *testing.T) {
		ns := env.Namespace(t, "e2e-optout", guarded, nil)
		env.MustKubectl(t, "apply", "-f", framework.Manifest(t, input, ns, annotate("    metrics-guard.eck.dev/secure: \"false\"\n")))
		o := env.Operator(t, ns)
		if _, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap); len(findings) == 0 {
			t.Error("an operator that opted out was secured")
		}
	})
	for name, tc := range map[string]struct{ annotations, want string }{
		"port out of range": {"    metrics-guard.eck.dev/metrics-port: \"80\"\n", `metadata.annotations[metrics-guard.eck.dev/metrics-port]: Invalid value: "80": must be a port number from 1024 to 65535`},
		"port taken":        {"    metrics-guard.eck.dev/metrics-port: \"9443\"\n", "port 9443 is already used by"},
		"issuer kind":       {"    metrics-guard.eck.dev/issuer-kind: Vault\n", `Unsupported value: "Vault": supported values: "Issuer", "ClusterIssuer"`},
		"secure":            {"    metrics-guard.eck.dev/secure: \"yes\"\n", `metadata.annotations[metrics-guard.eck.dev/secure]: Unsupported value: "yes"`},
	} {
		t.Run(name, func(t *testing.T) {
			ns := env.Namespace(t, "e2e-invalid", guarded, nil)
			_, stderr, err := env.Kubectl(t, "apply", "-f", framework.Manifest(t, input, ns, annotate(tc.annotations)))
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("kubectl apply: err %v, stderr:\n%s\nwant it to say %q", err, stderr, tc.want)
			}
		})
	}
	t.Run("older than 2.16", func(t *testing.T) {
		ns := env.Namespace(t, "e2e-old", guarded, nil)
		_, stderr := env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-2.14.0.yaml"), ns))
		if !strings.Contains(stderr, "Warning:") || !strings.Contains(stderr, "2.14.0 ignores metrics-secure") {
			t.Errorf("no warning about the old operator:\n%s", stderr)
		}
		o := env.Operator(t, ns)
		if _, ok := o.Template.Annotations[keys.AnnotationMetricsHash]; ok || strings.Contains(o.ConfigMap.Data["eck.yaml"], "metrics-secure") {
			t.Error("a 2.14.0 operator was changed")
		}
	})
}

// webhookRequests is the guard's count of admission requests served, from its own metrics.
func webhookRequests(t *testing.T) float64 {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "webhook" && l.GetValue() == "/mutate" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// sentConfig is the eck.yaml of the ConfigMap in a manifest file.
func sentConfig(t *testing.T, file string) string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal([]byte(doc), &cm); err == nil && cm.Kind == "ConfigMap" {
			return cm.Data["eck.yaml"]
		}
	}
	t.Fatal("no ConfigMap in " + file)
	return ""
}

func statefulSet(ns, name, image string, labels map[string]string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "manager", Image: image, Args: []string{"manager", "--config=/conf/eck.yaml"},
				}}},
			},
		},
	}
}
