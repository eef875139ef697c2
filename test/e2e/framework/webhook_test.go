package framework_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestWebhookRoundTrip checks that a webhook configuration with a service reference (whose
// path must start with "/") reaches a webhook server run with Env.Go.
func TestWebhookRoundTrip(t *testing.T) {
	env := framework.Start(t, framework.Options{
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{{
				ObjectMeta: metav1.ObjectMeta{Name: "smoke"},
				Webhooks: []admissionregistrationv1.MutatingWebhook{{
					Name: "smoke.metrics-guard.eck.dev",
					ClientConfig: admissionregistrationv1.WebhookClientConfig{
						Service: &admissionregistrationv1.ServiceReference{
							Namespace: "system", Name: "webhook", Path: ptr.To("/mutate-smoke"),
						},
					},
					Rules: []admissionregistrationv1.RuleWithOperations{{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
						},
					}},
					ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"smoke": "true"}},
					FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
					SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
					AdmissionReviewVersions: []string{"v1"},
				}},
			}},
		},
	})
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := env.Client.Get(t.Context(), types.NamespacedName{Name: "smoke"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if url := ptr.Deref(cfg.Webhooks[0].ClientConfig.URL, ""); strings.Contains(strings.TrimPrefix(url, "https://"), "//") {
		t.Errorf("webhook URL %q has a double slash", url)
	}

	o := env.Environment.WebhookInstallOptions
	server := webhook.NewServer(webhook.Options{Host: o.LocalServingHost, Port: o.LocalServingPort, CertDir: o.LocalServingCertDir})
	server.Register("/mutate-smoke", &admission.Webhook{Handler: admission.HandlerFunc(
		func(context.Context, admission.Request) admission.Response {
			return admission.Denied("denied by the smoke webhook")
		})})
	env.Go(server.Start)
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return server.StartedChecker()(&http.Request{}) == nil, nil
	}); err != nil {
		t.Fatalf("webhook server did not start: %v", err)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "smoke", Labels: map[string]string{"smoke": "true"}}}
	err := env.Client.Create(t.Context(), cm)
	if err == nil || !strings.Contains(err.Error(), "denied by the smoke webhook") {
		t.Fatalf("creating a ConfigMap the webhook denies: err = %v", err)
	}
}
