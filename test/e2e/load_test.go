package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestAdmissionLoad sends E2E_ADMISSIONS (default 10,000) server-side dry-run creates of an
// ECK operator StatefulSet through the real API server, 8 at a time, and checks that every
// one came back secured by the webhook (the metrics port added): none was shed, failed or
// timed out. It reports throughput and latency percentiles (docs/reliability.md). Bounded:
// it stops after 3 minutes whatever the count.
func TestAdmissionLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test")
	}
	n := 10000
	if v := os.Getenv("E2E_ADMISSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	const workers = 8
	ns := env.Namespace(t, "e2e-load", guarded, nil)
	manifest := framework.Manifest(t, framework.ECKManifest(t, "operator-3.5.0.yaml"), ns)
	env.MustKubectl(t, "apply", "-f", manifest) // the ConfigMap the webhook reads, and the operator itself
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var sts *appsv1.StatefulSet
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.Contains(doc, "\nkind: StatefulSet\n") {
			sts = &appsv1.StatefulSet{}
			if err := yaml.Unmarshal([]byte(doc), sts); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sts == nil {
		t.Fatal("no StatefulSet in the fixture")
	}
	// A client of its own, without client-side rate limits.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	sum0, count0 := webhookLatency(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var next, failed, unsecured atomic.Int64
	latencies := make([][]time.Duration, workers)
	firstErr := make(chan error, 1)
	began := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				obj := sts.DeepCopy()
				obj.Name = fmt.Sprintf("load-%d", i)
				start := time.Now()
				err := c.Create(ctx, obj, client.DryRunAll)
				latencies[w] = append(latencies[w], time.Since(start))
				if err != nil {
					failed.Add(1)
					select {
					case firstErr <- err:
					default:
					}
					continue
				}
				if !securedPort(obj) {
					unsecured.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	sum1, count1 := webhookLatency(t)
	if count1 > count0 {
		t.Logf("the guard's handler (controller_runtime_webhook_latency_seconds): %.0f requests, mean %s",
			count1-count0, time.Duration((sum1-sum0)/(count1-count0)*float64(time.Second)).Round(time.Microsecond))
	}
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	t.Logf("%d admissions (dry-run creates) in %s, %.0f/s, %d workers: p50 %s, p99 %s, max %s; %d failed, %d not secured",
		len(all), elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(), workers,
		pct(0.5).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), pct(1).Round(time.Microsecond), failed.Load(), unsecured.Load())
	if len(all) < n {
		t.Errorf("only %d of %d admissions in 3 minutes", len(all), n)
	}
	if failed.Load() > 0 {
		t.Errorf("%d admissions failed, the first: %v", failed.Load(), <-firstErr)
	}
	if unsecured.Load() > 0 {
		t.Errorf("%d admissions came back without the metrics port: the webhook was skipped (shed or failed open)", unsecured.Load())
	}
}

// webhookLatency is the sum and count of controller-runtime's webhook latency histogram in
// this process (the suite's guard runs here).
func webhookLatency(t *testing.T) (sum, count float64) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "controller_runtime_webhook_latency_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
			count += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, count
}

func securedPort(sts *appsv1.StatefulSet) bool {
	for _, c := range sts.Spec.Template.Spec.Containers {
		if c.Name != "manager" {
			continue
		}
		for _, p := range c.Ports {
			if p.Name == keys.PortName {
				return true
			}
		}
	}
	return false
}
