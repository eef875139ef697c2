package app

import (
	"context"
	"fmt"
	"os"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Webhook certificate modes.
const (
	// CertModeFiles serves the tls.crt and tls.key found in --webhook-cert-dir (a Secret that
	// cert-manager, or you, keep there); the caBundle is injected by cert-manager.
	CertModeFiles = "files"
	// CertModeSelfManaged has the guard make and rotate its own CA and serving certificate in
	// one Secret shared by every replica, and inject the CA into its webhook configuration
	// (OPA's cert-controller, as Gatekeeper uses it). The Secret must be mounted at
	// --webhook-cert-dir.
	CertModeSelfManaged = "self-managed"
)

// addRotator adds the certificate rotator; it closes ready once the certificate is on disk
// and the CA injected.
func addRotator(mgr ctrl.Manager, o *ServerOptions, ready chan struct{}) error {
	ns := o.Webhook.Namespace
	if ns == "" {
		ns = os.Getenv("POD_NAMESPACE")
	}
	if ns == "" {
		return fmt.Errorf("--webhook-namespace (or $POD_NAMESPACE) is required with --webhook-cert-mode=%s", CertModeSelfManaged)
	}
	err := rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: ns, Name: o.Webhook.Secret},
		CertDir:        o.Webhook.CertDir,
		CAName:         "eck-metrics-guard-ca",
		CAOrganization: "eck-metrics-guard",
		DNSName:        fmt.Sprintf("%s.%s.svc", o.Webhook.Service, ns),
		ExtraDNSNames:  append([]string{fmt.Sprintf("%s.%s.svc.cluster.local", o.Webhook.Service, ns)}, o.Webhook.ExtraDNSNames...),
		IsReady:        ready,
		Webhooks:       []rotator.WebhookInfo{{Name: o.Webhook.Configuration, Type: rotator.Mutating}},
		FieldOwner:     "eck-metrics-guard",
		// Every replica serves the webhook, so every replica keeps its files fresh; writes
		// to the shared Secret are conflict-checked.
		RequireLeaderElection: false,
	})
	if err != nil {
		return fmt.Errorf("failed to set up certificate rotation: %w", err)
	}
	return nil
}

// startWhenReady delays the webhook server until its certificate exists: without the files
// the server cannot start, and with them a freshly made CA must reach the caBundle first.
type startWhenReady struct {
	crwebhook.Server
	ready <-chan struct{}
}

func (s *startWhenReady) Start(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	return s.Server.Start(ctx)
}
