package scrape

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// monitor is the kind of Prometheus Operator monitor one case of the suite scrapes through.
type monitor struct {
	// Kind is ServiceMonitor or PodMonitor.
	Kind string
	// Selector is the Prometheus field that selects monitors of Kind.
	Selector string
	// Endpoints is the monitor's list of endpoints (endpoints, podMetricsEndpoints).
	Endpoints string
	// Pool is how the Prometheus Operator names a scrape pool of Kind: <Pool>/<ns>/<name>/<i>.
	Pool string
	// Annotations opt the namespace in to the guard writing a monitor of Kind (besides
	// secure and issuer), with the label the Prometheus selects monitors by.
	Annotations map[string]string
	// TokenSecret is the Secret the monitor takes the scraper's token from
	// (authorization.credentials); "" for the scraper's own token file.
	TokenSecret string
}

// selectLabel is the label the test's Prometheus selects monitors by, as
// kube-prometheus-stack's selects release: <release>; the guard's scrape settings put it on
// its monitor (metrics-guard.eck.dev/monitor-labels).
const selectLabel = "release"

var (
	serviceMonitor = monitor{Kind: "ServiceMonitor", Selector: "serviceMonitorSelector", Endpoints: "endpoints", Pool: "serviceMonitor",
		Annotations: map[string]string{keys.AnnotationMonitorLabels: selectLabel + "=e2e-stack"}}
	// podMonitor is the setup of a Prometheus that may not read files (OpenShift's user
	// workload monitoring, Grafana Alloy): a PodMonitor, which has no token file, with the
	// token from a Secret.
	podMonitor = monitor{Kind: "PodMonitor", Selector: "podMonitorSelector", Endpoints: "podMetricsEndpoints", Pool: "podMonitor",
		Annotations: map[string]string{keys.AnnotationMonitor: "PodMonitor", keys.AnnotationMonitorLabels: selectLabel + "=e2e-stack",
			keys.AnnotationScrapeTokenSecret: "scraper-token"},
		TokenSecret: "scraper-token"}
)

// TestPrometheusScrapesGuardedECK is the proof of issue 13: the objects the guard writes make
// a real Prometheus scrape a real ECK operator. One subtest per kind of monitor the guard
// writes.
func TestPrometheusScrapesGuardedECK(t *testing.T) {
	t.Run("ServiceMonitor", func(t *testing.T) { proveScrape(t, serviceMonitor) })
	t.Run("PodMonitor with a token Secret", func(t *testing.T) { proveScrape(t, podMonitor) })
}

