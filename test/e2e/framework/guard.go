package framework

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
)

// StartGuard runs the eck-metrics-guard server in this process, as `eck-metrics-guard
// webhook` would with its default flags, serving the webhook configurations installed
// through Options.WebhookInstallOptions. configure, if not nil, changes the options first.
// It returns once the cache is synced and the webhook server answers; Stop stops it.
func (e *Env) StartGuard(configure func(*app.ServerOptions)) error {
	o := &app.ServerOptions{}
	fs := pflag.NewFlagSet("eck-metrics-guard", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		return err
	}
	wh := e.Environment.WebhookInstallOptions
	o.Webhook.Host, o.Webhook.Port, o.Webhook.CertDir = wh.LocalServingHost, wh.LocalServingPort, wh.LocalServingCertDir
	o.Metrics.BindAddress = "0"
	o.Health.BindAddress = "0"
	if configure != nil {
		configure(o)
	}
	return e.RunGuard(e.Config, o)
}

// RunGuard runs the guard with options o, reaching the API server with cfg (an impersonating
// config runs it with another identity's rights), and returns once its cache is synced and
// its webhook server answers; Stop stops it.
func (e *Env) RunGuard(cfg *rest.Config, o *app.ServerOptions) error {
	mgr, err := app.NewManagerFor(cfg, o)
	if err != nil {
		return err
	}
	e.Go(mgr.Start)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("the guard's cache did not sync")
	}
	for ctx.Err() == nil {
		if mgr.GetWebhookServer().StartedChecker()(nil) == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the guard's webhook server did not start")
}
