//go:build scale

// Package scale measures the guard's binary at cluster scale on the real test control plane:
// time to ready, resident memory (VmHWM, VmRSS) and heap at steady state with 0, 1/10 and the
// whole of 10,000 namespaces, 50,000 ConfigMaps (half of them as kubectl apply leaves them,
// with a last-applied-configuration copy of their data), 2,000 StatefulSets and 2,000
// Services; then, at full scale, the time to retrofit one newly opted-in operator and to
// converge 200 namespaces opted in at once. It reports; it asserts correctness only (every
// operator ends secured), never a wall-clock limit. Build tag scale: `make bench-scale`.
//
// SCALE_LEVELS (default "0,0.1,1") are the fractions measured, in increasing order; the
// objects are created once and added to between levels. SCALE_OPTIN (default 200) is the
// number of namespaces opted in at once. GUARD_ARGS adds flags to the guard's command line;
// GUARD_BINARY runs that binary instead of building this tree's; SCALE_PPROF, a directory, gets
// the guard's heap profile at each level (with GUARD_ARGS=--profiling).
package scale

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// The full scale of issue 12.
const (
	fullNamespaces   = 10000
	fullConfigMaps   = 50000
	fullStatefulSets = 2000
	fullServices     = 2000
	// ECK operators present at every level, secured (opted in with a TLS Secret of their own).
	operators = 3
	workers   = 16
)

