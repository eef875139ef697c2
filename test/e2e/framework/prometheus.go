package framework

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

// promOperatorModule is the Prometheus Operator's Go module: built from test/tools/promoperator,
// its CRDs installed from test/tools/crds.
const promOperatorModule = "github.com/prometheus-operator/prometheus-operator"

// PrometheusOperatorCRDs are the CRD files a Prometheus Operator needs to run its Prometheus
// controller: Prometheus, and the ServiceMonitor, PodMonitor, Probe and PrometheusRule kinds
// it watches for each Prometheus (without one of them its informers never sync). From the
// module pinned in test/tools/crds, in the Go module cache.
func PrometheusOperatorCRDs() ([]string, error) {
	dir, err := moduleDir("crds", promOperatorModule)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, kind := range []string{"prometheuses", "servicemonitors", "podmonitors", "probes", "prometheusrules"} {
		path := filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_"+kind+".yaml")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("Prometheus Operator CRDs: %w", err)
		}
		files = append(files, path)
	}
	return files, nil
}

// PrometheusOperatorVersionsAgree fails unless the Prometheus Operator built into ./bin
// (test/tools/promoperator) and its CRDs (test/tools/crds) are of the same release: an operator
// reading objects of another release's schema would prove little.
func PrometheusOperatorVersionsAgree() (string, error) {
	built, err := toolVersion("promoperator", promOperatorModule)
	if err != nil {
		return "", err
	}
	crds, err := toolVersion("crds", promOperatorModule)
	if err != nil {
		return "", err
	}
	if built != crds {
		return "", fmt.Errorf("test/tools/promoperator builds the Prometheus Operator %s but test/tools/crds installs the CRDs of %s: pin one version in both", built, crds)
	}
	return built, nil
}

// toolVersion is the version of module required by test/tools/<tools>/go.mod.
func toolVersion(tools, module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "test", "tools", tools, "go.mod")
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(s.Text()), "require "))
		if len(fields) >= 2 && fields[0] == module && strings.HasPrefix(fields[1], "v") {
			return fields[1], nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no %s requirement in %s", module, path)
}

// StartPrometheusOperator runs bin/prometheus-operator (`make prometheus-operator`) against the
// control plane, watching namespace ns only (--namespaces), with no kubelet Service to keep
// (--kubelet-service empty: there is no kubelet). It runs as a ServiceAccount
// prometheus-operator in ns, bound to the ClusterRole the operator's release ships
// (example/rbac/prometheus-operator in its module, renamed <ns>:prometheus-operator), as its
// Deployment would: its RBAC, not an admin identity, decides what it may do. It returns once
// its web server answers /healthz. Stop it with Stop; e.Stop stops it too, before the control
// plane. The RBAC objects stay (they are named after ns).
func StartPrometheusOperator(ctx context.Context, e *Env, ns string) (*Process, error) {
	path := filepath.Join(e.BinDir, "prometheus-operator")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("run `make prometheus-operator` first: %s not found", path)
	}
	dir, err := moduleDir("crds", promOperatorModule)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, "example", "rbac", "prometheus-operator", "prometheus-operator-cluster-role.yaml"))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if err := sigsyaml.UnmarshalStrict(raw, role); err != nil {
		return nil, fmt.Errorf("the Prometheus Operator's ClusterRole: %w", err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: ns + ":prometheus-operator"}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus-operator", Namespace: ns}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}},
	}
	for _, obj := range []client.Object{sa, role, binding} {
		if err := e.Client.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	kubeconfig, err := e.ServiceAccountKubeconfig(ctx, ns, sa.Name)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := e.StartProcess("prometheus-operator-"+ns, path, []string{
		"--namespaces=" + ns,
		"--kubelet-service=",
		"--web.listen-address=" + addr,
		"--log-level=info",
	}, []string{"KUBECONFIG=" + kubeconfig, "HOME=" + e.Dir, "PATH=" + os.Getenv("PATH")})
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+addr+"/healthz", time.Minute, p.Exited); err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("prometheus-operator: %w; last lines of %s:\n%s", err, p.LogPath(), p.Tail(30))
	}
	return p, nil
}

// PrometheusOptions name the Prometheus object whose generated configuration StartPrometheus runs.
type PrometheusOptions struct {
	// Namespace and Name of the monitoring.coreos.com Prometheus object.
	Namespace, Name string
	// ServiceAccount is its spec.serviceAccountName: Prometheus's token is one of it, from the
	// TokenRequest API.
	ServiceAccount string
	// Dir is the directory the Pod's paths are mapped under (Prometheus.Root); a new one in
	// Env.Dir if empty.
	Dir string
	// Timeout bounds the wait for the operator's Secrets and Prometheus's readiness; 2 minutes
	// if zero.
	Timeout time.Duration
}

