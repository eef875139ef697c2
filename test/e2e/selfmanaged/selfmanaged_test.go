// Package selfmanaged runs the guard with --webhook-cert-mode=self-managed against a real
// API server: the guard makes its own CA and serving certificate, stores them in one Secret,
// injects the CA into its MutatingWebhookConfiguration, and the API server then calls it over
// TLS it verifies.
package selfmanaged

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var env *framework.Env

const guardNamespace = "eck-metrics-guard"

func TestMain(m *testing.M) {
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		panic(err)
	}
	os.Exit(framework.RunSuite(m, framework.Options{
		// The API server calls https://localhost:<port>, a name the guard's own certificate
		// can carry (it holds DNS names only).
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}, LocalServingHostExternalName: "localhost"},
	}, &env, nil))
}

// TestSelfManagedCertificate: the caBundle becomes the guard's own CA, and a write through
// the API server is mutated, so the API server verified the guard's certificate.
func TestSelfManagedCertificate(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: guardNamespace, Labels: map[string]string{"metrics-guard.eck.dev/exclude": "true"}}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// The install creates the Secret empty (as Gatekeeper's does); the guard fills it.
	empty := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "eck-metrics-guard-webhook-tls", Namespace: guardNamespace}}
	if err := env.Client.Create(ctx, empty); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	stop := framework.MountSecret(env.Client, guardNamespace, "eck-metrics-guard-webhook-tls", certDir)
	defer stop()

	before := caBundle(t)
	if err := env.StartGuard(func(o *app.ServerOptions) {
		o.Controller.Enabled = false
		o.Webhook.CertMode = app.CertModeSelfManaged
		o.Webhook.Namespace = guardNamespace
		o.Webhook.CertDir = certDir
		o.Webhook.ExtraDNSNames = []string{"localhost"}
	}); err != nil {
		t.Fatal(err)
	}

	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: guardNamespace, Name: "eck-metrics-guard-webhook-tls"}, secret); err != nil {
		t.Fatal(err)
	}
	after := caBundle(t)
	if bytes.Equal(after, before) || !bytes.Equal(after, secret.Data["ca.crt"]) {
		t.Fatalf("the caBundle is not the guard's own CA (changed: %v)", !bytes.Equal(after, before))
	}

	// A write the webhook must mutate: only a webhook the API server trusts can do it.
	opted := env.Namespace(t, "e2e-selfmanaged", map[string]string{keys.AnnotationSecure: "true"}, nil)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: opted}, Data: map[string]string{"eck.yaml": "metrics-port: 0\n"}}
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["eck.yaml"], "metrics-secure: true") {
		t.Errorf("not mutated, so the API server could not call the guard: %q", cm.Data["eck.yaml"])
	}
}

func caBundle(t *testing.T) []byte {
	t.Helper()
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: "eck-metrics-guard"}, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Webhooks[0].ClientConfig.CABundle
}
