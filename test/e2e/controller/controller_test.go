package controller

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// caIssuer makes, in ns, the chain a platform team would: a SelfSigned Issuer, a CA
// Certificate from it, and a CA Issuer named "e2e-ca" that signs with that CA.
func caIssuer(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	objs := []client.Object{
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}},
		&cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ca", Namespace: ns}, Spec: cmv1.CertificateSpec{
			IsCA: true, CommonName: "e2e-ca", SecretName: "e2e-ca",
			IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer", Group: "cert-manager.io"},
		}},
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ca", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: "e2e-ca"}}}},
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

var guarded = map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "e2e-ca"}

// TestCertificateIssuedMountedAndRenewed: an ECK operator opted in with a CA issuer gets a
// Certificate that cert-manager really issues; the leaf verifies against ca.crt for the
// ServiceMonitor's serverName; the Pod mounts it; a re-issue keeps the mount valid; and
// deleting the StatefulSet removes every companion.
func TestCertificateIssuedMountedAndRenewed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-cert", guarded, nil)
	caIssuer(t, ns)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	o := env.Operator(t, ns)
	name := o.Op.Name + "-metrics-guard"

	cert, secret, sm := issued(t, ns, name, 30*time.Second)
	serverName := *sm.Spec.Endpoints[0].TLSConfig.ServerName
	if serverName != name+"."+ns+".svc" {
		t.Errorf("ServiceMonitor serverName = %s", serverName)
	}
	first := verifyLeaf(t, secret, serverName)

	// The StatefulSet and its Pod mount that Secret; the controller says it is secured.
	framework.Eventually(t, "the StatefulSet to be marked secured", func() (bool, error) {
		o = env.Operator(t, ns)
		return o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	if _, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap); len(findings) > 0 {
		t.Errorf("not in the end state: %v", findings)
	}
	pod := &corev1.Pod{}
	framework.Eventually(t, "the operator Pod", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Op.Name + "-0"}, pod)
		return err == nil, client.IgnoreNotFound(err)
	})
	if !mountsSecret(pod.Spec, secret.Name) {
		t.Errorf("the Pod does not mount Secret %s", secret.Name)
	}

	// The metrics Service and the auth-delegator binding exist.
	svc := &corev1.Service{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
		t.Fatalf("no metrics Service: %v", err)
	}
	var services corev1.ServiceList
	_ = env.Client.List(ctx, &services, client.InNamespace(ns))
	if findings := compliance.Service(o.Op, 8081, services.Items); len(findings) > 0 {
		t.Errorf("metrics Service: %v", findings)
	}
	waitForSubject(t, ns, o.Op.ServiceAccount, true)

	// The Secret is deleted: cert-manager restores it, and the StatefulSet still mounts it.
	if err := env.Client.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, "the Secret to be restored", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: cert.Spec.SecretName}, secret)
		return err == nil && len(secret.Data["tls.crt"]) > 0, client.IgnoreNotFound(err)
	})
	verifyLeaf(t, secret, serverName)

	// Renewal: a new certificate lands in the same Secret, which the StatefulSet still mounts.
	secret, err := framework.ReissueCertificate(ctx, env.Client, ns, name, secret.Data["tls.crt"])
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	if verifyLeaf(t, secret, serverName).SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("the renewed certificate has the first one's serial number")
	}
	if o := env.Operator(t, ns); !mountsSecret(o.Template.Spec, secret.Name) {
		t.Error("after renewal the StatefulSet no longer mounts the Secret")
	}

	// Deleting the operator removes its companions: its ServiceAccount from the binding by the
	// controller, the namespaced ones by garbage collection (owner references).
	if err := env.Client.Delete(ctx, o.Object, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	waitForSubject(t, ns, o.Op.ServiceAccount, false)
	for _, obj := range []client.Object{svc, sm, &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}} {
		framework.Eventually(t, fmt.Sprintf("%T %s to be deleted", obj, obj.GetName()), func() (bool, error) {
			err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
	}
}

// TestPodMonitorWithScrapeSettings: the scrape settings of a namespace that runs a
// kube-prometheus-stack-like Prometheus (selects monitors by label, forbids file access)
// give a PodMonitor, accepted by the Prometheus Operator's real CRD schema, that scrapes the
// pods over verified TLS with the token of a Secret and carries the label Prometheus selects.
func TestPodMonitorWithScrapeSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-podmonitor", map[string]string{
		keys.AnnotationSecure: "true", keys.AnnotationIssuer: "e2e-ca",
		keys.AnnotationMonitor: "PodMonitor", keys.AnnotationMonitorLabels: "release=kube-prometheus-stack",
		keys.AnnotationScrapeInterval: "30s", keys.AnnotationScrapeTimeout: "10s", keys.AnnotationScrapeTokenSecret: "scraper-token",
	}, nil)
	caIssuer(t, ns)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.4.0.yaml"), ns))
	o := env.Operator(t, ns)
	name := o.Op.Name + "-metrics-guard"
	cert := readyCertificate(t, ns, name, 30*time.Second)

	pm := &monitoringv1.PodMonitor{}
	framework.Eventually(t, "the PodMonitor", func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pm)
		return err == nil, client.IgnoreNotFound(err)
	})
	ep := pm.Spec.PodMetricsEndpoints[0]
	if pm.Labels["release"] != "kube-prometheus-stack" || ep.Port == nil || *ep.Port != "metrics" || ep.Scheme == nil || *ep.Scheme != "https" ||
		ep.Interval != "30s" || ep.ScrapeTimeout != "10s" {
		t.Errorf("PodMonitor = %+v %+v", pm.ObjectMeta, pm.Spec)
	}
	if a := ep.Authorization; a == nil || a.Credentials == nil || a.Credentials.Name != "scraper-token" || a.Credentials.Key != "token" {
		t.Errorf("authorization = %+v", ep.Authorization)
	}
	if tls := ep.TLSConfig; tls == nil || tls.ServerName == nil || *tls.ServerName != name+"."+ns+".svc" || tls.CA.Secret == nil || tls.CA.Secret.Name != cert.Spec.SecretName ||
		tls.InsecureSkipVerify != nil {
		t.Errorf("tlsConfig = %+v", ep.TLSConfig)
	}
	if !metav1.IsControlledBy(pm, o.Object) {
		t.Errorf("the PodMonitor is not owned by the StatefulSet: %+v", pm.OwnerReferences)
	}
	sm := &monitoringv1.ServiceMonitor{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sm); !apierrors.IsNotFound(err) {
		t.Errorf("a ServiceMonitor beside the PodMonitor: %v", err)
	}
}

