package faults

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

var opted = map[string]string{keys.AnnotationSecure: "true"}

// TestGuardDownDuringInstall: with the guard down (nothing listens where the API server calls
// it), an ECK operator installed into an opted-in namespace is admitted as released
// (failurePolicy Ignore: not blocked, not secured). When the guard starts, its controller
// brings the operator to the end state; the test reports how long that takes.
func TestGuardDownDuringInstall(t *testing.T) {
	// A Secret of the operator's own (not checked by the guard): compliance wants one mounted.
	ns := env.Namespace(t, "e2e-down", map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "operator-tls"}, nil)
	began := time.Now()
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns))
	applied := time.Since(began)
	o := env.Operator(t, ns)
	if _, findings := compliance.Operator(o.Op, o.Template, o.ConfigMap); len(findings) == 0 {
		t.Fatal("the operator was secured with the guard down: the test's premise is wrong")
	}

	began = time.Now()
	stop := startGuard(t) // webhook and controller
	started := time.Since(began)
	var last []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last: status %q, findings %v", o.Object.GetAnnotations()[keys.AnnotationStatus], last)
		}
	})
	framework.EventuallyWithin(t, "the operator to be secured after the guard starts", time.Minute, func() (bool, error) {
		o = env.Operator(t, ns)
		_, last = compliance.Operator(o.Op, o.Template, o.ConfigMap)
		return len(last) == 0 && o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	healed := time.Since(began)
	t.Logf("guard down: kubectl apply admitted in %s (not secured); guard started (cache synced, webhook serving) in %s; operator secured %s after the start",
		applied.Round(time.Millisecond), started.Round(time.Millisecond), healed.Round(time.Millisecond))
	stop()
}

// TestServingCertRotationUnderLoad: while admissions flow (server-side dry-run creates, 4 at
// a time), the guard's serving certificate is replaced by one from a new CA: the new CA is
// added to the webhook configuration's caBundle, the files in the certificate directory are
// rewritten (as a Secret update does), the guard serves the new certificate without a
// restart, and the old CA is removed. Every admission of the run must come back secured:
// none failed, none skipped (a TLS failure would fail open, unsecured).
func TestServingCertRotationUnderLoad(t *testing.T) {
	stop := startGuard(t, "--controller=false")
	defer stop()
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-rotate", opted, nil)
	manifest := framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns)
	env.MustKubectl(t, "apply", "-f", manifest)
	sts := statefulSetOf(t, manifest)

	wh := env.Environment.WebhookInstallOptions
	certPath, keyPath := filepath.Join(wh.LocalServingCertDir, "tls.crt"), filepath.Join(wh.LocalServingCertDir, "tls.key")
	oldCert, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	oldCA := wh.LocalServingCAData
	leaf := framework.PEMCertificates(oldCert)[0]
	newCA, newCert, newKey := newChain(t, leaf.DNSNames, leaf.IPAddresses)
	t.Cleanup(func() {
		_ = os.WriteFile(keyPath, oldKey, 0o600)
		_ = os.WriteFile(certPath, oldCert, 0o600)
		setCABundle(t, oldCA)
	})

	// The load, until stopped (bounded: 2 minutes at most).
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithTimeout(ctx, 2*time.Minute)
	defer stopLoad()
	var total, failed, unsecured atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				obj := sts.DeepCopy()
				obj.Name = fmt.Sprintf("rotate-%d-%d", w, i)
				err := c.Create(loadCtx, obj, client.DryRunAll)
				if loadCtx.Err() != nil {
					return
				}
				total.Add(1)
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case !secured(obj):
					unsecured.Add(1)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)

	setCABundle(t, append(append([]byte{}, oldCA...), newCA...))
	time.Sleep(2 * time.Second) // the API server reloads webhook configurations within a second
	rotated := time.Now()
	if err := os.WriteFile(keyPath, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, newCert, 0o600); err != nil {
		t.Fatal(err)
	}
	framework.EventuallyWithin(t, "the guard to serve the new certificate", 30*time.Second, func() (bool, error) {
		conn, err := tls.Dial("tcp", net.JoinHostPort(wh.LocalServingHost, fmt.Sprint(wh.LocalServingPort)), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			return false, nil
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Issuer.CommonName == "e2e-rotated-ca", nil
	})
	pickedUp := time.Since(rotated)
	setCABundle(t, newCA)
	time.Sleep(3 * time.Second)
	stopLoad()
	wg.Wait()

	t.Logf("rotation under load: new certificate served %s after the files changed, without a restart; %d admissions during the run, %d failed, %d not secured",
		pickedUp.Round(time.Millisecond), total.Load(), failed.Load(), unsecured.Load())
	if total.Load() < 100 {
		t.Errorf("only %d admissions during the run", total.Load())
	}
	if failed.Load() > 0 || unsecured.Load() > 0 {
		t.Errorf("%d failed (first: %v), %d not secured during the rotation", failed.Load(), firstErr.Load(), unsecured.Load())
	}
}

func statefulSetOf(t *testing.T, manifest string) *appsv1.StatefulSet {
	t.Helper()
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.Contains(doc, "\nkind: StatefulSet\n") {
			sts := &appsv1.StatefulSet{}
			if err := yaml.Unmarshal([]byte(doc), sts); err != nil {
				t.Fatal(err)
			}
			return sts
		}
	}
	t.Fatal("no StatefulSet in the fixture")
	return nil
}

func secured(sts *appsv1.StatefulSet) bool {
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if c.Name == "manager" && p.Name == keys.PortName {
				return true
			}
		}
	}
	return false
}

// setCABundle sets the caBundle of every webhook of every installed configuration.
func setCABundle(t *testing.T, bundle []byte) {
	t.Helper()
	ctx := context.Background()
	for _, m := range env.Environment.WebhookInstallOptions.MutatingWebhooks {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: m.Name}, cfg); err != nil {
			t.Fatal(err)
		}
		for i := range cfg.Webhooks {
			cfg.Webhooks[i].ClientConfig.CABundle = bundle
		}
		if err := env.Client.Update(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

// newChain makes a CA and a serving certificate it signs, for the names and addresses of the
// current one; PEM.
func newChain(t *testing.T, dns []string, ips []net.IP) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(100), Subject: pkix.Name{CommonName: "e2e-rotated-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(101), Subject: pkix.Name{CommonName: "guard"}, DNSNames: dns, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
