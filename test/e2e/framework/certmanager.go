package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certManagerModule is the Go module of cert-manager, pinned in test/tools/certmanager/go.mod.
const certManagerModule = "github.com/cert-manager/cert-manager"

// certManagerReadyMessage is logged by cert-manager-controller once its informers have synced
// (test/tools/certmanager/main.go, readyMessage).
const certManagerReadyMessage = "cert-manager controllers ready"

// CertManagerCRDs is the directory of cert-manager's CustomResourceDefinitions, from the
// cert-manager module pinned in test/tools/certmanager/go.mod (downloaded into the Go module
// cache on first use). Install them with Options.CRDDirectoryPaths before StartCertManager.
func CertManagerCRDs() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "test", "tools", "certmanager")
	goCmd := func(args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("go %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	modDir, err := goCmd("list", "-m", "-f", "{{.Dir}}", certManagerModule)
	if err == nil && modDir == "" { // not in the module cache yet
		if _, err = goCmd("mod", "download", certManagerModule); err == nil {
			modDir, err = goCmd("list", "-m", "-f", "{{.Dir}}", certManagerModule)
		}
	}
	if err != nil {
		return "", err
	}
	crds := filepath.Join(modDir, "deploy", "crds")
	if _, err := os.Stat(crds); err != nil {
		return "", fmt.Errorf("cert-manager CRDs: %w", err)
	}
	return crds, nil
}

// StartCertManager runs cert-manager's own controllers (SelfSigned and CA issuers; see
// test/tools/certmanager) and its cainjector against the control plane, as
// cert-manager-controller from e.BinDir (<repo>/bin unless $KUBEBUILDER_ASSETS says otherwise;
// built by `make cert-manager`), as a cert-manager install would run them: webhook
// configurations, APIServices and CRDs annotated `cert-manager.io/inject-ca-from` get the CA of
// the Certificate they name in their caBundle. The cert-manager CRDs must already be installed
// (Options.CRDDirectoryPaths: CertManagerCRDs()). ClusterIssuers read their Secrets from the
// namespace cert-manager.
//
// It returns once the informers of the controllers and of the cainjector have synced, or fails
// when ctx ends first. The
// process logs to cert-manager-controller.log in e.Dir. stop sends SIGTERM and waits (SIGKILL
// after 10s); it returns an error, with the tail of the log, if the process exited on its own.
// e.Stop also calls stop, before it stops the control plane, so calling stop is only needed
// to stop cert-manager earlier or to check its error; only the first call reports it.
func StartCertManager(ctx context.Context, e *Env) (stop func() error, err error) {
	path := filepath.Join(e.BinDir, "cert-manager-controller")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("run `make cert-manager` first: %s not found", path)
	}
	args := []string{
		"--kubeconfig=" + e.Kubeconfig,
		"--cluster-resource-namespace=cert-manager",
		"--leader-elect=false",
		"--cainjector=true",
		"--v=2",
	}
	p, err := startProcess(e, "cert-manager-controller", "cert-manager-controller.log", path, args, nil)
	if err != nil {
		return nil, err
	}
	p.cleanStop = true
	stop = p.stop
	logPath := p.logPath

	// Wait for the ready message in the log.
	for {
		data, err := os.ReadFile(logPath)
		if err != nil {
			_ = stop()
			return nil, err
		}
		if strings.Contains(string(data), certManagerReadyMessage) {
			break
		}
		select {
		case <-p.exited:
			// A binary built before --cainjector existed exits at once: rebuild it.
			return nil, fmt.Errorf("%w (if it is older than its source, run `make cert-manager`)", p.failure("exited before it was ready"))
		case <-ctx.Done():
			_ = stop()
			return nil, fmt.Errorf("cert-manager-controller not ready: %w; last lines of %s:\n%s", ctx.Err(), logPath, tail(logPath, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Stopped by e.Stop before the control plane; returns nil if stop was called already.
	e.Go(func(ctx context.Context) error {
		<-ctx.Done()
		return stop()
	})
	return stop, nil
}

// RenewCertificate asks cert-manager to issue a Certificate again now, as `cmctl renew` does:
// it sets the Issuing condition. (Deleting the Secret is not a renewal: cert-manager may
// restore the Secret from the certificate it issued last.)
func RenewCertificate(ctx context.Context, c client.Client, namespace, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		crt := &cmapi.Certificate{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, crt); err != nil {
			return err
		}
		issuing := cmapi.CertificateCondition{
			Type:               cmapi.CertificateConditionIssuing,
			Status:             cmmeta.ConditionTrue,
			Reason:             "ManuallyTriggered",
			Message:            "renewal requested by the end-to-end tests",
			LastTransitionTime: &metav1.Time{Time: time.Now()},
		}
		conditions := []cmapi.CertificateCondition{issuing}
		for _, cond := range crt.Status.Conditions {
			if cond.Type != cmapi.CertificateConditionIssuing {
				conditions = append(conditions, cond)
			}
		}
		crt.Status.Conditions = conditions
		return c.Status().Update(ctx, crt)
	})
}

// ReissueCertificate renews a Certificate and waits until its Secret holds a certificate
// other than old (tls.crt as PEM). It asks again whenever cert-manager ends an issuance that
// reused the old certificate, as it does right after restoring a deleted Secret.
func ReissueCertificate(ctx context.Context, c client.Client, namespace, name string, old []byte) (*corev1.Secret, error) {
	var secret *corev1.Secret
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crt := &cmapi.Certificate{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, crt); err != nil {
			return false, err
		}
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: crt.Spec.SecretName}, s); client.IgnoreNotFound(err) != nil {
			return false, err
		}
		if len(s.Data[corev1.TLSCertKey]) > 0 && !bytes.Equal(s.Data[corev1.TLSCertKey], old) {
			secret = s
			return true, nil
		}
		for _, cond := range crt.Status.Conditions {
			if cond.Type == cmapi.CertificateConditionIssuing && cond.Status == cmmeta.ConditionTrue {
				return false, nil // an issuance is under way
			}
		}
		return false, RenewCertificate(ctx, c, namespace, name)
	})
	return secret, err
}