// TestWaitingForCertificate: with an issuer that does not exist, the operator's Pod waits for
// the Secret (the mount is not optional) and the StatefulSet says so.
func TestWaitingForCertificate(t *testing.T) {
	t.Parallel()
	ns := env.Namespace(t, "e2e-wait", map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "missing"}, nil)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	framework.Eventually(t, "the waiting annotation", func() (bool, error) {
		o := env.Operator(t, ns)
		return strings.HasPrefix(o.Object.GetAnnotations()[keys.AnnotationStatus], "waiting for certificate Secret elastic-operator-metrics-guard-tls"), nil
	})
	framework.Eventually(t, "a WaitingForCertificate event", func() (bool, error) {
		out, _ := env.MustKubectl(t, "get", "events.events.k8s.io", "-n", ns, "-o", "jsonpath={.items[*].reason}")
		return strings.Contains(out, "WaitingForCertificate"), nil
	})
}

// TestRetrofit: operators that existed before their namespace opted in are secured by the
// controller, without waiting for anyone to write them: a Helm-installed StatefulSet, and an
// OLM-style Deployment whose existing metrics Service is labelled.
func TestRetrofit(t *testing.T) {
	for name, path := range map[string]string{
		"helm StatefulSet": framework.ECKManifest(t, "helm-3.5.0-default.yaml"),
		"olm Deployment":   filepath.Join(repo, "test", "testdata", "inject", "olm-deployment.yaml"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := env.Namespace(t, "e2e-retrofit", nil, nil)
			caIssuer(t, ns)
			env.MustKubectl(t, "apply", "-f", framework.Manifest(t, path, ns))
			o := env.Operator(t, ns)
			if _, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap); len(findings) == 0 {
				t.Fatal("secured before the namespace opted in")
			}
			nsObj := &corev1.Namespace{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
				t.Fatal(err)
			}
			nsObj.Annotations = guarded
			if err := env.Client.Update(ctx, nsObj); err != nil {
				t.Fatal(err)
			}
			eventuallyCompliant(t, ns)
			o = env.Operator(t, ns)
			port, _ := compliance.Operator(o.Op, o.Template, o.ConfigMap)
			var services corev1.ServiceList
			if err := env.Client.List(ctx, &services, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
			if findings := compliance.Service(o.Op, port, services.Items); len(findings) > 0 {
				t.Errorf("metrics Service: %v", findings)
			}
		})
	}
}

