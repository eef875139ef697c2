package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// realECK runs Elastic's real operator binary (bin/eck-operator) before the guard (the
// sample's eck.yaml as applied) and after it (the eck.yaml the guard stored and the Secret
// cert-manager issued, as the kubelet would mount them), and asks for its metrics as scrapers
// would. With bin/prometheus and bin/prometheus-operator built, it ends with the real
// Prometheus scraping it through the guard's ServiceMonitor. After the guard, the operator
// runs in a network namespace of the demo's own when it can (root, iproute2): its own
// address, which an EndpointSlice, hence Prometheus, can point at.
// netns is that namespace, nil when it could not be made (nsErr says why).
func realECK(ctx context.Context, env *framework.Env, repo string, before, after snapshot, netns *framework.NetNS, nsErr error) error {
	fmt.Println()
	heading("The real ECK operator (bin/eck-operator), before and after")
	c := env.Client
	if err := step("ECK's own ClusterRole and binding for its ServiceAccount (from ECK's operator-3.5.0.yaml)", func() error {
		manifest, err := eckmanifests.Path("operator-3.5.0.yaml")
		if err != nil {
			return err
		}
		_, err = env.ECKClusterRBAC(ctx, manifest, namespace)
		return err
	}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(env.Dir, "eck-")
	if err != nil {
		return err
	}

	// Before: the sample's eck.yaml as applied.
	var plain string
	if err := step("before: ECK with the sample's eck.yaml as applied (metrics-port 0, metrics-secure false)", func() error {
		file := filepath.Join(dir, "before", after.op.ConfigPath)
		if err := writeFile(file, before.cm.Data[after.op.ConfigKey]); err != nil {
			return err
		}
		k, err := framework.StartECK(ctx, env, framework.ECKOptions{
			ConfigFile: file, Namespace: namespace, ServiceAccount: after.op.ServiceAccount, LogName: "eck-operator-before.log",
		})
		if err != nil {
			return err
		}
		defer func() { _ = k.Stop() }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(k.MetricsPort))
		status, body, err := get(&http.Client{Timeout: 10 * time.Second}, "http://"+addr+"/metrics", "")
		if err != nil {
			return err
		}
		plain = fmt.Sprintf("http://%s/metrics (a random port), no token: %s, %d metric families, to anyone who can reach the port", addr, status, strings.Count(body, "# TYPE "))
		return nil
	}); err != nil {
		return err
	}
	fmt.Printf("      %s\n", plain)

	// After: what the guard stored, and the issued certificate.
	secret := &corev1.Secret{}
	sms := &monitoringv1.ServiceMonitorList{}
	if err := c.List(ctx, sms, client.InNamespace(namespace), client.MatchingLabels{keys.LabelOperator: after.sts.Name}); err != nil || len(sms.Items) != 1 {
		return fmt.Errorf("the guard's ServiceMonitor (%d found): %v", len(sms.Items), err)
	}
	sm := &sms.Items[0]
	smTLS := sm.Spec.Endpoints[0].TLSConfig
	if smTLS == nil || smTLS.CA.Secret == nil || smTLS.ServerName == nil {
		return fmt.Errorf("ServiceMonitor %s has no CA Secret or serverName", sm.Name)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: smTLS.CA.Secret.Name}, secret); err != nil {
		return err
	}
	var k *framework.ECK
	where := ""
	if err := step("after: ECK with the eck.yaml the guard stored and the Secret cert-manager issued, mounted as a kubelet would", func() error {
		stored := after.cm.Data[after.op.ConfigKey]
		cfg, err := eckconfig.Parse(stored)
		if err != nil {
			return err
		}
		port, _, _ := cfg.Int(eck.MetricsPort.Name)
		certDir := filepath.Join(dir, "after", "serving-certs")
		if err := os.MkdirAll(certDir, 0o755); err != nil {
			return err
		}
		stop := framework.MountSecret(c, namespace, secret.Name, certDir)
		defer stop()
		if err := poll(ctx, 30*time.Second, func() (bool, error) {
			_, err := os.Stat(filepath.Join(certDir, corev1.TLSPrivateKeyKey))
			return err == nil, nil
		}); err != nil {
			return fmt.Errorf("the Secret's files: %w", err)
		}
		changes := []eckconfig.Change{{Key: eck.MetricsCertDir.Name, Value: certDir}}
		if netns == nil {
			// On this machine's loopback the guard's port may be taken: use a free one.
			if port, err = framework.FreePort(); err != nil {
				return err
			}
			changes = append(changes, eckconfig.Change{Key: eck.MetricsPort.Name, Value: strconv.Itoa(port)})
		}
		local, _, err := eckconfig.Apply(stored, changes...)
		if err != nil {
			return err
		}
		file := filepath.Join(dir, "after", after.op.ConfigPath)
		if err := writeFile(file, local); err != nil {
			return err
		}
		// ECK checks scrapers' tokens with the guard's auth-delegator binding.
		if err := waitAllowed(ctx, c, "system:serviceaccount:"+namespace+":"+after.op.ServiceAccount,
			&authorizationv1.ResourceAttributes{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"}, nil); err != nil {
			return err
		}
		k, err = framework.StartECK(ctx, env, framework.ECKOptions{
			ConfigFile: file, Namespace: namespace, ServiceAccount: after.op.ServiceAccount, MetricsPort: port,
			LogName: "eck-operator-after.log", NetNS: netns,
		})
		if err != nil {
			return err
		}
		where = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if netns != nil {
			where = net.JoinHostPort(netns.PodIP, strconv.Itoa(port))
		}
		return nil
	}); err != nil {
		return err
	}
	if netns != nil {
		fmt.Printf("      in network namespace %s, at %s (the host's end of its veth: %s)\n", netns.Name, netns.PodIP, netns.HostIP)
	} else {
		fmt.Printf("      on this machine's loopback (no network namespace: %v), metrics-port changed to a free port in the local copy\n", nsErr)
	}

	// The scrapers: one bound to the ClusterRole the guard ships (config/rbac, bound as
	// config/scraper binds it), one without.
	scrapers := []string{"metrics-scraper"}
	withPrometheus := netns != nil && exists(env, "prometheus") && exists(env, "prometheus-operator")
	if withPrometheus {
		scrapers = append(scrapers, "prometheus")
	}
	if err := step("ServiceAccounts metrics-scraper (bound to the metrics-reader ClusterRole, as config/scraper does) and no-metrics-grant", func() error {
		return scraperRBAC(ctx, c, repo, scrapers)
	}); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(secret.Data[smTLS.CA.Secret.Key])
	verified := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: *smTLS.ServerName, MinVersion: tls.VersionTLS12},
	}}
	url := "https://" + where + "/metrics"
	fmt.Printf("\n    GET %s, TLS verified against %s's %s for %s:\n", url, secret.Name, smTLS.CA.Secret.Key, *smTLS.ServerName)
	for _, who := range []struct{ name, sa string }{{"no token", ""}, {"token of no-metrics-grant", "no-metrics-grant"}, {"token of metrics-scraper", "metrics-scraper"}} {
		token := ""
		if who.sa != "" {
			if token, err = env.ServiceAccountToken(ctx, namespace, who.sa); err != nil {
				return err
			}
		}
		status, body, err := get(verified, url, token)
		if err != nil {
			return err
		}
		if who.sa == "metrics-scraper" {
			// The operator's controllers count reconciles once its caches have synced.
			_ = poll(ctx, 30*time.Second, func() (bool, error) {
				if strings.Contains(body, "controller_runtime_reconcile_total{") {
					return true, nil
				}
				status, body, err = get(verified, url, token)
				return false, err
			})
		}
		line := fmt.Sprintf("      %-27s %s", who.name+":", status)
		if strings.HasPrefix(status, "200") {
			line += fmt.Sprintf(", %d metric families, e.g. %s", strings.Count(body, "# TYPE "), firstSample(body, "controller_runtime_reconcile_total{"))
		}
		fmt.Println(line)
	}
	untrusted := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: *smTLS.ServerName, MinVersion: tls.VersionTLS12}}}
	if _, _, err := get(untrusted, url, ""); err != nil {
		fmt.Printf("      %-27s %v\n", "a client without the CA:", errors.Unwrap(err))
	}
	fmt.Printf("    before the guard: %s\n", plain)

	if !withPrometheus {
		switch {
		case netns == nil:
			fmt.Printf("\n    (Prometheus needs the operator in a network namespace: %v)\n", nsErr)
		default:
			fmt.Println("\n    (`make prometheus prometheus-operator` builds the real Prometheus and its Operator, about 20 minutes once: then the demo ends with Prometheus scraping this operator)")
		}
		return nil
	}
	return prometheusScrapes(ctx, env, after, netns, sm, k)
}