// Prometheus is the real Prometheus (bin/prometheus, `make prometheus`) running the
// configuration the Prometheus Operator generated for a Prometheus object, as the
// operator's StatefulSet would run it, with what the kubelet and the config-reloader sidecar
// would do done by the test:
//
//   - the configuration is the operator's Secret prometheus-<name>, key prometheus.yaml.gz,
//     decompressed, with $(POD_NAME) and $(SHARD) substituted as the config-reloader does
//     (prometheus-<name>-0 and 0: one replica, one shard), written where the operator's
//     --config.file points, under Root;
//   - every path the configuration names is mapped under Root, and nothing else: files under
//     /etc/prometheus/ (the TLS assets Secrets prometheus-<name>-tls-assets-<n> are what the
//     StatefulSet mounts at /etc/prometheus/certs, the rule files directory stays empty) and
//     under /var/run/secrets/kubernetes.io/serviceaccount/ (what the kubelet projects: token,
//     ca.crt, namespace); Mapped lists each rewrite. A path elsewhere fails the test;
//   - kubernetes_sd_configs use in-cluster config in a Pod (the API server's Service address
//     and that same token file): each gets kubeconfig_file instead, a kubeconfig for the test
//     API server that reads its token from the mapped token file, so service discovery and
//     scrapes authenticate with the same token, as in a Pod;
//   - the token is the ServiceAccount's, from the TokenRequest API (RotateToken writes a new
//     one, as the kubelet refreshes a projected token).
//
// Reload re-reads the Secrets and asks Prometheus to reload (POST /-/reload), as the
// config-reloader sidecar does when the operator changes them.
type Prometheus struct {
	// URL is where its HTTP API listens (http://127.0.0.1:<port>).
	URL string
	// Root is the directory the configuration's paths are mapped under.
	Root string
	// Mapped are the rewrites of the last configuration: "<field>: <path in a Pod> -> <path
	// here>", and the kubeconfig_file given to each kubernetes_sd_configs entry.
	Mapped []string
	// Config is the configuration Prometheus runs (after the rewrites).
	Config string

	e    *Env
	opts PrometheusOptions
	proc *Process
	// generated is the operator's last configuration, as decompressed.
	generated string
}

// podPathPrefixes are the directories of a Prometheus Pod whose files StartPrometheus maps.
var podPathPrefixes = []string{"/etc/prometheus/", "/var/run/secrets/kubernetes.io/serviceaccount/"}

// StartPrometheus waits for the Prometheus Operator to generate the configuration of the
// Prometheus object opts names, and runs Prometheus with it (see Prometheus). It returns once
// Prometheus is ready (/-/ready). Stop it with Stop; e.Stop stops it too.
func StartPrometheus(ctx context.Context, e *Env, opts PrometheusOptions) (*Prometheus, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	path := filepath.Join(e.BinDir, "prometheus")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("run `make prometheus` first: %s not found", path)
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp(e.Dir, "prometheus-")
		if err != nil {
			return nil, err
		}
		opts.Dir = dir
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	p := &Prometheus{Root: opts.Dir, e: e, opts: opts}
	var err error
	for {
		if p.generated, err = p.generatedConfig(ctx); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the Prometheus Operator generated no configuration for Prometheus %s/%s: %v", opts.Namespace, opts.Name, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := p.RotateToken(ctx); err != nil {
		return nil, err
	}
	if err := p.materialise(ctx); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.URL = "http://127.0.0.1:" + strconv.Itoa(port)
	p.proc, err = e.StartProcess("prometheus-"+opts.Namespace+"-"+opts.Name, path, []string{
		"--config.file=" + p.configFile(),
		"--storage.tsdb.path=" + filepath.Join(p.Root, "prometheus"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(port),
		"--web.enable-lifecycle",
		"--log.level=info",
	}, []string{"HOME=" + p.Root, "PATH=" + os.Getenv("PATH")})
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, p.URL+"/-/ready", opts.Timeout, p.proc.Exited); err != nil {
		_ = p.proc.Stop()
		return nil, fmt.Errorf("prometheus: %w; last lines of %s:\n%s", err, p.proc.LogPath(), p.proc.Tail(30))
	}
	return p, nil
}

// Stop sends SIGTERM and waits (SIGKILL after 10s); an error if it did not stop cleanly or
// had exited. Only the first call reports.
func (p *Prometheus) Stop() error { return p.proc.Stop() }