// proveScrape secures Elastic's ECK 3.5.0 install manifest with the guard (opted in by the
// namespace, a cert-manager CA issuer), runs the real ECK operator with that end state, the
// real Prometheus Operator on the guard's monitor, and the real Prometheus on the
// configuration the operator generates; then asserts through Prometheus's HTTP API:
//
//  1. the target is the operator Pod's address and port, its health is up, up == 1, and
//     controller_runtime_reconcile_total (an ECK metric) has samples: TLS verified against
//     the Secret's CA for the monitor's serverName, and the token authorized;
//  2. a copy of the monitor whose CA is another CA's gets a TLS error (unknown authority)
//     from the same endpoint, while the guard's stays up;
//  3. without the scraper's /metrics grant (the binding to the metrics-reader ClusterRole the
//     guard ships, as config/scraper makes it), the target goes down with a 403.
//
// What stands in for what this control plane lacks (no kubelet, no scheduler, no Pods'
// network):
//   - the ECK operator is a local process (StartECK) in a network namespace the test makes
//     (NetNS: a veth pair, addresses of a /30 of 10.213.0.0/16), so that its address is not
//     loopback, which EndpointSlices refuse; it reaches the API server through a TCP relay on
//     the host's end of the veth (NetNS.ForwardAPIServer), Prometheus reaches it over the
//     veth; the files a kubelet would mount (eck.yaml, the certificate Secret) are written
//     under a temporary directory, eck.yaml's metrics-cert-dir pointed there;
//   - the StatefulSet's Pod is kube-controller-manager's, but the test binds it to a Node
//     object of its own and writes the status a kubelet would (Running, Ready, podIP = the
//     namespace's address: Env.PodRunning) once the operator listens; the EndpointSlice is
//     then kube-controller-manager's EndpointSlice controller's own work;
//   - Prometheus is a local process too: the files of the Prometheus Pod (the TLS assets
//     Secret, the projected ServiceAccount token) are mapped under a temporary directory, and
//     the configuration's paths rewritten to match; exactly which is framework.Prometheus's
//     doc and is logged (Mapped); in-cluster service discovery becomes kubeconfig_file.
//     framework.Prometheus.Reload does what the config-reloader sidecar would.
func proveScrape(t *testing.T, m monitor) {
	ctx := context.Background()
	netns := framework.StartNetNS(t) // deleted last: cleanups run in reverse order
	t.Logf("network namespace %s: host %s, operator Pod %s", netns.Name, netns.HostIP, netns.PodIP)

	annotations := map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "e2e-ca"}
	for k, v := range m.Annotations {
		annotations[k] = v
	}
	ns := env.Namespace(t, "e2e-scrape", annotations, nil)
	caIssuers(t, ns)
	fixture := framework.ECKManifest(t, "operator-3.5.0.yaml")
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, fixture, ns))
	rbac, err := env.ECKClusterRBAC(ctx, fixture, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range rbac {
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}

	// The guard's end state: secured, the Certificate issued, the monitor written.
	var o framework.Operator
	framework.EventuallyWithin(t, "the StatefulSet to be marked secured", 2*time.Minute, func() (bool, error) {
		o = env.Operator(t, ns)
		return o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	name := o.Op.Name + "-metrics-guard"
	secret := readyCertificateSecret(t, ns, name, time.Minute)
	mon := guardMonitor(t, m, ns, name, time.Minute)
	tlsConfig := firstEndpointTLS(t, m, mon)
	if ca, _, _ := unstructured.NestedString(tlsConfig, "ca", "secret", "name"); ca != secret.Name {
		t.Fatalf("the %s verifies against Secret %q, want the certificate's %s: %v", m.Kind, ca, secret.Name, tlsConfig)
	}
	serverName, _, _ := unstructured.NestedString(tlsConfig, "serverName")

	// The real ECK operator, in its network namespace, with what the kubelet would mount.
	k := startECK(t, o, secret, netns)
	port := k.MetricsPort
	pod := operatorPodRunning(t, o, netns)
	service := &corev1.Service{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, service); err != nil {
		t.Fatalf("the guard's metrics Service: %v", err)
	}
	waitEndpointSlice(t, ns, service.Name, netns.PodIP)

	// The scraper: Prometheus's ServiceAccount, with the service discovery rights of its
	// namespace, and get on /metrics through the ClusterRole the guard ships.
	scraper := "prometheus"
	prometheusServiceAccount(t, ns, scraper)
	revoke := grantMetrics(t, ns, scraper)
	waitSAR(t, ns, scraper, true)
	if m.TokenSecret != "" {
		// The token the monitor names: the scraper's, from the TokenRequest API, in a Secret of
		// the operator's namespace (the Prometheus Operator copies it into the configuration).
		token, err := env.ServiceAccountToken(ctx, ns, scraper)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: m.TokenSecret, Namespace: ns}, StringData: map[string]string{"token": token}}); err != nil {
			t.Fatal(err)
		}
	}

	// The real Prometheus Operator makes the configuration of a Prometheus object that selects
	// the guard's monitors.
	startPrometheusOperator(t, ns)
	promName := "e2e"
	createPrometheus(t, m, ns, promName, scraper)
	prom := startPrometheus(t, framework.PrometheusOptions{Namespace: ns, Name: promName, ServiceAccount: scraper, Dir: t.TempDir()})
	t.Logf("Prometheus Operator %s generated the configuration; paths mapped:\n  %s", promOperatorVersion, strings.Join(prom.Mapped, "\n  "))
	// The operator copies the CA of the guard's Secret into its TLS assets as
	// <n>_<namespace>_<secret>_<key>. The token is Prometheus's own, from the file the guard's
	// bearerTokenFile names, or, with a token Secret, written by the operator into the
	// configuration itself (authorization.credentials: no file, nothing to map).
	caAsset := fmt.Sprintf("_%s_%s_ca.crt -> ", ns, secret.Name)
	wants := []string{"ca_file: /etc/prometheus/certs/", "kubernetes_sd_configs[].kubeconfig_file: "}
	if m.TokenSecret == "" {
		wants = append(wants, "bearer_token_file: /var/run/secrets/kubernetes.io/serviceaccount/token -> ")
	} else {
		if slices.ContainsFunc(prom.Mapped, func(s string) bool { return strings.HasPrefix(s, "bearer_token_file") }) {
			t.Errorf("a monitor with a token Secret gave a configuration that reads a token file: %v", prom.Mapped)
		}
		if !strings.Contains(prom.Config, "authorization:") || !strings.Contains(prom.Config, "credentials:") {
			t.Errorf("the generated configuration has no authorization credentials:\n%s", prom.Config)
		}
	}
	for _, want := range wants {
		if !slices.ContainsFunc(prom.Mapped, func(s string) bool {
			return strings.HasPrefix(s, want) && (!strings.HasPrefix(want, "ca_file") || strings.Contains(s, caAsset))
		}) {
			t.Errorf("the generated configuration has no %s... (mapped: %v)", want, prom.Mapped)
		}
	}
	if !strings.Contains(prom.Config, "server_name: "+serverName) {
		t.Errorf("the generated configuration does not verify the serverName %s:\n%s", serverName, prom.Config)
	}

	// 1. Up.
	pool := fmt.Sprintf("%s/%s/%s/0", m.Pool, ns, name)
	wantURL := fmt.Sprintf("https://%s:%d/metrics", netns.PodIP, port)
	up := waitTarget(t, prom, pool, 2*time.Minute, func(tg framework.PrometheusTarget) bool { return tg.Health == "up" })
	if up.ScrapeURL != wantURL {
		t.Errorf("target %s scrapes %s, want the operator Pod's %s", pool, up.ScrapeURL, wantURL)
	}
	if up.Labels["pod"] != pod.Name || up.Labels["namespace"] != ns {
		t.Errorf("target labels %v, want pod %s in namespace %s", up.Labels, pod.Name, ns)
	}
	t.Logf("target up: %s", up)
	selector := fmt.Sprintf(`{namespace=%q, pod=%q}`, ns, pod.Name)
	waitQuery(t, prom, "up"+selector+" == 1", time.Minute, func(s []framework.PrometheusSample) bool { return len(s) == 1 })
	reconciles := waitQuery(t, prom, "controller_runtime_reconcile_total"+selector, time.Minute, func(s []framework.PrometheusSample) bool { return len(s) > 0 })
	controllers := []string{}
	for _, s := range reconciles {
		controllers = appendUnique(controllers, s.Metric["controller"])
	}
	t.Logf("controller_runtime_reconcile_total: %d series from the real ECK operator (controllers %v)", len(reconciles), controllers)

	// 2. A monitor whose CA is another CA's: the same endpoint, a TLS error. It is a copy
	// the test makes, because the guard keeps its own monitor as it writes it (any reconcile
	// of the operator, say on ECK's periodic write of its licensing ConfigMap, applies it
	// again); the copy is labelled as made by the test, and carries the guard's other labels,
	// so that the Prometheus selects it as it selects the guard's.
	wrong := wrongCAMonitor(t, m, mon, "other-ca")
	wrongPool := fmt.Sprintf("%s/%s/%s/0", m.Pool, ns, wrong)
	reloadWhenGenerated(t, prom, "job_name: "+wrongPool, fmt.Sprintf("_%s_other-ca_ca.crt", ns))
	bad := waitTarget(t, prom, wrongPool, 2*time.Minute, func(tg framework.PrometheusTarget) bool { return tg.Health == "down" && tg.LastError != "" })
	if !strings.Contains(bad.LastError, "x509: certificate signed by unknown authority") {
		t.Errorf("target %s: lastError %q, want a TLS error: certificate signed by unknown authority", wrongPool, bad.LastError)
	}
	if bad.ScrapeURL != wantURL {
		t.Errorf("target %s scrapes %s, want the same endpoint %s", wrongPool, bad.ScrapeURL, wantURL)
	}
	t.Logf("wrong CA: %s", bad)
	if still := target(t, prom, pool); still.Health != "up" {
		t.Errorf("the guard's target went %s beside the wrong-CA copy: %s", still.Health, still)
	}

	// 3. The grant removed: 403 (with the scraper's token file, which the test can rotate as
	// the kubelet would; the token Secret's case scrapes through the same SubjectAccessReview).
	if m.TokenSecret != "" {
		return
	}
	// ECK (controller-runtime's authorization filter) caches an
	// allowed SubjectAccessReview for 5 minutes, keyed on the user and the token's credential
	// id: with the token it used, the scraper keeps its access for up to 5 minutes; with the
	// next token (the kubelet refreshes projected tokens), it is asked again, and denied.
	revoke()
	waitSAR(t, ns, scraper, false)
	revoked := time.Now()
	cached := waitTarget(t, prom, pool, 30*time.Second, func(tg framework.PrometheusTarget) bool { return tg.LastScrape.After(revoked) })
	if cached.Health != "up" {
		t.Errorf("with its old token, right after the grant went: %s; want still up (ECK's 5-minute cache of allowed reviews)", cached)
	}
	t.Logf("the grant removed, the same token: %s (cached by ECK for up to 5 minutes)", cached)
	start := time.Now()
	if err := prom.RotateToken(ctx); err != nil {
		t.Fatal(err)
	}
	denied := waitTarget(t, prom, pool, 2*time.Minute, func(tg framework.PrometheusTarget) bool {
		return tg.Health == "down" && tg.LastScrape.After(start)
	})
	if !strings.Contains(denied.LastError, "403") {
		t.Errorf("target %s without the /metrics grant: lastError %q, want a 403", pool, denied.LastError)
	}
	t.Logf("without the grant, after %s: %s", time.Since(start).Round(time.Second), denied)
	if k.Exited() {
		t.Errorf("the ECK operator exited; last lines of its log:\n%s", k.Tail(20))
	}
}

