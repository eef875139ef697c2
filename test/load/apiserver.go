package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

// throughAPIServer measures creates through a real kube-apiserver (test/e2e/framework, the
// binaries of `make controlplane`) with the guard running in this process behind its own
// webhook configuration (config/webhook): unrelated ConfigMaps, StatefulSets and Services,
// in batches of n, with the configuration registered and deleted in turn (rounds times
// each, alternating which goes first), and how many of them reached the guard (its
// controller_runtime_webhook_requests_total) and were kept away by its matchConditions (the
// API server's apiserver_admission_match_condition_exclusions_total).
func throughAPIServer(ctx context.Context, n, rounds int) error {
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		return err
	}
	env, err := framework.New(ctx, framework.Options{WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}}})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	if err := env.StartGuard(func(o *app.ServerOptions) { o.Controller.Enabled = false }); err != nil {
		return err
	}
	var cfgs admissionregistrationv1.MutatingWebhookConfigurationList
	if err := env.Client.List(ctx, &cfgs); err != nil {
		return err
	}
	var saved []*admissionregistrationv1.MutatingWebhookConfiguration
	for i := range cfgs.Items {
		c := cfgs.Items[i].DeepCopy()
		c.ResourceVersion, c.UID, c.CreationTimestamp, c.ManagedFields, c.Generation = "", "", metav1.Time{}, nil, 0
		saved = append(saved, c)
	}
	if len(saved) == 0 {
		return fmt.Errorf("no webhook configuration installed from %s", webhooks)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		return err
	}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "unrelated"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "eck-metrics-tls"}}},
	} {
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
	}
	probe, err := probeOperator(ctx, c)
	if err != nil {
		return err
	}
	register := func(on bool) error {
		for _, s := range saved {
			var err error
			if on {
				err = c.Create(ctx, s.DeepCopy())
			} else {
				err = c.Delete(ctx, s.DeepCopy())
			}
			if err != nil {
				return err
			}
		}
		// The API server sees the change through an informer: wait until a dry-run create of
		// an ECK operator is mutated, or not, as it should be.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			sts := probe.DeepCopy()
			if err := c.Create(ctx, sts, client.DryRunAll); err != nil {
				return err
			}
			if hasMetricsPort(sts) == on {
				time.Sleep(500 * time.Millisecond)
				return nil
			}
		}
		return fmt.Errorf("the API server did not see the webhook configuration registered=%v in 30s", on)
	}
	kinds := []string{"ConfigMap", "StatefulSet", "Service"}
	lat := map[string]map[bool][]time.Duration{}
	reached := map[bool]float64{}
	excluded := map[bool]float64{}
	for _, k := range kinds {
		lat[k] = map[bool][]time.Duration{}
	}
	registered := true // installed by New
	seq := 0
	for round := range rounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, on := range order {
			if on != registered {
				if err := register(on); err != nil {
					return err
				}
				registered = on
			}
			for _, k := range kinds {
				r0, e0 := webhookRequests(), exclusions(ctx, env)
				d, err := creates(ctx, c, k, n, &seq)
				if err != nil {
					return err
				}
				lat[k][on] = append(lat[k][on], d...)
				reached[on] += webhookRequests() - r0
				excluded[on] += exclusions(ctx, env) - e0
			}
		}
	}
	fmt.Printf("\n### Creates through kube-apiserver: unrelated objects, guard registered vs not (%d rounds of %d each, alternating)\n\n", rounds, n)
	fmt.Println("| kind | registered p50 / p90 / p99 ms | not registered p50 / p90 / p99 ms | **p50 ratio** | p99 ratio |")
	fmt.Println("|---|---|---|---|---|")
	for _, k := range kinds {
		a, b := quantiles(lat[k][true]), quantiles(lat[k][false])
		fmt.Printf("| %s | %s / %s / %s | %s / %s / %s | **%s** | %s |\n", k, ms(a[0]), ms(a[1]), ms(a[2]), ms(b[0]), ms(b[1]), ms(b[2]),
			ratio(float64(a[0]), float64(b[0])), ratio(float64(a[2]), float64(b[2])))
	}
	fmt.Printf("\nRequests that reached the guard while registered: %.0f of %d creates; kept away by its matchConditions (apiserver_admission_match_condition_exclusions_total): %.0f.\n",
		reached[true], rounds*n*len(kinds), excluded[true])
	return nil
}

