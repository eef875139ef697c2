package framework_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestCertManager runs cert-manager's real controllers and issues certificates the way the
// guard's Certificates are issued in a cluster: a SelfSigned ClusterIssuer makes a CA, whose
// key pair backs a CA ClusterIssuer (Secret in the cluster resource namespace, cert-manager)
// and a CA Issuer (Secret in the namespace); both issue leaf certificates for a Service name.
// Then cert-manager's cainjector injects CAs into webhook configurations.
func TestCertManager(t *testing.T) {
	crds, err := framework.CertManagerCRDs()
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := cmapi.SchemeBuilder.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env := framework.Start(t, framework.Options{CRDDirectoryPaths: []string{crds}, Scheme: scheme})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	start := time.Now()
	stop, err := framework.StartCertManager(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cert-manager controllers ready after %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() { // framework.Start dumps the control-plane logs only
			if log, err := os.ReadFile(filepath.Join(env.Dir, "cert-manager-controller.log")); err == nil {
				lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
				t.Logf("=== last 80 lines of cert-manager-controller.log ===\n%s", strings.Join(lines[max(0, len(lines)-80):], "\n"))
			}
		}
	})
	c := env.Client

	for _, name := range []string{"cert-manager", "ns"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}

	// The roots: a SelfSigned ClusterIssuer, and CA certificates it issues into the cluster
	// resource namespace and into the test namespace.
	cmCreate(ctx, t, c, &cmapi.ClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "selfsigned"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	})
	for _, ns := range []string{"cert-manager", "ns"} {
		cmCreate(ctx, t, c, &cmapi.Certificate{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "root-ca"},
			Spec: cmapi.CertificateSpec{
				IsCA:       true,
				CommonName: "e2e root CA (" + ns + ")",
				SecretName: "root-ca",
				PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, Size: 256},
				IssuerRef:  cmmeta.IssuerReference{Kind: cmapi.ClusterIssuerKind, Name: "selfsigned"},
			},
		})
	}
	cmCreate(ctx, t, c, &cmapi.ClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "ca"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "root-ca"}}},
	})
	cmCreate(ctx, t, c, &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ca"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "root-ca"}}},
	})

	for _, kind := range []string{cmapi.ClusterIssuerKind, cmapi.IssuerKind} {
		t.Run(kind, func(t *testing.T) {
			name := "svc-" + map[string]string{cmapi.ClusterIssuerKind: "cluster", cmapi.IssuerKind: "ns"}[kind]
			crt := &cmapi.Certificate{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
				Spec: cmapi.CertificateSpec{
					DNSNames:   []string{"svc.ns.svc"},
					SecretName: name + "-tls",
					IssuerRef:  cmmeta.IssuerReference{Kind: kind, Name: "ca"},
				},
			}
			created := time.Now()
			cmCreate(ctx, t, c, crt)
			cmWaitReady(ctx, t, c, crt, 30*time.Second)
			t.Logf("leaf Certificate Ready %s after its creation", time.Since(created).Round(time.Millisecond))
			first := cmVerifySecret(ctx, t, c, "ns", crt.Spec.SecretName, "svc.ns.svc")

			// cert-manager restores a deleted Secret (possibly with the certificate it issued
			// last), and issues a new certificate when asked to renew.
			deleted := time.Now()
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: crt.Spec.SecretName}}
			if err := c.Delete(ctx, secret); err != nil {
				t.Fatal(err)
			}
			cmPoll(ctx, t, 30*time.Second, "the Secret "+crt.Spec.SecretName+" restored", func() (bool, error) {
				var s corev1.Secret
				err := c.Get(ctx, client.ObjectKeyFromObject(secret), &s)
				if apierrors.IsNotFound(err) {
					return false, nil
				}
				return err == nil && s.UID != first.secretUID && len(s.Data[corev1.TLSCertKey]) > 0, err
			})
			cmWaitReady(ctx, t, c, crt, 30*time.Second)
			cmVerifySecret(ctx, t, c, "ns", crt.Spec.SecretName, "svc.ns.svc")
			t.Logf("restored %s after the Secret was deleted", time.Since(deleted).Round(time.Millisecond))

			before := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(secret), before); err != nil {
				t.Fatal(err)
			}
			if _, err := framework.ReissueCertificate(ctx, c, "ns", crt.Name, before.Data[corev1.TLSCertKey]); err != nil {
				t.Fatalf("renewing: %v", err)
			}
			if second := cmVerifySecret(ctx, t, c, "ns", crt.Spec.SecretName, "svc.ns.svc"); second.serial == first.serial {
				t.Errorf("the renewed certificate has the first one's serial number (%s)", first.serial)
			}
		})
	}

	// cert-manager's cainjector injects the CA of a Certificate into the caBundle of the
	// webhook configurations that name it, and follows it when it changes.
	t.Run("cainjector", func(t *testing.T) { testCAInjector(ctx, t, c) })
}