// caIssuers makes a CA issuer e2e-ca (a self-signed CA from cert-manager), the guard's issuer,
// and a second, unrelated CA whose Secret other-ca holds a ca.crt of its own.
func caIssuers(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	ca := func(name string) *cmv1.Certificate {
		return &cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: cmv1.CertificateSpec{
			IsCA: true, CommonName: name, SecretName: name,
			IssuerRef: cmmeta.IssuerReference{Name: "selfsigned", Kind: "Issuer", Group: "cert-manager.io"},
		}}
	}
	objs := []client.Object{
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}},
		ca("e2e-ca"),
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "e2e-ca", Namespace: ns}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: "e2e-ca"}}}},
		ca("other-ca"),
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

// readyCertificateSecret waits for the Certificate to be Ready and returns its Secret.
func readyCertificateSecret(t *testing.T, ns, name string, timeout time.Duration) *corev1.Secret {
	t.Helper()
	cert := &cmv1.Certificate{}
	framework.EventuallyWithin(t, "Certificate "+name+" to be Ready", timeout, func() (bool, error) {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cert); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, c := range cert.Status.Conditions {
			if c.Type == cmv1.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	secret := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cert.Spec.SecretName}, secret); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(secret.Data[key]) == 0 {
			t.Fatalf("Secret %s has no %s", secret.Name, key)
		}
	}
	return secret
}

