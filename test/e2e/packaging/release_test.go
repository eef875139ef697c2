package packaging

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// release is the chart installed by `helm install` into the shared control plane for one
// test; `helm uninstall` removes it when the test ends, so that no webhook configuration of
// it is left for the next tests' writes to go through.
type release struct {
	env       *framework.Env
	name      string
	namespace string
	// fullname is the prefix of the release's object names (the chart's fullname).
	fullname string
}

// installChart runs `helm install <name> <chart> --namespace <namespace> <args...>` and returns
// the release; the chart's directory is installed (TestHelmInstall installs the packaged chart).
func installChart(t *testing.T, env *framework.Env, name, namespace string, args ...string) *release {
	t.Helper()
	r := &release{env: env, name: name, namespace: namespace, fullname: name + "-eck-metrics-guard"}
	start := time.Now()
	r.helm(t, append([]string{"install", name, chartDir()}, args...)...)
	t.Logf("helm install %s: %s", strings.Join(args, " "), time.Since(start).Round(10*time.Millisecond))
	t.Cleanup(func() {
		if _, stderr, err := runHelm(t, "uninstall", name, "--wait", "--timeout", "1m", "--namespace", namespace, "--kubeconfig", env.Kubeconfig); err != nil {
			t.Errorf("helm uninstall %s: %v\n%s", name, err, stderr)
		}
	})
	return r
}

// helm runs helm against the release's namespace and the control plane, and fails the test on
// an error.
func (r *release) helm(t *testing.T, args ...string) string {
	t.Helper()
	args = append(args, "--namespace", r.namespace, "--kubeconfig", r.env.Kubeconfig)
	stdout, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	return stdout
}

// get reads an object of the release by name, from its namespace unless cluster-scoped.
func (r *release) get(t *testing.T, obj client.Object, name string) {
	t.Helper()
	key := client.ObjectKey{Name: name}
	if _, clusterScoped := obj.(*admissionregistrationv1.MutatingWebhookConfiguration); !clusterScoped {
		key.Namespace = r.namespace
	}
	if err := r.env.Client.Get(context.Background(), key, obj); err != nil {
		t.Fatalf("%T %s of release %s: %v", obj, name, r.name, err)
	}
}

// webhookConfiguration is the release's MutatingWebhookConfiguration.
func (r *release) webhookConfiguration(t *testing.T) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	r.get(t, mwc, r.fullname)
	if len(mwc.Webhooks) == 0 {
		t.Fatalf("MutatingWebhookConfiguration %s has no webhooks", mwc.Name)
	}
	return mwc
}

// waitCAInjected waits until every webhook of the release's MutatingWebhookConfiguration has a
// caBundle that holds the CA of ca.crt in the Secret, and until check accepts the Secret (nil:
// any with a ca.crt). It returns the Secret and the caBundle of the first webhook (all must
// hold that CA).
func (r *release) waitCAInjected(t *testing.T, secretName string, timeout time.Duration, check func(*corev1.Secret) bool) (*corev1.Secret, []*x509.Certificate) {
	t.Helper()
	ctx := context.Background()
	var (
		secret *corev1.Secret
		bundle []*x509.Certificate
		last   string
	)
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: secretName}, s); err != nil {
			last = err.Error()
			return false, client.IgnoreNotFound(err)
		}
		cas := framework.PEMCertificates(s.Data["ca.crt"])
		if len(cas) != 1 || (check != nil && !check(s)) {
			last = "the Secret has no (new) ca.crt yet"
			return false, nil
		}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := r.env.Client.Get(ctx, client.ObjectKey{Name: r.fullname}, mwc); err != nil {
			return false, err
		}
		for i, wh := range mwc.Webhooks {
			certs := framework.PEMCertificates(wh.ClientConfig.CABundle)
			if !slices.ContainsFunc(certs, cas[0].Equal) {
				last = "webhook " + wh.Name + "'s caBundle does not hold the CA of ca.crt"
				return false, nil
			}
			if i == 0 {
				bundle = certs
			}
		}
		secret = s
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for the CA of Secret %s/%s in the caBundle of MutatingWebhookConfiguration %s: %v (%s)", r.namespace, secretName, r.fullname, err, last)
	}
	return secret, bundle
}

// verifyServing checks that the Secret's tls.crt is a server certificate for each DNS name
// that verifies against the CAs of a caBundle: what the API server checks when it calls the
// webhook.
func verifyServing(t *testing.T, secret *corev1.Secret, bundle []*x509.Certificate, dnsNames ...string) {
	t.Helper()
	chain := framework.PEMCertificates(secret.Data[corev1.TLSCertKey])
	if len(chain) == 0 {
		t.Fatalf("Secret %s: no certificate in tls.crt", secret.Name)
	}
	if len(secret.Data[corev1.TLSPrivateKeyKey]) == 0 {
		t.Errorf("Secret %s: no tls.key", secret.Name)
	}
	roots := x509.NewCertPool()
	for _, ca := range bundle {
		roots.AddCert(ca)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	for _, name := range dnsNames {
		if _, err := chain[0].Verify(x509.VerifyOptions{
			DNSName: name, Roots: roots, Intermediates: intermediates,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			t.Errorf("Secret %s: tls.crt does not verify against the caBundle for %s: %v", secret.Name, name, err)
		}
	}
}