// prometheusScrapes runs the real Prometheus Operator and Prometheus on the guard's
// ServiceMonitor and waits for the target to be up. The operator Pod gets the status a
// kubelet would give it (Running, Ready, its address the network namespace's), so that the
// EndpointSlice controller lists it.
func prometheusScrapes(ctx context.Context, env *framework.Env, after snapshot, netns *framework.NetNS, sm *monitoringv1.ServiceMonitor, k *framework.ECK) error {
	fmt.Println()
	heading("The real Prometheus, configured by the real Prometheus Operator from the guard's ServiceMonitor")
	c := env.Client
	if err := step("the operator Pod Running and Ready at "+netns.PodIP+" (what a kubelet would report; the EndpointSlice is kube-controller-manager's)", func() error {
		if _, err := env.PodRunning(ctx, namespace, after.pod.Name, "demo-node", netns.HostIP, netns.PodIP); err != nil {
			return err
		}
		return nil
	}); err != nil {
		return err
	}
	if err := step("Prometheus Operator (bin/prometheus-operator) on "+namespace+", and a Prometheus selecting the guard's ServiceMonitors", func() error {
		if _, err := framework.StartPrometheusOperator(ctx, env, namespace); err != nil {
			return err
		}
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "prometheus-discovery", Namespace: namespace},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"services", "endpoints", "pods"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			},
		}
		objs := []client.Object{role, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: namespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: namespace}},
		}, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "monitoring.coreos.com/v1",
			"kind":       "Prometheus",
			"metadata":   map[string]any{"name": "demo", "namespace": namespace},
			"spec": map[string]any{
				"replicas":             int64(1),
				"serviceAccountName":   "prometheus",
				"scrapeInterval":       "5s",
				"scrapeTimeout":        "4s",
				"serviceDiscoveryRole": "EndpointSlice",
				"serviceMonitorSelector": map[string]any{"matchExpressions": []any{
					map[string]any{"key": keys.LabelOperator, "operator": "Exists"},
				}},
			},
		}}}
		for _, obj := range objs {
			if err := c.Create(ctx, obj); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	var prom *framework.Prometheus
	if err := step("Prometheus (bin/prometheus) with the configuration the operator generated (Secret prometheus-demo), as ServiceAccount prometheus", func() error {
		var err error
		prom, err = framework.StartPrometheus(ctx, env, framework.PrometheusOptions{Namespace: namespace, Name: "demo", ServiceAccount: "prometheus"})
		return err
	}); err != nil {
		return err
	}
	pool := fmt.Sprintf("serviceMonitor/%s/%s/0", namespace, sm.Name)
	var up framework.PrometheusTarget
	var last []framework.PrometheusTarget
	if err := step("its target "+pool+" up", func() error {
		return poll(ctx, time.Minute, func() (bool, error) {
			targets, err := prom.Targets(ctx)
			if err != nil {
				return false, nil
			}
			last = targets
			for _, t := range targets {
				if t.ScrapePool == pool && t.Health == "up" {
					up = t
					return true, nil
				}
			}
			return false, nil
		})
	}); err != nil {
		if k.Exited() {
			return fmt.Errorf("the ECK operator exited: %s", k.Tail(10))
		}
		return fmt.Errorf("%w; Prometheus's targets: %v", err, last)
	}
	var samples []framework.PrometheusSample
	selector := fmt.Sprintf(`{namespace=%q, pod=%q}`, namespace, after.pod.Name)
	_ = poll(ctx, 30*time.Second, func() (bool, error) {
		var err error
		samples, err = prom.Query(ctx, "controller_runtime_reconcile_total"+selector)
		return err == nil && len(samples) > 0, nil
	})
	fmt.Printf("\n    $ curl %s/api/v1/targets\n      %s  health: %s  labels: job=%s pod=%s\n", prom.URL, up.ScrapeURL, up.Health, up.Labels["job"], up.Labels["pod"])
	fmt.Printf("    $ curl %s/api/v1/query?query=controller_runtime_reconcile_total%s\n      %d series from the real ECK operator\n", prom.URL, selector, len(samples))
	return nil
}