// TestHeal: objects the webhook never saw (its namespace is excluded from it, as during an
// outage) and later edits that bypass it converge to the end state.
func TestHeal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-heal", guarded, map[string]string{"metrics-guard.eck.dev/exclude": "true"})
	caIssuer(t, ns)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.4.0.yaml"), ns))
	eventuallyCompliant(t, ns)

	// Someone turns secure metrics off again, unseen by the webhook.
	o := env.Operator(t, ns)
	cm := o.ConfigMap.DeepCopy()
	cm.Data["eck.yaml"] = strings.Replace(cm.Data["eck.yaml"], "metrics-secure: true", "metrics-secure: false", 1)
	if err := env.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	sts := o.Object.(*appsv1.StatefulSet).DeepCopy()
	sts.Spec.Template.Spec.Containers[0].Ports = sts.Spec.Template.Spec.Containers[0].Ports[:1]
	if err := env.Client.Update(ctx, sts); err != nil {
		t.Fatal(err)
	}
	eventuallyCompliant(t, ns)
}

// issued waits for the guard's Certificate of an operator to be Ready and returns it, its
// Secret, and the ServiceMonitor, which must verify against that Secret's CA with a serverName.
func issued(t *testing.T, ns, name string, timeout time.Duration) (*cmv1.Certificate, *corev1.Secret, *monitoringv1.ServiceMonitor) {
	t.Helper()
	ctx := context.Background()
	cert := readyCertificate(t, ns, name, timeout)
	secret := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: cert.Spec.SecretName}, secret); err != nil {
		t.Fatal(err)
	}
	sm := &monitoringv1.ServiceMonitor{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, sm); err != nil {
		t.Fatalf("no ServiceMonitor: %v", err)
	}
	tls := sm.Spec.Endpoints[0].TLSConfig
	if tls == nil || tls.ServerName == nil || tls.CA.Secret == nil || tls.CA.Secret.Name != secret.Name {
		t.Fatalf("the ServiceMonitor does not verify against the Secret %s: %+v", secret.Name, tls)
	}
	return cert, secret, sm
}

// readyCertificate waits for a Certificate to be Ready and returns it.
func readyCertificate(t *testing.T, ns, name string, timeout time.Duration) *cmv1.Certificate {
	t.Helper()
	cert := &cmv1.Certificate{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, cert); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, c := range cert.Status.Conditions {
			if c.Type == cmv1.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("Certificate %s/%s not Ready: %v", ns, name, err)
	}
	return cert
}

func eventuallyCompliant(t *testing.T, ns string) {
	t.Helper()
	var last []string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		o := env.Operator(t, ns)
		_, last = compliance.Operator(o.Op, o.Template, o.ConfigMap)
		return len(last) == 0 && o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	if err != nil {
		t.Fatalf("not in the end state: %v", last)
	}
}

func mountsSecret(spec corev1.PodSpec, secret string) bool {
	for _, v := range spec.Volumes {
		if v.Name == keys.VolumeName && v.Secret != nil && v.Secret.SecretName == secret {
			return true
		}
	}
	return false
}

// verifyLeaf checks the Secret's tls.crt against its ca.crt for serverName.
func verifyLeaf(t *testing.T, secret *corev1.Secret, serverName string) *x509.Certificate {
	t.Helper()
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(secret.Data[k]) == 0 {
			t.Fatalf("Secret %s has no %s", secret.Name, k)
		}
	}
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		t.Fatal("tls.crt is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data["ca.crt"]) {
		t.Fatal("ca.crt holds no certificate")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: serverName}); err != nil {
		t.Errorf("the leaf does not verify against ca.crt for %s: %v", serverName, err)
	}
	return leaf
}