// guardMonitor waits for the guard's monitor of kind m.Kind.
func guardMonitor(t *testing.T, m monitor, ns, name string, timeout time.Duration) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("monitoring.coreos.com/v1")
	u.SetKind(m.Kind)
	framework.EventuallyWithin(t, "the guard's "+m.Kind, timeout, func() (bool, error) {
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)
		return err == nil, client.IgnoreNotFound(err)
	})
	if u.GetLabels()[keys.LabelManagedBy] != keys.ManagedByValue {
		t.Fatalf("%s %s is not labelled as made by the guard: %v", m.Kind, name, u.GetLabels())
	}
	return u
}

// firstEndpointTLS is the tlsConfig of the monitor's first endpoint, checked for the
// guarantees the guard makes: https, a serverName, never insecureSkipVerify.
func firstEndpointTLS(t *testing.T, m monitor, u *unstructured.Unstructured) map[string]any {
	t.Helper()
	endpoints, _, _ := unstructured.NestedSlice(u.Object, "spec", m.Endpoints)
	if len(endpoints) != 1 {
		t.Fatalf("%s %s has %d %s, want 1", m.Kind, u.GetName(), len(endpoints), m.Endpoints)
	}
	ep, _ := endpoints[0].(map[string]any)
	if scheme, _, _ := unstructured.NestedString(ep, "scheme"); scheme != "https" {
		t.Errorf("%s scheme %q, want https", m.Kind, scheme)
	}
	tlsConfig, _, _ := unstructured.NestedMap(ep, "tlsConfig")
	if sn, _, _ := unstructured.NestedString(tlsConfig, "serverName"); sn == "" {
		t.Errorf("%s has no serverName: %v", m.Kind, tlsConfig)
	}
	if skip, _, _ := unstructured.NestedBool(tlsConfig, "insecureSkipVerify"); skip {
		t.Errorf("%s skips TLS verification", m.Kind)
	}
	return tlsConfig
}