func TestMemoryAtScale(t *testing.T) {
	levels := []float64{0, 0.1, 1}
	if v := os.Getenv("SCALE_LEVELS"); v != "" {
		levels = nil
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				t.Fatal(err)
			}
			levels = append(levels, x)
		}
	}
	optIn := 200
	if v := os.Getenv("SCALE_OPTIN"); v != "" {
		var err error
		if optIn, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		t.Fatal(err)
	}
	root, err := framework.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	env := framework.Start(t, framework.Options{
		CRDDirectoryPaths:     []string{root + "/config/crd/bases"},
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}},
		// envtest's /24 holds 254 Services.
		APIServerFlags: map[string]string{"service-cluster-ip-range": "10.96.0.0/16"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	binary := os.Getenv("GUARD_BINARY") // another build to compare with
	if binary == "" {
		if binary, err = framework.BuildGuard(ctx, t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	// A client of its own, without client-side rate limits.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	eck := loadOperator(t)
	secured := map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "operator-tls"}
	for i := range operators {
		ns := fmt.Sprintf("eck-%d", i)
		createNamespace(ctx, t, c, ns, secured)
		eck.create(ctx, t, c, ns)
	}

	p := &population{c: c}
	var rows []string
	for li, level := range levels {
		began := time.Now()
		p.grow(ctx, t, level)
		t.Logf("level %g: %d namespaces, %d ConfigMaps, %d StatefulSets, %d Services in place (%s to add)",
			level, p.namespaces, p.configMaps, p.statefulSets, p.services, time.Since(began).Round(time.Second))
		g := startGuard(ctx, t, env, binary)
		time.Sleep(10 * time.Second) // steady state: the controller's first pass, one GC cycle or more
		m := g.measure(t)
		if dir := os.Getenv("SCALE_PPROF"); dir != "" { // the guard runs with --profiling (GUARD_ARGS)
			g.saveProfile(t, fmt.Sprintf("%s/heap-%g.pprof", dir, level))
		}
		row := fmt.Sprintf("| %g | %d / %d / %d / %d | %s | %.1f | %.1f (anon %.1f, file %.1f) | %.1f |", level, p.namespaces, p.configMaps, p.statefulSets, p.services,
			g.ready.Round(10*time.Millisecond), mib(m.hwm), mib(m.rss), mib(m.anon), mib(m.file), mib(m.heapInuse))
		if li == len(levels)-1 {
			row += " " + retrofit(ctx, t, c, eck, g, optIn)
			m = g.measure(t)
			row += fmt.Sprintf(" | after: VmHWM %.1f, heap %.1f; reconciles %s; API requests %s; conflicts retried %s; ConfigMap reads %s",
				mib(m.hwm), mib(m.heapInuse), g.metric(t, "controller_runtime_reconcile_total"), g.metric(t, "rest_client_requests_total"),
				g.metric(t, "eck_metrics_guard_reconcile_conflicts_total"), g.metric(t, "eck_metrics_guard_configmap_reads_total"))
		}
		rows = append(rows, row)
		t.Log(row)
		if err := g.p.Stop(); err != nil {
			t.Error(err)
		}
		if errs := errorLines(g.p.Log()); len(errs) > 0 {
			t.Logf("error lines in the guard's log, by message: %v", errs)
		}
	}
	t.Log("| level | namespaces / ConfigMaps / StatefulSets / Services | ready | VmHWM MiB | VmRSS MiB | heap in use MiB | retrofit |\n" + strings.Join(rows, "\n"))
}

// retrofit opts in one operator and then optIn namespaces at once, and says how long each
// took to be secured.
func retrofit(ctx context.Context, t *testing.T, c client.Client, eck operatorObjects, g *guard, optIn int) string {
	t.Helper()
	one := "retro-one"
	createNamespace(ctx, t, c, one, nil)
	eck.create(ctx, t, c, one)
	time.Sleep(2 * time.Second) // the guard has seen it, unguarded
	began := time.Now()
	annotate(ctx, t, c, one)
	waitSecured(ctx, t, c, []string{one}, 2*time.Minute)
	single := time.Since(began)

	var many []string
	for i := range optIn {
		many = append(many, fmt.Sprintf("retro-%03d", i))
	}
	parallel(t, len(many), func(i int) error {
		createNamespace(ctx, t, c, many[i], nil)
		eck.create(ctx, t, c, many[i])
		return nil
	})
	time.Sleep(5 * time.Second)
	profiled := make(chan struct{})
	if dir := os.Getenv("SCALE_PPROF"); dir != "" { // the CPU of the convergence's first 10 s
		go func() {
			defer close(profiled)
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=10", g.metrics)); err == nil {
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				_ = os.WriteFile(dir+"/cpu-optin.pprof", body, 0o644)
			}
		}()
	} else {
		close(profiled)
	}
	began = time.Now()
	parallel(t, len(many), func(i int) error { annotate(ctx, t, c, many[i]); return nil })
	annotated := time.Since(began)
	waitSecured(ctx, t, c, many, 5*time.Minute)
	all := time.Since(began)
	<-profiled
	return fmt.Sprintf("| one operator %s; %d namespaces opted in (%s to annotate) converged in %s", single.Round(10*time.Millisecond), optIn,
		annotated.Round(10*time.Millisecond), all.Round(10*time.Millisecond))
}

func annotate(ctx context.Context, t *testing.T, c client.Client, ns string) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true",%q:"operator-tls"}}}`, keys.AnnotationSecure, keys.AnnotationTLSSecret)
	if err := c.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Error(err)
	}
}