// testCAInjector is TestCertManager/cainjector: it needs the SelfSigned ClusterIssuer
// "selfsigned" and the namespace "ns" of TestCertManager.
func testCAInjector(ctx context.Context, t *testing.T, c client.Client) {
	const (
		ns          = "ns"
		certificate = "webhook-serving"
		secretName  = "webhook-serving-tls"
	)
	// Webhooks that are never called (no namespace has the label they select), only injected
	// into: a MutatingWebhookConfiguration that names a Certificate, as the guard's install
	// does, and a ValidatingWebhookConfiguration that names it too.
	webhook := func(name string) (admissionregistrationv1.WebhookClientConfig, []admissionregistrationv1.RuleWithOperations, *metav1.LabelSelector) {
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/" + name)},
			[]admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
			}},
			&metav1.LabelSelector{MatchLabels: map[string]string{"e2e-never": "true"}}
	}
	var mutating []admissionregistrationv1.MutatingWebhook
	for _, name := range []string{"one.e2e.test", "two.e2e.test"} {
		cc, rules, sel := webhook(name)
		mutating = append(mutating, admissionregistrationv1.MutatingWebhook{
			Name: name, ClientConfig: cc, Rules: rules, NamespaceSelector: sel,
			SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
		})
	}
	cc, rules, sel := webhook("validate.e2e.test")
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-cainjector", Annotations: map[string]string{"cert-manager.io/inject-ca-from": ns + "/" + certificate}},
		Webhooks:   mutating,
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-cainjector", Annotations: map[string]string{"cert-manager.io/inject-ca-from": ns + "/" + certificate}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.e2e.test", ClientConfig: cc, Rules: rules, NamespaceSelector: sel,
			SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNone), AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
		}},
	}
	// The configurations first, as `helm install` may create them before cert-manager issues:
	// the cainjector must inject when the Certificate's Secret appears.
	cmCreate(ctx, t, c, mwc)
	cmCreate(ctx, t, c, vwc)
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), mwc)
		_ = c.Delete(context.Background(), vwc)
	})
	// Self-signed, with a new key on every issuance: ca.crt is the certificate itself, so
	// every renewal changes the CA the caBundles must follow.
	crt := &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: certificate},
		Spec: cmapi.CertificateSpec{
			DNSNames:   []string{"webhook.ns.svc"},
			SecretName: secretName,
			PrivateKey: &cmapi.CertificatePrivateKey{RotationPolicy: cmapi.RotationPolicyAlways},
			IssuerRef:  cmmeta.IssuerReference{Kind: cmapi.ClusterIssuerKind, Name: "selfsigned"},
		},
	}
	created := time.Now()
	cmCreate(ctx, t, c, crt)
	cmWaitReady(ctx, t, c, crt, 30*time.Second)

	// caBundles returns the caBundle of every webhook of both configurations.
	caBundles := func() (map[string][]byte, error) {
		out := map[string][]byte{}
		var m admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKeyFromObject(mwc), &m); err != nil {
			return nil, err
		}
		for _, wh := range m.Webhooks {
			out["MutatingWebhookConfiguration "+wh.Name] = wh.ClientConfig.CABundle
		}
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKeyFromObject(vwc), &v); err != nil {
			return nil, err
		}
		for _, wh := range v.Webhooks {
			out["ValidatingWebhookConfiguration "+wh.Name] = wh.ClientConfig.CABundle
		}
		return out, nil
	}
	// injected waits until every caBundle holds the CA of the Secret's ca.crt, and returns
	// that CA and one of the caBundles. cert-manager merges: a caBundle keeps the CAs it had
	// until they expire, so that a webhook still serving the previous certificate stays
	// trusted while its pods reload the new one.
	injected := func(what string) (ca *x509.Certificate, bundle []*x509.Certificate) {
		t.Helper()
		var last map[string][]byte
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			var s corev1.Secret
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: secretName}, &s); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			cas := framework.PEMCertificates(s.Data["ca.crt"])
			if len(cas) != 1 {
				return false, nil
			}
			ca = cas[0]
			var err error
			if last, err = caBundles(); err != nil {
				return false, err
			}
			for _, b := range last {
				bundle = framework.PEMCertificates(b)
				if !slices.ContainsFunc(bundle, ca.Equal) {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			var got []string
			for name, b := range last {
				got = append(got, fmt.Sprintf("%s: %d certificates", name, len(framework.PEMCertificates(b))))
			}
			t.Fatalf("%s: the caBundles do not hold the CA of the Secret's ca.crt: %v; %v", what, err, got)
		}
		return ca, bundle
	}
	first, bundle := injected("after the first issuance")
	if len(bundle) != 1 {
		t.Errorf("after the first issuance the caBundle holds %d certificates, want 1", len(bundle))
	}
	t.Logf("CA injected %s after the Certificate's creation", time.Since(created).Round(time.Millisecond))

	secret := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: secretName}, secret); err != nil {
		t.Fatal(err)
	}
	renewed := time.Now()
	if _, err := framework.ReissueCertificate(ctx, c, ns, certificate, secret.Data[corev1.TLSCertKey]); err != nil {
		t.Fatalf("renewing: %v", err)
	}
	second, bundle := injected("after a renewal")
	if second.Equal(first) {
		t.Fatal("the renewal kept the CA: nothing showed that the injection follows it")
	}
	// Whether the previous CA stays beside the new one is cert-manager's to choose, and it does
	// not always (a clean-clone run saw 1 CA, earlier runs 2): recorded, not asserted. That no
	// admission fails while the guard's serving certificate rotates is the guard's, and
	// test/e2e/faults proves it.
	if !slices.ContainsFunc(bundle, first.Equal) {
		t.Log("after the renewal the caBundle holds the new CA only")
	}
	t.Logf("new CA injected %s after the renewal was asked for; the caBundle holds %d CAs", time.Since(renewed).Round(time.Millisecond), len(bundle))
}

