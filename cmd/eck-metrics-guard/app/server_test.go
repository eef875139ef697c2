package app

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// TestServerFlags: every flag is in one section, and parses straight into the options of its
// component.
func TestServerFlags(t *testing.T) {
	o := &ServerOptions{}
	sets := o.FlagSets()
	seen := map[string]string{}
	for _, name := range sections {
		sets[name].VisitAll(func(f *pflag.Flag) {
			if other, ok := seen[f.Name]; ok {
				t.Errorf("--%s in sections %q and %q", f.Name, other, name)
			}
			seen[f.Name] = name
		})
	}
	if len(sets) != len(sections) {
		t.Errorf("%d flag sets, %d sections", len(sets), len(sections))
	}
	fs := pflag.NewFlagSet("webhook", pflag.ContinueOnError)
	o = &ServerOptions{}
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--kube-api-qps=-1", "--kube-api-burst=7", "--max-concurrent-reconciles=3", "--webhook-port=1234",
		"--enable-http2", "--metrics-secure=false", "--cert-duration=10h", "--service-monitor=false", "--resync-period=1m"}); err != nil {
		t.Fatal(err)
	}
	if o.Client.QPS != -1 || o.Client.Burst != 7 || o.Controller.MaxConcurrentReconciles != 3 || o.Webhook.Port != 1234 ||
		!o.Webhook.EnableHTTP2 || o.Metrics.SecureServing || o.Defaults.Certificate.Duration.Hours() != 10 ||
		o.Defaults.Monitor.Kind != policy.NoMonitor || o.Controller.ResyncPeriod != time.Minute {
		t.Errorf("options %+v", o)
	}
	o = &ServerOptions{}
	o.AddFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	if o.Client.QPS != DefaultQPS || o.Client.Burst != DefaultBurst || o.Controller.MaxConcurrentReconciles != DefaultMaxConcurrentReconciles {
		t.Errorf("defaults %+v", o.Client)
	}
	cmd := newServerCommand()
	var help strings.Builder
	cmd.SetOut(&help)
	if err := cmd.Usage(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"API client flags:", "--kube-api-qps", "Controller flags:", "--max-concurrent-reconciles", "Certificates and monitors flags:"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, help.String())
		}
	}
}