// waitSecured polls until the operator StatefulSet of every namespace has the status secured.
func waitSecured(ctx context.Context, t *testing.T, c client.Client, namespaces []string, timeout time.Duration) {
	t.Helper()
	want := map[string]bool{}
	for _, ns := range namespaces {
		want[ns] = true
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var list appsv1.StatefulSetList
		if err := c.List(ctx, &list, client.MatchingLabels{"control-plane": "elastic-operator"}); err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Items {
			if want[s.Namespace] && s.Annotations[keys.AnnotationStatus] == "secured" {
				delete(want, s.Namespace)
			}
		}
		if len(want) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%d of %d operators not secured within %s", len(want), len(namespaces), timeout)
}

// population is what has been created so far.
type population struct {
	c                                              client.Client
	namespaces, configMaps, statefulSets, services int
}

func nsName(i int) string { return fmt.Sprintf("scale-%05d", i) }

// grow creates objects up to level of the full scale.
func (p *population) grow(ctx context.Context, t *testing.T, level float64) {
	t.Helper()
	nNS := int(level * fullNamespaces)
	parallel(t, nNS-p.namespaces, func(i int) error {
		createNamespace(ctx, t, p.c, nsName(p.namespaces+i), nil)
		return nil
	})
	p.namespaces = max(p.namespaces, nNS)
	if p.namespaces == 0 {
		return
	}
	nCM := int(level * fullConfigMaps)
	parallel(t, nCM-p.configMaps, func(i int) error { return p.c.Create(ctx, configMap(p.configMaps+i)) })
	p.configMaps = max(p.configMaps, nCM)
	nSTS := int(level * fullStatefulSets)
	parallel(t, nSTS-p.statefulSets, func(i int) error { return p.c.Create(ctx, statefulSet(p.statefulSets+i)) })
	p.statefulSets = max(p.statefulSets, nSTS)
	nSvc := int(level * fullServices)
	parallel(t, nSvc-p.services, func(i int) error { return p.c.Create(ctx, service(p.services+i)) })
	p.services = max(p.services, nSvc)
}

// configMap i lives in namespace i/5 (five a namespace); every
// other one is as `kubectl apply` leaves it: its data copied into the last-applied annotation.
func configMap(i int) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i / 5), Name: fmt.Sprintf("app-config-%05d", i),
			Labels: map[string]string{"app.kubernetes.io/name": "app", "app.kubernetes.io/instance": fmt.Sprintf("app-%d", i)}},
		Data: map[string]string{"application.properties": strings.Repeat(fmt.Sprintf("key.%d=value\n", i), 40)},
	}
	if i%2 == 1 {
		applied := cm.DeepCopy()
		applied.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
		applied.Data["application.properties"] += strings.Repeat("# a bigger file once\n", 60)
		raw, _ := json.Marshal(applied)
		cm.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(raw)}
	}
	return cm
}

func statefulSet(i int) *appsv1.StatefulSet {
	labels := map[string]string{"app": fmt.Sprintf("web-%d", i)}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i * 5 % fullNamespaces), Name: fmt.Sprintf("web-%04d", i)},
		Spec: appsv1.StatefulSetSpec{
			Replicas: new(int32), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/nginx:1.27",
					Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			},
		},
	}
}

func service(i int) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsName(i * 5 % fullNamespaces), Name: fmt.Sprintf("web-%04d", i)},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": fmt.Sprintf("web-%d", i)},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
}

func createNamespace(ctx context.Context, t *testing.T, c client.Client, name string, annotations map[string]string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Error(err)
	}
}

// parallel runs fn for 0..n-1 on workers goroutines; the first error fails the test.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil && !apierrors.IsAlreadyExists(err) {
					once.Do(func() { t.Errorf("create %d: %v", i, err) })
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// operatorObjects are the namespaced objects of ECK 3.5.0's all-in-one manifest the guard
// reads: its ConfigMap and StatefulSet.
type operatorObjects struct {
	configMap   *corev1.ConfigMap
	statefulSet *appsv1.StatefulSet
}