// startECK runs the real ECK operator in netns with the stored eck.yaml and the certificate
// Secret as the kubelet would mount them, as the operator's ServiceAccount, once RBAC lets
// that account check tokens (the guard's auth-delegator binding).
func startECK(t *testing.T, o framework.Operator, secret *corev1.Secret, netns *framework.NetNS) *framework.ECK {
	t.Helper()
	ctx := context.Background()
	ns := o.Object.GetNamespace()
	storedYAML := o.ConfigMap.Data[o.Op.ConfigKey]
	cfg, err := eckconfig.Parse(storedYAML)
	if err != nil {
		t.Fatalf("stored eck.yaml: %v", err)
	}
	port, _, _ := cfg.Int(eck.MetricsPort.Name)
	if port == 0 {
		t.Fatalf("stored eck.yaml has no metrics-port:\n%s", storedYAML)
	}
	mountPath := ""
	for _, vm := range o.Template.Spec.Containers[o.Op.ContainerIndex].VolumeMounts {
		if vm.Name == keys.VolumeName {
			mountPath = vm.MountPath
		}
	}
	if mountPath == "" {
		t.Fatalf("the manager container does not mount volume %s", keys.VolumeName)
	}
	root := t.TempDir()
	certDir := filepath.Join(root, mountPath)
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		t.Fatal(err)
	}
	stop := framework.MountSecret(env.Client, ns, secret.Name, certDir)
	t.Cleanup(stop)
	framework.EventuallyWithin(t, "the Secret's files", 30*time.Second, func() (bool, error) {
		_, err := os.Stat(filepath.Join(certDir, "tls.key"))
		return err == nil, nil
	})
	localYAML, _, err := eckconfig.Apply(storedYAML, eckconfig.Change{Key: eck.MetricsCertDir.Name, Value: certDir})
	if err != nil {
		t.Fatal(err)
	}
	configFile := filepath.Join(root, o.Op.ConfigPath)
	if err := os.MkdirAll(filepath.Dir(configFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configFile, []byte(localYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	user := "system:serviceaccount:" + ns + ":" + o.Op.ServiceAccount
	for _, res := range []authorizationv1.ResourceAttributes{
		{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
		{Group: "authorization.k8s.io", Resource: "subjectaccessreviews", Verb: "create"},
	} {
		waitAllowed(t, user, &res, nil, true)
	}
	k, err := framework.StartECK(ctx, env, framework.ECKOptions{
		ConfigFile: configFile, Namespace: ns, ServiceAccount: o.Op.ServiceAccount, MetricsPort: port, NetNS: netns,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", k.LogPath, k.Tail(40))
		}
		if err := k.Stop(); err != nil {
			t.Error(err)
		}
	})
	return k
}

// operatorPodRunning waits for kube-controller-manager's Pod of the operator StatefulSet, of
// the current pod template (the guard's), and gives it the status a kubelet would
// (Env.PodRunning), its address netns's.
func operatorPodRunning(t *testing.T, o framework.Operator, netns *framework.NetNS) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	ns := o.Object.GetNamespace()
	hash := o.Template.Annotations[keys.AnnotationMetricsHash]
	selector := labels.SelectorFromSet(o.Template.Labels)
	var pod *corev1.Pod
	framework.EventuallyWithin(t, "the operator StatefulSet's Pod of the guard's template", time.Minute, func() (bool, error) {
		pods := &corev1.PodList{}
		if err := env.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: selector}); err != nil {
			return false, err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp == nil && p.Annotations[keys.AnnotationMetricsHash] == hash {
				pod = p
				return true, nil
			}
		}
		return false, nil
	})
	node := "e2e-" + netns.Name
	running, err := env.PodRunning(ctx, ns, pod.Name, node, netns.HostIP, netns.PodIP)
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return running
}