// scraperRBAC makes the ServiceAccounts no-metrics-grant and each of scrapers, the ClusterRole
// the guard ships for scrapers (config/rbac/metrics_reader_role.yaml) and its binding as
// config/scraper makes it, its subjects the scrapers; then waits until RBAC allows them.
func scraperRBAC(ctx context.Context, c client.Client, repo string, scrapers []string) error {
	role := &rbacv1.ClusterRole{}
	if err := readYAML(filepath.Join(repo, "config", "rbac", "metrics_reader_role.yaml"), role); err != nil {
		return err
	}
	binding := &rbacv1.ClusterRoleBinding{}
	if err := readYAML(filepath.Join(repo, "config", "scraper", "metrics_reader_binding.yaml"), binding); err != nil {
		return err
	}
	binding.Subjects = nil
	objs := []client.Object{role, binding, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "no-metrics-grant", Namespace: namespace}}}
	for _, sa := range scrapers {
		binding.Subjects = append(binding.Subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: namespace})
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: namespace}})
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}
	for _, sa := range scrapers {
		if err := waitAllowed(ctx, c, "system:serviceaccount:"+namespace+":"+sa, nil, &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"}); err != nil {
			return err
		}
	}
	return nil
}

// waitAllowed waits until RBAC allows user the access (its caches follow new bindings with a
// small delay).
func waitAllowed(ctx context.Context, c client.Client, user string, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) error {
	groups := []string{"system:authenticated", "system:serviceaccounts"}
	if parts := strings.Split(user, ":"); len(parts) == 4 {
		groups = append(groups, "system:serviceaccounts:"+parts[2])
	}
	return poll(ctx, 30*time.Second, func() (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: groups, ResourceAttributes: res, NonResourceAttributes: nonRes,
		}}
		if err := c.Create(ctx, sar); err != nil {
			return false, err
		}
		return sar.Status.Allowed, nil
	})
}

// get GETs url, with the bearer token unless empty, and returns the status and the body.
func get(httpClient *http.Client, url, token string) (string, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.Status, string(body), err
}

// firstSample is the first line of Prometheus text starting with prefix whose value is not
// 0, else the first starting with prefix.
func firstSample(text, prefix string) string {
	first := ""
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if !strings.HasSuffix(line, " 0") {
			return line
		}
		if first == "" {
			first = line
		}
	}
	if first == "" {
		return "(no " + strings.TrimSuffix(prefix, "{") + ")"
	}
	return first
}

func exists(env *framework.Env, bin string) bool {
	_, err := os.Stat(filepath.Join(env.BinDir, bin))
	return err == nil
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func readYAML(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalStrict(raw, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