func loadOperator(t *testing.T) operatorObjects {
	raw, err := os.ReadFile(framework.ECKManifest(t, "operator-3.5.0.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var o operatorObjects
	for _, doc := range strings.Split(string(raw), "\n---") {
		switch {
		case strings.Contains(doc, "\nkind: StatefulSet\n"):
			o.statefulSet = &appsv1.StatefulSet{}
			err = yaml.Unmarshal([]byte(doc), o.statefulSet)
		case strings.Contains(doc, "\nkind: ConfigMap\n"):
			o.configMap = &corev1.ConfigMap{}
			err = yaml.Unmarshal([]byte(doc), o.configMap)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if o.statefulSet == nil || o.configMap == nil {
		t.Fatal("no StatefulSet or ConfigMap in operator-3.5.0.yaml")
	}
	return o
}

func (o operatorObjects) create(ctx context.Context, t *testing.T, c client.Client, ns string) {
	cm, sts := o.configMap.DeepCopy(), o.statefulSet.DeepCopy()
	cm.Namespace, sts.Namespace = ns, ns
	if cm.Data["eck.yaml"] != "" {
		cm.Data["eck.yaml"] = strings.ReplaceAll(cm.Data["eck.yaml"], "elastic-system", ns)
	}
	for _, obj := range []client.Object{cm, sts} {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Error(err)
		}
	}
}

// guard is the guard's binary, running.
type guard struct {
	p              *framework.Process
	metrics, probe int
	ready          time.Duration
}

func startGuard(ctx context.Context, t *testing.T, env *framework.Env, binary string) *guard {
	t.Helper()
	g := &guard{}
	var err error
	if g.metrics, err = framework.FreePort(); err != nil {
		t.Fatal(err)
	}
	if g.probe, err = framework.FreePort(); err != nil {
		t.Fatal(err)
	}
	wh := env.Environment.WebhookInstallOptions
	args := []string{"webhook", "--kubeconfig=" + env.Kubeconfig, "--service-monitor=false",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", g.metrics), "--metrics-secure=false",
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", g.probe),
		"--webhook-host=" + wh.LocalServingHost, fmt.Sprintf("--webhook-port=%d", wh.LocalServingPort), "--webhook-cert-dir=" + wh.LocalServingCertDir}
	if extra := os.Getenv("GUARD_ARGS"); extra != "" {
		args = append(args, strings.Fields(extra)...)
	}
	began := time.Now()
	if g.p, err = env.StartProcess("eck-metrics-guard", binary, args, os.Environ()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", g.probe)); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				g.ready = time.Since(began)
				return g
			}
		}
		if g.p.Exited() {
			t.Fatalf("the guard exited:\n%s", g.p.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the guard was not ready within 3 minutes:\n%s", g.p.Tail(30))
	return nil
}

type memory struct{ hwm, rss, anon, file, heapInuse float64 }

func (g *guard) measure(t *testing.T) memory {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	var m memory
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == "kB" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmHWM:":
				m.hwm = kb * 1024
			case "VmRSS:":
				m.rss = kb * 1024
			case "RssAnon:":
				m.anon = kb * 1024
			case "RssFile:":
				m.file = kb * 1024
			}
		}
	}
	m.heapInuse, _ = strconv.ParseFloat(g.metric(t, "go_memstats_heap_inuse_bytes"), 64)
	return m
}

// metric is the sum of the samples of a metric on the guard's endpoint, as text.
func (g *guard) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", g.metrics))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	found := false
	var parts []string
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
		found = true
		if strings.HasPrefix(line, name+"{") && v > 0 {
			parts = append(parts, strings.TrimPrefix(f[0], name)+"="+f[len(f)-1])
		}
	}
	if !found {
		return "?"
	}
	if len(parts) > 0 && len(parts) <= 16 && name != "go_memstats_heap_inuse_bytes" {
		return fmt.Sprintf("%g %v", sum, parts)
	}
	return strconv.FormatFloat(sum, 'f', 0, 64)
}

// errorLines counts the guard's error-level log lines by message (and error, for reconciles).
func errorLines(log string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		var l struct{ Level, Msg, Error, Controller string }
		if json.Unmarshal([]byte(line), &l) != nil || l.Level != "error" {
			continue
		}
		key := l.Msg
		if l.Controller != "" {
			key += " (" + l.Controller + "): " + l.Error
		} else if l.Error != "" {
			key += ": " + l.Error
		}
		if len(key) > 160 {
			key = key[:160]
		}
		out[key]++
	}
	return out
}

// saveProfile writes the guard's heap profile to path.
func (g *guard) saveProfile(t *testing.T, path string) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap", g.metrics))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mib(b float64) float64 { return b / (1 << 20) }