// waitEndpointSlice waits for the EndpointSlice controller to list ip, ready, for service.
func waitEndpointSlice(t *testing.T, ns, service, ip string) {
	t.Helper()
	var seen []string
	framework.EventuallyWithin(t, "the EndpointSlice of Service "+service+" to hold "+ip, time.Minute, func() (bool, error) {
		list := &discoveryv1.EndpointSliceList{}
		if err := env.Client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
			return false, err
		}
		seen = nil
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				seen = append(seen, strings.Join(ep.Addresses, ","))
				ready := ep.Conditions.Ready != nil && *ep.Conditions.Ready
				if ready && len(ep.Addresses) > 0 && ep.Addresses[0] == ip {
					return true, nil
				}
			}
		}
		return false, nil
	})
}

// prometheusServiceAccount makes Prometheus's ServiceAccount and a Role for its service
// discovery in ns (what kube-prometheus-stack grants its Prometheus, namespaced): nothing
// else, /metrics comes from grantMetrics alone.
func prometheusServiceAccount(t *testing.T, ns, name string) {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-discovery", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "endpoints", "pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}},
		role,
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
		},
	}
	for _, obj := range objs {
		if err := env.Client.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
}

// grantMetrics creates the ClusterRole the guard ships for scrapers
// (config/rbac/metrics_reader_role.yaml) and the ClusterRoleBinding of config/scraper, both
// renamed <ns>:<name> so that cases cannot collide, bound to ns/sa. It returns revoke, which
// deletes the binding.
func grantMetrics(t *testing.T, ns, sa string) (revoke func()) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{}
	readYAML(t, filepath.Join(repo, "config", "rbac", "metrics_reader_role.yaml"), role)
	binding := &rbacv1.ClusterRoleBinding{}
	readYAML(t, filepath.Join(repo, "config", "scraper", "metrics_reader_binding.yaml"), binding)
	if binding.RoleRef.Name != role.Name {
		t.Fatalf("config/scraper binds ClusterRole %s, but config/rbac ships %s", binding.RoleRef.Name, role.Name)
	}
	role.Name = ns + ":" + role.Name
	binding.Name = ns + ":" + binding.Name
	binding.RoleRef.Name = role.Name
	binding.Subjects = []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
	return func() {
		if err := env.Client.Delete(ctx, binding); err != nil {
			t.Fatalf("removing the /metrics grant: %v", err)
		}
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// createPrometheus creates the Prometheus object: one replica, a 5s scrape interval, service
// discovery by EndpointSlices (the Prometheus Operator's default is still the Endpoints API,
// deprecated since Kubernetes 1.33, whose controller this control plane does not run), and a
// selector for the guard's monitors of m's kind in ns (the Prometheus's own namespace).
func createPrometheus(t *testing.T, m monitor, ns, name, serviceAccount string) {
	t.Helper()
	// The label the user chose for the guard's monitor (metrics-guard.eck.dev/monitor-labels),
	// as kube-prometheus-stack selects release: <release>.
	selector := map[string]any{"matchLabels": map[string]any{selectLabel: "e2e-stack"}}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "Prometheus",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"replicas":             int64(1),
			"serviceAccountName":   serviceAccount,
			"scrapeInterval":       "5s",
			"scrapeTimeout":        "4s",
			"serviceDiscoveryRole": "EndpointSlice",
			m.Selector:             selector,
		},
	}}
	if err := env.Client.Create(context.Background(), u); err != nil {
		t.Fatalf("creating Prometheus %s: %v", name, err)
	}
}

// wrongCAMonitor creates a copy of the guard's monitor whose tlsConfig.ca is Secret caSecret's
// ca.crt, named <monitor>-wrong-ca and labelled as made by the test, and returns its name.
func wrongCAMonitor(t *testing.T, m monitor, mon *unstructured.Unstructured, caSecret string) string {
	t.Helper()
	cp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": mon.GetAPIVersion(),
		"kind":       mon.GetKind(),
		"metadata":   map[string]any{"name": mon.GetName() + "-wrong-ca", "namespace": mon.GetNamespace()},
	}}
	spec, _, _ := unstructured.NestedMap(mon.Object, "spec")
	endpoints, _, _ := unstructured.NestedSlice(spec, m.Endpoints)
	ep := endpoints[0].(map[string]any)
	if err := unstructured.SetNestedField(ep, caSecret, "tlsConfig", "ca", "secret", "name"); err != nil {
		t.Fatal(err)
	}
	endpoints[0] = ep
	if err := unstructured.SetNestedSlice(spec, endpoints, m.Endpoints); err != nil {
		t.Fatal(err)
	}
	cp.Object["spec"] = spec
	lbls := mon.GetLabels()
	lbls[keys.LabelManagedBy] = "e2e-scrape-test"
	cp.SetLabels(lbls)
	if err := env.Client.Create(context.Background(), cp); err != nil {
		t.Fatal(err)
	}
	return cp.GetName()
}

