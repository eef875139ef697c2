package packaging

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// guardNamespace creates the namespace config/default installs into, as config/default
// labels it (excluded from the webhook, restricted Pod Security Standard), unless it exists.
func guardNamespace(t *testing.T, env *framework.Env) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace, Labels: map[string]string{
		"metrics-guard.eck.dev/exclude":      "true",
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	if err := env.Client.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The namespaces of the watchNamespaces variant: an install needs them to exist.
	for _, name := range []string{"team-a", "team-b"} {
		watched := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := env.Client.Create(context.Background(), watched); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// serverApply applies a rendered install with kubectl, server-side, as a user would, and
// fails on an error or on any warning (a deprecated API, a Pod Security violation, an
// unknown field).
func serverApply(t *testing.T, env *framework.Env, r *rendered, extra ...string) string {
	t.Helper()
	// Not t.TempDir(): its name holds the test's, and kubectl splits -f at commas.
	dir, err := os.MkdirTemp("", "install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "install.yaml")
	if err := os.WriteFile(path, r.YAML, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"apply", "--server-side", "--field-manager=packaging-test", "-f", path}, extra...)
	stdout, stderr, err := env.Kubectl(t, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	if strings.Contains(stderr, "Warning") {
		t.Errorf("kubectl %s warned:\n%s", strings.Join(args, " "), stderr)
	}
	if n := strings.Count(stdout, "\n"); n != len(r.Objects) {
		t.Errorf("kubectl applied %d objects, %d rendered:\n%s", n, len(r.Objects), stdout)
	}
	return stdout
}

// TestServerSideDryRun validates every chart variant and config/default (with and without
// its components, and with ../selfmanaged instead of ../certmanager) against the real API server's schemas, with cert-manager's and the
// ServiceMonitor CRDs installed: `kubectl apply --server-side --dry-run=server` runs
// validation (strict: unknown fields are errors), defaulting and admission, Pod Security
// included, and persists nothing.
func TestServerSideDryRun(t *testing.T) {
	env := controlPlane(t)
	guardNamespace(t, env)
	start := time.Now()
	t.Run("installs", func(t *testing.T) { // returns when its parallel subtests are done
		for _, v := range chartVariants() {
			t.Run("chart/"+v.name, func(t *testing.T) {
				t.Parallel()
				serverApply(t, env, mustHelmTemplate(t, v.args...), "--dry-run=server")
			})
		}
		t.Run("kustomize/default", func(t *testing.T) {
			t.Parallel()
			serverApply(t, env, kustomizeDefault(t), "--dry-run=server")
		})
		t.Run("kustomize/all components", func(t *testing.T) {
			t.Parallel()
			serverApply(t, env, kustomizeAllComponents(t), "--dry-run=server")
		})
		t.Run("kustomize/self-managed certificate", func(t *testing.T) {
			t.Parallel()
			serverApply(t, env, kustomizeSelfManaged(t), "--dry-run=server")
		})
	})
	t.Logf("%d installs validated in %s", len(chartVariants())+3, time.Since(start).Round(100*time.Millisecond))
}

// TestKustomizeApply applies config/default for real, twice (a re-apply changes nothing and
// conflicts with nothing), and checks that cert-manager's own controllers issue the serving
// certificate for the webhook and metrics Services into the Secret the pods mount.
func TestKustomizeApply(t *testing.T) {
	env := controlPlane(t)
	r := kustomizeDefault(t)
	serverApply(t, env, r)
	if out := serverApply(t, env, r); strings.Contains(out, "configured") {
		t.Errorf("a second apply changed objects:\n%s", out)
	}
	ctx := context.Background()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "eck-metrics-guard"}, mwc); err != nil {
		t.Fatal(err)
	}
	if got := mwc.Annotations[injectCAAnnotation]; got != "eck-metrics-guard/eck-metrics-guard-serving-cert" {
		t.Errorf("%s: %q", injectCAAnnotation, got)
	}
	checkIssued(t, env, releaseNamespace, "eck-metrics-guard-serving-cert", "eck-metrics-guard-webhook-tls",
		"eck-metrics-guard-webhook.eck-metrics-guard.svc", "eck-metrics-guard-metrics.eck-metrics-guard.svc")
}

// TestHelmInstall packages the chart, installs it into the API server under a release name of
// its own, with cert-manager issuing its certificate, upgrades it, and uninstalls it.
func TestHelmInstall(t *testing.T) {
	env := controlPlane(t)
	ctx := context.Background()
	const (
		release   = "guard"
		namespace = "guard-helm"
		fullname  = "guard-eck-metrics-guard" // the release name does not contain the chart's
	)
	helm := func(args ...string) string {
		t.Helper()
		args = append(args, "--namespace", namespace, "--kubeconfig", env.Kubeconfig)
		start := time.Now()
		stdout, stderr, err := runHelm(t, args...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
		}
		t.Logf("helm %s: %s", args[0], time.Since(start).Round(10*time.Millisecond))
		return stdout
	}
	get := func(obj client.Object, name string) error {
		key := client.ObjectKey{Name: name}
		switch obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration, *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
		default:
			key.Namespace = namespace
		}
		return env.Client.Get(ctx, key, obj)
	}

	// Install the packaged chart, as users get it: the files/ it reads must be in the archive.
	stdout, stderr, err := runHelm(t, "package", chartDir(), "--destination", t.TempDir())
	if err != nil {
		t.Fatalf("helm package: %v\n%s", err, stderr)
	}
	_, archive, ok := strings.Cut(strings.TrimSpace(stdout), "saved it to: ")
	if !ok {
		t.Fatalf("helm package: no archive in %q", stdout)
	}
	notes := helm("install", release, archive, "--create-namespace")
	for _, want := range []string{"kubectl label namespace " + namespace + " metrics-guard.eck.dev/exclude=true", "metrics-guard.eck.dev/secure=true"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}

	// The objects are there, under the release's names.
	deployment := &appsv1.Deployment{}
	if err := get(deployment, fullname); err != nil {
		t.Fatal(err)
	}
	if *deployment.Spec.Replicas != 2 || deployment.Spec.Template.Spec.ServiceAccountName != fullname {
		t.Errorf("Deployment: replicas %d, serviceAccountName %s", *deployment.Spec.Replicas, deployment.Spec.Template.Spec.ServiceAccountName)
	}
	for _, o := range []struct {
		obj  client.Object
		name string
	}{
		{&corev1.ServiceAccount{}, fullname},
		{&corev1.Service{}, fullname + "-webhook"},
		{&corev1.Service{}, fullname + "-metrics"},
		{&policyv1.PodDisruptionBudget{}, fullname},
		{&cmv1.Issuer{}, fullname + "-selfsigned"},
		{&rbacv1.ClusterRoleBinding{}, fullname},
		{&rbacv1.ClusterRole{}, fullname + "-metrics-reader"},
	} {
		if err := get(o.obj, o.name); err != nil {
			t.Errorf("%T %s: %v", o.obj, o.name, err)
		}
	}
	role := &rbacv1.ClusterRole{}
	if err := get(role, fullname); err != nil {
		t.Fatal(err)
	}
	source := into[rbacv1.ClusterRole](t, readObjectOfKind(t, "config/rbac/role.yaml", "ClusterRole"))
	// The one auth-delegator binding the guard may update is the release's.
	for i, r := range source.Rules {
		for j, n := range r.ResourceNames {
			if n == "eck-metrics-guard:auth-delegator" {
				source.Rules[i].ResourceNames[j] = fullname + ":auth-delegator"
			}
		}
	}
	equal(t, "rules of the installed ClusterRole and config/rbac/role.yaml", role.Rules, source.Rules)
	leader := &rbacv1.Role{}
	if err := get(leader, fullname); err != nil {
		t.Fatal(err)
	}
	equal(t, "rules of the installed Role and config/rbac/role.yaml", leader.Rules, into[rbacv1.Role](t, readObjectOfKind(t, "config/rbac/role.yaml", "Role")).Rules)

	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := get(mwc, fullname); err != nil {
		t.Fatal(err)
	}
	if got, want := mwc.Annotations[injectCAAnnotation], namespace+"/"+fullname+"-serving-cert"; got != want {
		t.Errorf("%s: %q, want %q", injectCAAnnotation, got, want)
	}
	for _, wh := range mwc.Webhooks {
		if s := wh.ClientConfig.Service; s == nil || s.Name != fullname+"-webhook" || s.Namespace != namespace {
			t.Errorf("webhook %s calls %+v", wh.Name, wh.ClientConfig.Service)
		}
	}
	checkIssued(t, env, namespace, fullname+"-serving-cert", fullname+"-webhook-tls",
		fullname+"-webhook."+namespace+".svc", fullname+"-metrics."+namespace+".svc")

	// An upgrade changes what the values say, in every webhook.
	helm("upgrade", release, archive, "--reuse-values", "--set", "webhook.failurePolicy=Fail")
	if err := get(mwc, fullname); err != nil {
		t.Fatal(err)
	}
	for _, wh := range mwc.Webhooks {
		if *wh.FailurePolicy != admissionregistrationv1.Fail {
			t.Errorf("after the upgrade, webhook %s has failurePolicy %s", wh.Name, *wh.FailurePolicy)
		}
	}

	// Uninstalling removes the webhook configuration first of all: no webhook is left pointing
	// at a Service that is gone.
	helm("uninstall", release, "--wait", "--timeout", "1m")
	for _, o := range []struct {
		obj  client.Object
		name string
	}{
		{&admissionregistrationv1.MutatingWebhookConfiguration{}, fullname},
		{&rbacv1.ClusterRole{}, fullname},
		{&rbacv1.ClusterRoleBinding{}, fullname},
		{&cmv1.Certificate{}, fullname + "-serving-cert"},
		{&corev1.Service{}, fullname + "-webhook"},
	} {
		// Deployments and ServiceAccounts are deleted with a finalizer-free DELETE, but the
		// API server may report them for a moment; poll.
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			err := get(o.obj, o.name)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
		if err != nil {
			t.Errorf("%T %s still there after helm uninstall: %v", o.obj, o.name, err)
		}
	}
}

