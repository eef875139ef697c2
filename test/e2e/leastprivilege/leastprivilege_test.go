package leastprivilege

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestWholeJobWithItsOwnRBAC: with nothing but the generated RBAC, the guard wins leader
// election (a Lease in its namespace), secures an operator of an opted-in namespace through
// the webhook and the controller (ConfigMap, pod template, status), creates its metrics
// Service, Certificate and ServiceMonitor, adds its ServiceAccount to the one auth-delegator
// binding (creating it), writes a policy's status, and serves its own metrics to a scraper
// allowed to (TokenReview and SubjectAccessReview as itself).
func TestWholeJobWithItsOwnRBAC(t *testing.T) {
	ctx := context.Background()

	framework.EventuallyWithin(t, "the guard's leader election Lease", time.Minute, func() (bool, error) {
		lease := &coordinationv1.Lease{}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: guardNamespace, Name: "eck-metrics-guard.metrics-guard.eck.dev"}, lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", client.IgnoreNotFound(err)
	})

	ns := env.Namespace(t, "e2e-lp", map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "e2e-ca"}, map[string]string{"team": "lp"})
	for _, o := range []client.Object{
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}},
		&cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ca", Namespace: ns}, Spec: cmv1.CertificateSpec{
			IsCA: true, CommonName: "e2e-ca", SecretName: "e2e-ca",
			IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer", Group: "cert-manager.io"},
		}},
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ca", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: "e2e-ca"}}}},
		&v1alpha1.MetricsSecurityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "lp"}, Spec: v1alpha1.MetricsSecurityPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "lp"}}, Mode: v1alpha1.ModeAudit}},
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))

	framework.EventuallyWithin(t, "the operator to be secured", time.Minute, func() (bool, error) {
		return env.Operator(t, ns).Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	o := env.Operator(t, ns)
	name := o.Op.Name + "-metrics-guard"
	for _, obj := range []client.Object{&corev1.Service{}, &cmv1.Certificate{}} {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			t.Errorf("%T %s: %v", obj, name, err)
		}
	}
	framework.Eventually(t, "the operator's ServiceAccount in the auth-delegator binding", func() (bool, error) {
		crb := &rbacv1.ClusterRoleBinding{}
		err := env.Client.Get(ctx, client.ObjectKey{Name: controller.DefaultBindingName}, crb)
		return err == nil && slices.Contains(crb.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: o.Op.ServiceAccount, Namespace: ns}), client.IgnoreNotFound(err)
	})
	framework.EventuallyWithin(t, "the policy's status", time.Minute, func() (bool, error) {
		p := &v1alpha1.MetricsSecurityPolicy{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "lp"}, p); err != nil {
			return false, err
		}
		return p.Status.Covered == 1 && p.Status.Compliant == 1, nil
	})

	// Its own metrics, to a scraper allowed to get /metrics.
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "scraper", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "lp-metrics-reader"}, Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "lp-metrics-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "scraper", Namespace: ns}}}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	token, err := env.ServiceAccountToken(ctx, ns, "scraper")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed
	framework.Eventually(t, "200 from the guard's metrics endpoint", func() (bool, error) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK, nil
	})
}