// probeOperator creates the captured ECK operator's ConfigMap in namespace probe and
// returns its StatefulSet, ready to be created there.
func probeOperator(ctx context.Context, c client.Client) (*appsv1.StatefulSet, error) {
	return operatorIn(ctx, c, "probe")
}

// operatorIn creates the captured ECK operator's ConfigMap in namespace ns and returns its
// StatefulSet as released (before the guard's changes), ready to be created there.
func operatorIn(ctx context.Context, c client.Client, ns string) (*appsv1.StatefulSet, error) {
	objs, err := captures.State()
	if err != nil {
		return nil, err
	}
	var sts *appsv1.StatefulSet
	for _, o := range objs {
		if o.GetNamespace() != "elastic-system" {
			continue
		}
		o.SetNamespace(ns)
		o.SetResourceVersion("")
		o.SetUID("")
		o.SetCreationTimestamp(metav1.Time{})
		o.SetManagedFields(nil)
		switch x := o.(type) {
		case *corev1.ConfigMap:
			if err := c.Create(ctx, x); err != nil {
				return nil, err
			}
		case *appsv1.StatefulSet:
			// As released: the guard's changes taken out again.
			r, err := captures.Load(captures.ECKStatefulSet)
			if err != nil {
				return nil, err
			}
			rev, err := r.Review()
			if err != nil {
				return nil, err
			}
			sts = &appsv1.StatefulSet{}
			if err := json.Unmarshal(rev.Request.Object.Raw, sts); err != nil {
				return nil, err
			}
			sts.Namespace, sts.ResourceVersion, sts.UID, sts.ManagedFields = ns, "", "", nil
			sts.CreationTimestamp = metav1.Time{}
			delete(sts.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
			_ = x // the stored one is secured already
		}
	}
	if sts == nil {
		return nil, fmt.Errorf("no ECK StatefulSet in the captured state")
	}
	return sts, nil
}

func hasMetricsPort(sts *appsv1.StatefulSet) bool {
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == keys.PortName {
				return true
			}
		}
	}
	return false
}

// creates creates n objects of the kind, two at a time, and returns each one's latency.
func creates(ctx context.Context, c client.Client, kind string, n int, seq *int) ([]time.Duration, error) {
	var (
		mu    sync.Mutex
		out   []time.Duration
		first error
		wg    sync.WaitGroup
	)
	next := make(chan int)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				obj := unrelated(kind, fmt.Sprintf("u-%d", i))
				start := time.Now()
				err := c.Create(ctx, obj)
				d := time.Since(start)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	for range n {
		*seq++
		select {
		case next <- *seq:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return out, first
}

func unrelated(kind, name string) client.Object {
	m := metav1.ObjectMeta{Name: name, Namespace: "unrelated", Labels: map[string]string{"app": "web"}}
	switch kind {
	case "ConfigMap":
		return &corev1.ConfigMap{ObjectMeta: m, Data: map[string]string{"index.html": "<h1>hello</h1>"}}
	case "Service":
		return &corev1.Service{ObjectMeta: m, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: corev1.ClusterIPNone, // no IP to allocate: the test range is small
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	}
	one := int32(1)
	return &appsv1.StatefulSet{ObjectMeta: m, Spec: appsv1.StatefulSetSpec{Replicas: &one, ServiceName: name,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: "nginx:1.27"}}}}}}
}

// webhookRequests is the guard's controller_runtime_webhook_requests_total, all codes.
func webhookRequests() float64 {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, f := range families {
		if f.GetName() == "controller_runtime_webhook_requests_total" {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// exclusions is the API server's apiserver_admission_match_condition_exclusions_total, all
// labels.
func exclusions(ctx context.Context, env *framework.Env) float64 {
	raw, err := env.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: reading the API server's metrics:", err)
		return 0
	}
	var sum float64
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_admission_match_condition_exclusions_total") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}