// reloadWhenGenerated waits for the operator's configuration to contain every one of want
// (in the configuration or the names of the TLS assets), then reloads Prometheus.
func reloadWhenGenerated(t *testing.T, prom *framework.Prometheus, want ...string) {
	t.Helper()
	ctx := context.Background()
	framework.EventuallyWithin(t, fmt.Sprintf("the operator's configuration to have %v", want), time.Minute, func() (bool, error) {
		cfg, err := prom.GeneratedConfig(ctx)
		if err != nil {
			return false, nil
		}
		for _, w := range want {
			if !strings.Contains(cfg, w) {
				return false, nil
			}
		}
		return true, nil
	})
	if err := prom.Reload(ctx); err != nil {
		t.Fatal(err)
	}
}

// target is the active target of the scrape pool (the zero value if none).
func target(t *testing.T, prom *framework.Prometheus, pool string) framework.PrometheusTarget {
	t.Helper()
	targets, err := prom.Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.ScrapePool == pool {
			return tg
		}
	}
	return framework.PrometheusTarget{}
}

// waitTarget polls Prometheus's targets until the one of pool satisfies ok, and returns it.
func waitTarget(t *testing.T, prom *framework.Prometheus, pool string, timeout time.Duration, ok func(framework.PrometheusTarget) bool) framework.PrometheusTarget {
	t.Helper()
	var last []framework.PrometheusTarget
	var found framework.PrometheusTarget
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		targets, err := prom.Targets(ctx)
		if err != nil {
			return false, nil
		}
		last = targets
		for _, tg := range targets {
			if tg.ScrapePool == pool && ok(tg) {
				found = tg
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for target %s: %v; active targets: %v", pool, err, last)
	}
	return found
}

// waitQuery polls an instant query until ok accepts its result, and returns it.
func waitQuery(t *testing.T, prom *framework.Prometheus, query string, timeout time.Duration, ok func([]framework.PrometheusSample) bool) []framework.PrometheusSample {
	t.Helper()
	var last []framework.PrometheusSample
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last, lastErr = prom.Query(ctx, query)
		return lastErr == nil && ok(last), nil
	})
	if err != nil {
		t.Fatalf("query %s: %v (last result %v, error %v)", query, err, last, lastErr)
	}
	return last
}

// waitSAR waits until RBAC allows (or denies) ns/sa get on /metrics.
func waitSAR(t *testing.T, ns, sa string, allowed bool) {
	t.Helper()
	waitAllowed(t, "system:serviceaccount:"+ns+":"+sa, nil, &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}, allowed)
}

// waitAllowed waits until the API server's RBAC authorizer gives the answer want for user
// (its caches follow bindings with a small delay).
func waitAllowed(t *testing.T, user string, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes, want bool) {
	t.Helper()
	groups := []string{"system:authenticated", "system:serviceaccounts"}
	if parts := strings.Split(user, ":"); len(parts) == 4 {
		groups = append(groups, "system:serviceaccounts:"+parts[2])
	}
	var reason string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups, ResourceAttributes: res, NonResourceAttributes: nonRes,
		}}
		if err := env.Client.Create(ctx, sar); err != nil {
			return false, err
		}
		reason = sar.Status.Reason
		return sar.Status.Allowed == want, nil
	})
	if err != nil {
		t.Fatalf("RBAC does not answer allowed=%v for %s %+v%+v: %v (reason: %q)", want, user, res, nonRes, err, reason)
	}
}

// startPrometheusOperator runs the real Prometheus Operator on ns until the test ends.
func startPrometheusOperator(t *testing.T, ns string) {
	t.Helper()
	p, err := framework.StartPrometheusOperator(context.Background(), env, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", p.LogPath(), p.Tail(40))
		}
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
}

// startPrometheus runs the real Prometheus on the operator's configuration until the test ends.
func startPrometheus(t *testing.T, opts framework.PrometheusOptions) *framework.Prometheus {
	t.Helper()
	p, err := framework.StartPrometheus(context.Background(), env, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("configuration Prometheus ran:\n%s\nlast lines of %s:\n%s", p.Config, p.LogPath(), p.Tail(40))
		}
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	return p
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