// LogPath is the file Prometheus logs to.
func (p *Prometheus) LogPath() string { return p.proc.LogPath() }

// Tail is the last n lines of its log.
func (p *Prometheus) Tail(n int) string { return p.proc.Tail(n) }

// GeneratedConfig is the Prometheus Operator's current configuration for the Prometheus
// object (decompressed, before any rewrite).
func (p *Prometheus) GeneratedConfig(ctx context.Context) (string, error) {
	return p.generatedConfig(ctx)
}

func (p *Prometheus) generatedConfig(ctx context.Context) (string, error) {
	s, err := p.e.Clientset.CoreV1().Secrets(p.opts.Namespace).Get(ctx, "prometheus-"+p.opts.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	gz, ok := s.Data["prometheus.yaml.gz"]
	if !ok {
		return "", fmt.Errorf("Secret %s has no prometheus.yaml.gz", s.Name)
	}
	r, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return "", fmt.Errorf("Secret %s, prometheus.yaml.gz: %w", s.Name, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return "", fmt.Errorf("Secret %s, prometheus.yaml.gz: %w", s.Name, err)
	}
	return string(out), nil
}

// Reload takes the operator's current configuration and TLS assets, maps them again, and has
// Prometheus reload (as the config-reloader sidecar does on a change of the mounted Secret).
func (p *Prometheus) Reload(ctx context.Context) error {
	generated, err := p.generatedConfig(ctx)
	if err != nil {
		return err
	}
	p.generated = generated
	if err := p.materialise(ctx); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus reload: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("prometheus reload: %s: %s", resp.Status, body)
	}
	return nil
}

