package app

import (
	"strconv"

	"github.com/spf13/pflag"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// addCompanionFlags defines, once for the server and for inject/diff, the flags of the
// objects beside a secured operator: they bind straight into the defaults the engine merges
// under a policy's and the annotations. monitor is the default of --service-monitor.
func addCompanionFlags(fs *pflag.FlagSet, d *policy.Defaults, monitor bool) {
	d.Monitor.Kind = policy.NoMonitor
	if monitor {
		d.Monitor.Kind = policy.ServiceMonitorKind
	}
	fs.StringVar(&d.Monitor.Kind, "monitor", d.Monitor.Kind, "monitor for Prometheus written for each secured operator: ServiceMonitor, PodMonitor (needs --scrape-token-secret) or none (the server: when the Prometheus Operator's CRDs are installed; metrics-guard.eck.dev/monitor)")
	fs.Var((*serviceMonitorFlag)(&d.Monitor), "service-monitor", "shorthand: true is --monitor=ServiceMonitor, false is --monitor=none")
	// pflag reads IsBoolFlag only for flags from the standard library: say it here, so that
	// --service-monitor stands alone as the README writes it.
	fs.Lookup("service-monitor").NoOptDefVal = "true"
	fs.StringToStringVar(&d.Monitor.Labels, "monitor-labels", nil, "extra labels on the monitor, e.g. release=kube-prometheus-stack (metrics-guard.eck.dev/monitor-labels)")
	fs.StringToStringVar(&d.Monitor.Annotations, "monitor-annotations", nil, "extra annotations on the monitor (metrics-guard.eck.dev/monitor-annotations)")
	fs.StringVar(&d.Monitor.Interval, "scrape-interval", "", "the monitor's scrape interval, a Prometheus duration; empty is Prometheus's (metrics-guard.eck.dev/scrape-interval)")
	fs.StringVar(&d.Monitor.ScrapeTimeout, "scrape-timeout", "", "the monitor's scrape timeout, not longer than the interval; empty is Prometheus's (metrics-guard.eck.dev/scrape-timeout)")
	fs.StringVar(&d.Monitor.TokenSecret, "scrape-token-secret", "", "Secret in each operator's namespace with the token scrapers send (authorization.credentials) instead of their ServiceAccount token file (metrics-guard.eck.dev/scrape-token-secret)")
	fs.StringVar(&d.Monitor.TokenKey, "scrape-token-key", "", "key of the token in --scrape-token-secret; empty is \"token\" (metrics-guard.eck.dev/scrape-token-key)")
	d.Certificate = policy.DefaultCertificate
	fs.DurationVar(&d.Certificate.Duration, "cert-duration", policy.DefaultCertificate.Duration, "lifetime of the Certificates requested from an issuer")
	fs.DurationVar(&d.Certificate.RenewBefore, "cert-renew-before", policy.DefaultCertificate.RenewBefore, "how long before expiry cert-manager renews them")
}

// serviceMonitorFlag is --service-monitor: a boolean flag that sets the monitor kind.
type serviceMonitorFlag policy.Monitor

func (f *serviceMonitorFlag) String() string {
	return strconv.FormatBool(f.Kind == policy.ServiceMonitorKind)
}

func (f *serviceMonitorFlag) Set(v string) error {
	on, err := strconv.ParseBool(v)
	if err != nil {
		return err
	}
	f.Kind = policy.NoMonitor
	if on {
		f.Kind = policy.ServiceMonitorKind
	}
	return nil
}

func (f *serviceMonitorFlag) Type() string { return "bool" }

// IsBoolFlag lets --service-monitor stand without a value.
func (f *serviceMonitorFlag) IsBoolFlag() bool { return true }
