package packaging

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestHelmInstallCAInjected installs the chart with its defaults, where cert-manager is the
// source of the serving certificate, next to cert-manager's own controllers and cainjector,
// and checks that this source really works: the API server's trust for the webhook (every
// webhook's caBundle) becomes the CA of the issued Certificate's Secret (ca.crt), the served
// certificate verifies against it for the name the API server calls through the Service, and
// after a renewal (the chart's self-signed Issuer makes a new CA with every new key) the
// caBundle trusts the new certificate, and still the old one that pods may serve until they
// reload.
func TestHelmInstallCAInjected(t *testing.T) {
	env := controlPlane(t)
	ctx := context.Background()
	const namespace = "guard-cainjector"
	r := installChart(t, env, "cainjected", namespace, "--create-namespace")
	var (
		certificate = r.fullname + "-serving-cert"
		secretName  = r.fullname + "-webhook-tls"
		webhookHost = r.fullname + "-webhook." + namespace + ".svc"
		metricsHost = r.fullname + "-metrics." + namespace + ".svc"
	)

	mwc := r.webhookConfiguration(t)
	if got, want := mwc.Annotations[injectCAAnnotation], namespace+"/"+certificate; got != want {
		t.Fatalf("%s: %q, want %q", injectCAAnnotation, got, want)
	}
	// What Helm applied has no caBundle: whatever is there below was injected.
	for _, wh := range webhooksOf(t, newRendered(t, []byte(r.helm(t, "get", "manifest", r.name)))) {
		if len(wh.ClientConfig.CABundle) != 0 {
			t.Fatalf("the release's webhook %s has a caBundle of its own: nothing would show the injection", wh.Name)
		}
	}

	start := time.Now()
	checkIssued(t, env, namespace, certificate, secretName, webhookHost, metricsHost)
	secret, bundle := r.waitCAInjected(t, secretName, time.Minute, nil)
	t.Logf("the CA of %s is in every caBundle %s after helm install", secretName, time.Since(start).Round(100*time.Millisecond))
	if len(bundle) != 1 {
		t.Errorf("the first caBundle holds %d certificates, want the one CA", len(bundle))
	}
	verifyServing(t, secret, bundle, webhookHost, webhookHost+".cluster.local")
	first := framework.PEMCertificates(secret.Data["ca.crt"])[0]

	// A renewal: a new key, so (self-signed) a new CA, which the caBundle must follow.
	start = time.Now()
	if _, err := framework.ReissueCertificate(ctx, env.Client, namespace, certificate, secret.Data[corev1.TLSCertKey]); err != nil {
		t.Fatalf("renewing %s: %v", certificate, err)
	}
	renewed, bundle := r.waitCAInjected(t, secretName, time.Minute, func(s *corev1.Secret) bool {
		return !bytes.Equal(s.Data["ca.crt"], secret.Data["ca.crt"])
	})
	t.Logf("the renewed CA is in every caBundle %s after the renewal was asked for", time.Since(start).Round(100*time.Millisecond))
	if framework.PEMCertificates(renewed.Data["ca.crt"])[0].Equal(first) {
		t.Fatal("the renewal kept the CA: nothing showed that the caBundle follows it")
	}
	verifyServing(t, renewed, bundle, webhookHost)
	if !slices.ContainsFunc(bundle, first.Equal) {
		t.Error("after the renewal the caBundle no longer trusts the previous certificate, which replicas serve until they reload")
	}
	verifyServing(t, secret, bundle, webhookHost)
}