// RotateToken writes a new token of the ServiceAccount, from the TokenRequest API, to the
// mapped token file: what the kubelet does for a projected token before it expires.
// Prometheus reads the file on every scrape and every request of its service discovery.
func (p *Prometheus) RotateToken(ctx context.Context) error {
	token, err := p.e.ServiceAccountToken(ctx, p.opts.Namespace, p.opts.ServiceAccount)
	if err != nil {
		return err
	}
	dir := p.mapPath("/var/run/secrets/kubernetes.io/serviceaccount")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"token": []byte(token), "ca.crt": p.e.Config.CAData, "namespace": []byte(p.opts.Namespace)} {
		if err := writeAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

// Log is Prometheus's whole log so far.
func (p *Prometheus) Log() string { return p.proc.Log() }

func (p *Prometheus) configFile() string {
	return p.mapPath("/etc/prometheus/config_out/prometheus.env.yaml")
}

func (p *Prometheus) mapPath(podPath string) string { return filepath.Join(p.Root, podPath) }

// materialise writes the TLS assets, the kubeconfig and the rewritten configuration.
func (p *Prometheus) materialise(ctx context.Context) error {
	certs := p.mapPath("/etc/prometheus/certs")
	if err := os.MkdirAll(certs, 0o755); err != nil {
		return err
	}
	for i := 0; ; i++ {
		name := fmt.Sprintf("prometheus-%s-tls-assets-%d", p.opts.Name, i)
		s, err := p.e.Clientset.CoreV1().Secrets(p.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && i > 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("TLS assets Secret %s: %w", name, err)
		}
		for key, data := range s.Data {
			if strings.ContainsRune(key, '/') {
				return fmt.Errorf("TLS assets Secret %s: key %q is no file name", name, key)
			}
			if err := writeAtomic(filepath.Join(certs, key), data); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(p.mapPath("/etc/prometheus/rules"), 0o755); err != nil {
		return err
	}
	kubeconfig := p.mapPath("/etc/prometheus/e2e/kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: p.e.Config.Host, CertificateAuthorityData: p.e.Config.CAData}
	if !strings.Contains(cfg.Clusters["envtest"].Server, "://") {
		cfg.Clusters["envtest"].Server = "https://" + cfg.Clusters["envtest"].Server
	}
	cfg.AuthInfos["prometheus"] = &clientcmdapi.AuthInfo{TokenFile: p.mapPath("/var/run/secrets/kubernetes.io/serviceaccount/token")}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "prometheus", Namespace: p.opts.Namespace}
	cfg.CurrentContext = "default"
	if err := os.MkdirAll(filepath.Dir(kubeconfig), 0o755); err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		return err
	}
	out, mapped, err := rewritePrometheusConfig(p.generated, map[string]string{
		"POD_NAME": "prometheus-" + p.opts.Name + "-0",
		"SHARD":    "0",
	}, p.Root, kubeconfig)
	if err != nil {
		return err
	}
	p.Config, p.Mapped = out, mapped
	if err := os.MkdirAll(filepath.Dir(p.configFile()), 0o755); err != nil {
		return err
	}
	return writeAtomic(p.configFile(), []byte(out))
}

// envVarRef is the config-reloader's $(VAR) reference.
var envVarRef = regexp.MustCompile(`\$\(([a-zA-Z_0-9]+)\)`)

// rewritePrometheusConfig substitutes vars for $(VAR) (any other reference is an error), maps
// each string that is a path under podPathPrefixes to the same path under root, fails on
// another absolute path in a field Prometheus reads a file from (*_file, rule_files), and
// gives each kubernetes_sd_configs entry kubeconfig_file (an entry with an api_server of its
// own is an error). It returns the result and what it rewrote.
func rewritePrometheusConfig(in string, vars map[string]string, root, kubeconfig string) (string, []string, error) {
	var missing []string
	in = envVarRef.ReplaceAllStringFunc(in, func(ref string) string {
		name := envVarRef.FindStringSubmatch(ref)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		missing = append(missing, ref)
		return ref
	})
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("the generated configuration refers to %v, which the config-reloader would take from its environment", missing)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(in), &doc); err != nil {
		return "", nil, fmt.Errorf("the generated configuration: %w", err)
	}
	var mapped []string
	var errs []error
	var walk func(v any, field string) any
	walk = func(v any, field string) any {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				v[k] = walk(child, k)
			}
			if sd, ok := v["kubernetes_sd_configs"].([]any); ok {
				for _, entry := range sd {
					m, ok := entry.(map[string]any)
					if !ok {
						continue
					}
					if server, ok := m["api_server"]; ok {
						errs = append(errs, fmt.Errorf("a kubernetes_sd_configs entry has api_server %v: the test only replaces in-cluster config", server))
						continue
					}
					m["kubeconfig_file"] = kubeconfig
					mapped = appendOnce(mapped, "kubernetes_sd_configs[].kubeconfig_file: (in-cluster config) -> "+kubeconfig)
				}
			}
			return v
		case []any:
			for i := range v {
				v[i] = walk(v[i], field)
			}
			return v
		case string:
			for _, prefix := range podPathPrefixes {
				if strings.HasPrefix(v, prefix) {
					to := filepath.Join(root, v)
					mapped = appendOnce(mapped, fmt.Sprintf("%s: %s -> %s", field, v, to))
					return to
				}
			}
			if strings.HasPrefix(v, "/") && (strings.HasSuffix(field, "_file") || field == "rule_files") {
				errs = append(errs, fmt.Errorf("%s: %s is a path in the Prometheus Pod the test does not map", field, v))
			}
			return v
		}
		return v
	}
	walk(doc, "")
	if err := errors.Join(errs...); err != nil {
		return "", nil, err
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return "", nil, err
	}
	slices.Sort(mapped)
	return string(out), mapped, nil
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func writeAtomic(path string, data []byte) error {
	if err := os.WriteFile(path+".tmp", data, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// PrometheusTarget is an active target of Prometheus's /api/v1/targets.
type PrometheusTarget struct {
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
	LastScrape time.Time         `json:"lastScrape"`
}

func (t PrometheusTarget) String() string {
	s := fmt.Sprintf("%s %s health=%s", t.ScrapePool, t.ScrapeURL, t.Health)
	if t.LastError != "" {
		s += fmt.Sprintf(" lastError=%q", t.LastError)
	}
	return s
}

// Targets are Prometheus's active targets.
func (p *Prometheus) Targets(ctx context.Context) ([]PrometheusTarget, error) {
	var data struct {
		ActiveTargets []PrometheusTarget `json:"activeTargets"`
	}
	if err := p.api(ctx, "/api/v1/targets?state=active", &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// PrometheusSample is one series of an instant query's vector result.
type PrometheusSample struct {
	Metric map[string]string `json:"metric"`
	Value  float64
}

// Query runs an instant PromQL query whose result is a vector.
func (p *Prometheus) Query(ctx context.Context, query string) ([]PrometheusSample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query?query="+url.QueryEscape(query), &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", query, data.ResultType)
	}
	out := make([]PrometheusSample, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", query, r.Value[1], err)
		}
		out = append(out, PrometheusSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// api GETs a Prometheus HTTP API path and decodes its data.
func (p *Prometheus) api(ctx context.Context, path string, data any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&envelope); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, data)
}

// waitHTTP polls url until it answers 200, for up to timeout, or until exited reports the
// process gone.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, exited func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	httpClient := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		if exited() {
			return errors.New("exited before it answered " + url)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := httpClient.Do(req); err != nil {
			last = err.Error()
		} else {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no 200 from %s (last: %s): %w", url, last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
