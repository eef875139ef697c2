package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestIssuerMissingThenSecretDeleted: an operator opted in with an issuer that does not exist
// waits (its status says for which Secret) and is secured once the issuer is created; then
// its certificate Secret is deleted, and cert-manager's Certificate and the guard bring it
// back. Real cert-manager controllers; the test reports how long each step takes.
func TestIssuerMissingThenSecretDeleted(t *testing.T) {
	stop := startGuard(t)
	defer stop()
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-issuer", map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "later-ca"}, nil)
	began := time.Now()
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	status := func() string { return env.Operator(t, ns).Object.GetAnnotations()[keys.AnnotationStatus] }
	framework.EventuallyWithin(t, "the waiting status", time.Minute, func() (bool, error) {
		return strings.HasPrefix(status(), "waiting for certificate Secret elastic-operator-metrics-guard-tls"), nil
	})
	waiting := time.Since(began)

	began = time.Now()
	for _, o := range []client.Object{
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}},
		&cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "later-ca", Namespace: ns}, Spec: cmv1.CertificateSpec{
			IsCA: true, CommonName: "later-ca", SecretName: "later-ca",
			IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer", Group: "cert-manager.io"},
		}},
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "later-ca", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: "later-ca"}}}},
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	framework.EventuallyWithin(t, "the operator to be secured once the issuer exists", 2*time.Minute, func() (bool, error) {
		return status() == "secured", nil
	})
	issued := time.Since(began)

	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: ns, Name: "elastic-operator-metrics-guard-tls"}
	if err := env.Client.Get(ctx, key, secret); err != nil {
		t.Fatal(err)
	}
	oldUID := secret.UID
	began = time.Now()
	if err := env.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	framework.EventuallyWithin(t, "the Secret to be issued again and the operator secured", 2*time.Minute, func() (bool, error) {
		err := env.Client.Get(ctx, key, secret)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && secret.UID != oldUID && len(secret.Data["tls.crt"]) > 0 && status() == "secured", err
	})
	restored := time.Since(began)
	t.Logf("issuer missing: waiting status after %s; secured %s after the issuer was created; certificate Secret deleted: issued again and secured after %s",
		waiting.Round(time.Millisecond), issued.Round(time.Millisecond), restored.Round(time.Millisecond))
}