// checkIssued waits for cert-manager to issue the Certificate, and checks that its Secret has
// a certificate for dnsNames and the ca.crt that cainjector injects and scrapers verify with.
func checkIssued(t *testing.T, env *framework.Env, namespace, certificate, secretName string, dnsNames ...string) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	crt := &cmv1.Certificate{}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: certificate}, crt); err != nil {
			return false, err
		}
		return slices.ContainsFunc(crt.Status.Conditions, func(c cmv1.CertificateCondition) bool {
			return c.Type == cmv1.CertificateConditionReady && c.Status == cmmeta.ConditionTrue
		}), nil
	})
	if err != nil {
		t.Fatalf("Certificate %s/%s not ready: %v; conditions %+v", namespace, certificate, err, crt.Status.Conditions)
	}
	t.Logf("Certificate %s/%s issued in %s", namespace, certificate, time.Since(start).Round(100*time.Millisecond))
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: secretName}, secret); err != nil {
		t.Fatal(err)
	}
	if len(secret.Data["ca.crt"]) == 0 {
		t.Errorf("Secret %s has no ca.crt", secretName)
	}
	block, _ := pem.Decode(secret.Data[corev1.TLSCertKey])
	if block == nil {
		t.Fatalf("Secret %s: no PEM certificate in tls.crt", secretName)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range dnsNames {
		if err := cert.VerifyHostname(name); err != nil {
			t.Errorf("Secret %s: %v", secretName, err)
		}
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("Secret %s: the certificate is not for server auth: %v", secretName, cert.ExtKeyUsage)
	}
}
