package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/serving"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/webhook"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

// serve runs one webhook server until SIGTERM: the guard's handler ("guard", reading the
// captured cluster's objects through the guard's own cached lookup, copied on every read as
// an informer cache does) or a handler that allows everything ("null"), both behind the
// guard's webhook server (serving.WebhookServer: its TLS settings, timeouts and in-flight
// bound) and controller-runtime's admission.Webhook, as `eck-metrics-guard webhook` serves.
// Its log goes to stderr, JSON lines, as the guard's does in production.
func serve(kind string, port int, certDir string, http2 bool, maxInFlight int) error {
	logf.SetLogger(zap.New(zap.UseDevMode(false), zap.WriteTo(os.Stderr)))
	var h admission.Handler
	switch kind {
	case "guard":
		lookup, err := captures.Lookup()
		if err != nil {
			return err
		}
		h = &webhook.Handler{Lookup: lookup}
	case "null":
		h = admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
	default:
		return fmt.Errorf("unknown server %q", kind)
	}
	recoverPanic := true
	s := serving.NewWebhookServer(serving.WebhookOptions{Host: "127.0.0.1", Port: port, CertDir: certDir, EnableHTTP2: http2, MaxInFlight: maxInFlight})
	s.Register(webhook.Path, &admission.Webhook{Handler: h, RecoverPanic: &recoverPanic, LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base }})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return s.Start(ctx)
}