func cmCreate(ctx context.Context, t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
	}
}

// cmPoll polls cond every 50ms for up to timeout.
func cmPoll(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond()
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// cmWaitReady waits for the Ready condition of crt, for its current generation.
func cmWaitReady(ctx context.Context, t *testing.T, c client.Client, crt *cmapi.Certificate, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		var got cmapi.Certificate
		if err := c.Get(ctx, client.ObjectKeyFromObject(crt), &got); err != nil {
			return false, err
		}
		for _, cond := range got.Status.Conditions {
			if cond.Type == cmapi.CertificateConditionReady {
				last = fmt.Sprintf("%s: %s", cond.Reason, cond.Message)
				return cond.Status == cmmeta.ConditionTrue && cond.ObservedGeneration == got.Generation, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("Certificate %s not Ready within %s (last Ready condition: %q): %v", client.ObjectKeyFromObject(crt), timeout, last, err)
	}
}

type cmIssued struct {
	secretUID types.UID
	serial    string
}

// cmVerifySecret checks the Secret of a certificate: tls.crt, tls.key and ca.crt present, the
// key pair matches, and the certificate verifies against ca.crt as a server certificate for
// dnsName.
func cmVerifySecret(ctx context.Context, t *testing.T, c client.Client, ns, name, dnsName string) cmIssued {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey, "ca.crt"} {
		if len(s.Data[key]) == 0 {
			t.Fatalf("Secret %s/%s has no %s (keys: %v)", ns, name, key, cmKeys(s.Data))
		}
	}
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatalf("Secret %s/%s: tls.crt and tls.key: %v", ns, name, err)
	}
	leaf := pair.Leaf
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatalf("Secret %s/%s: no certificate in ca.crt", ns, name)
	}
	if leaf.IsCA {
		t.Errorf("Secret %s/%s: the leaf certificate is a CA", ns, name)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		DNSName:   dnsName,
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Fatalf("Secret %s/%s: tls.crt does not verify against ca.crt for %s: %v", ns, name, dnsName, err)
	}
	if block, _ := pem.Decode(s.Data["ca.crt"]); block != nil {
		if ca, err := x509.ParseCertificate(block.Bytes); err == nil && ca.Equal(leaf) {
			t.Errorf("Secret %s/%s: ca.crt is the leaf itself", ns, name)
		}
	}
	return cmIssued{secretUID: s.UID, serial: leaf.SerialNumber.String()}
}

func cmKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
