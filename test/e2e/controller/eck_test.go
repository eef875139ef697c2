package controller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestECKServesGuardedMetrics runs Elastic's real ECK 3.5.0 operator binary with what the guard
// produced, as the kubelet would hand it over (the stored eck.yaml and the cert-manager-issued
// Secret as files), authenticated as the operator's own ServiceAccount. It proves the end state
// works, not only that it is written: over TLS verified against the Secret's ca.crt for the
// ServiceMonitor's serverName, a scraper allowed to get /metrics gets 200 and Prometheus text,
// no token gets 401, a token without the grant 403, a client trusting another CA fails the
// handshake; a re-issued certificate is served without a restart. The control case runs the
// same binary with the fixture's own eck.yaml: plain HTTP, no authentication, a random port.
//
// There is no kubelet, so the test does its part: files under a temporary root instead of
// volumes, and the operator as a local process instead of a container in a Pod.
func TestECKServesGuardedMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fixture := framework.ECKManifest(t, "operator-3.5.0.yaml")

	// The operator runs on this machine, not in a Pod's network namespace, so the guard's
	// default 8081 could be taken by anything here: ask for a free port with the annotation
	// (which the guard validates and writes like any other choice).
	port, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	annotations := maps.Clone(guarded)
	annotations[keys.AnnotationMetricsPort] = strconv.Itoa(port)
	ns := env.Namespace(t, "e2e-eck", annotations, nil)
	caIssuer(t, ns)
	manifest := framework.Manifest(t, fixture, ns)
	env.MustKubectl(t, "apply", "-f", manifest)
	// Manifest keeps only namespaced objects; the operator also needs its ClusterRole and
	// binding, named per test namespace so that they cannot collide.
	applyOperatorClusterRBAC(t, fixture, ns)

	// (b) The end state: secured, the Certificate Ready, its Secret there.
	o := framework.Operator{}
	framework.EventuallyWithin(t, "the StatefulSet to be marked secured", 90*time.Second, func() (bool, error) {
		o = env.Operator(t, ns)
		return o.Object.GetAnnotations()[keys.AnnotationStatus] == "secured", nil
	})
	name := o.Op.Name + "-metrics-guard"
	cert, secret, sm := issued(t, ns, name, 60*time.Second)
	smTLS := sm.Spec.Endpoints[0].TLSConfig
	serverName := *smTLS.ServerName
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(secret.Data[smTLS.CA.Secret.Key]) {
		t.Fatalf("Secret %s has no CA certificate in %s", secret.Name, smTLS.CA.Secret.Key)
	}
	issued := verifyLeaf(t, secret, serverName)

	// What the operator will read: the stored eck.yaml and the StatefulSet's mounts.
	storedYAML := o.ConfigMap.Data[o.Op.ConfigKey]
	cfg, err := eckconfig.Parse(storedYAML)
	if err != nil {
		t.Fatalf("stored eck.yaml: %v", err)
	}
	if p, _, _ := cfg.Int(eck.MetricsPort.Name); p != port {
		t.Fatalf("stored eck.yaml has metrics-port %d, want %d:\n%s", p, port, storedYAML)
	}
	if secure, _, _ := cfg.Bool(eck.MetricsSecure.Name); !secure {
		t.Fatalf("stored eck.yaml is not metrics-secure:\n%s", storedYAML)
	}
	if host, _ := cfg.String(eck.MetricsHost.Name); host != "0.0.0.0" {
		t.Errorf("stored eck.yaml has metrics-host %q, want 0.0.0.0 (all interfaces, as in a Pod)", host)
	}
	mountPath := secretMountPath(t, o, secret.Name)
	certDirInPod := eck.DefaultMetricsCertDir
	if dir, ok := cfg.String(eck.MetricsCertDir.Name); ok {
		certDirInPod = dir
	}
	if certDirInPod != mountPath {
		t.Fatalf("the Secret is mounted at %s, but ECK would read its certificate from %s", mountPath, certDirInPod)
	}

	// The operator's ServiceAccount may check tokens: the manifest's ClusterRole grants
	// subjectaccessreviews but not tokenreviews, which only the guard's system:auth-delegator
	// binding adds. Wait until RBAC says so before ECK starts.
	saUser := "system:serviceaccount:" + ns + ":" + o.Op.ServiceAccount
	for _, res := range []authorizationv1.ResourceAttributes{
		{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"},
		{Group: "authorization.k8s.io", Resource: "subjectaccessreviews", Verb: "create"},
	} {
		waitAllowed(t, saUser, &res, nil)
	}

	// (c) Materialise what the kubelet would, under a temporary root: eck.yaml at the path
	// --config names and the Secret's keys at the Secret's mount path, projected as the
	// kubelet does (..data symlink swapped atomically). The process sees /tmp/..., not the
	// container's paths, so the copy of eck.yaml sets metrics-cert-dir to the mount path
	// under the root; nothing else in it changes (metrics-host stays 0.0.0.0, the test
	// scrapes 127.0.0.1).
	root := t.TempDir()
	certDir := filepath.Join(root, mountPath)
	if err := projectSecret(certDir, secret.Data); err != nil {
		t.Fatal(err)
	}
	localYAML, _, err := eckconfig.Apply(storedYAML, eckconfig.Change{Key: eck.MetricsCertDir.Name, Value: certDir})
	if err != nil {
		t.Fatal(err)
	}
	configFile := writeFile(t, filepath.Join(root, o.Op.ConfigPath), localYAML)

	k, err := framework.StartECK(ctx, env, framework.ECKOptions{
		ConfigFile: configFile, Namespace: ns, ServiceAccount: o.Op.ServiceAccount, MetricsPort: port,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", k.LogPath, k.Tail(40))
		}
	})
	if !strings.Contains(k.Log(), `"secure":true`) {
		t.Errorf("ECK did not report a secure metrics server; last lines of its log:\n%s", k.Tail(20))
	}
	// The operator is really up as its ServiceAccount: its caches have synced cluster-wide
	// (it checks its license key right after).
	framework.EventuallyWithin(t, "the operator's caches to sync", 90*time.Second, func() (bool, error) {
		if k.Exited() {
			return false, fmt.Errorf("the operator exited; last lines of its log:\n%s", k.Tail(20))
		}
		return strings.Contains(k.Log(), "Operator license key validated"), nil
	})

	// (d) Scrape as Prometheus would, with the ServiceMonitor's TLS settings.
	scraper := serviceAccount(t, ns, "metrics-scraper")
	stranger := serviceAccount(t, ns, "no-metrics-grant")
	grantMetrics(t, ns, "metrics-scraper")
	// The operator caches a denial for 30s: only scrape once RBAC allows.
	waitAllowed(t, "system:serviceaccount:"+ns+":metrics-scraper", nil, &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"})
	scraperToken := token(t, ns, scraper)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	verified := &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12}

	res := scrape(t, addr, verified, scraperToken)
	if res.err != nil || res.status != http.StatusOK {
		t.Fatalf("allowed scraper: %v, status %d, body %.300q", res.err, res.status, res.body)
	}
	if !strings.Contains(res.body, "# TYPE controller_runtime_") {
		t.Errorf("no controller-runtime metrics in the answer: %.500q", res.body)
	}
	t.Logf("scraped %d bytes of Prometheus text; ECK's own metric families: %v", len(res.body), metricFamilies(res.body, "elastic_", "eck_"))
	if res.leaf.SerialNumber.Cmp(issued.SerialNumber) != 0 {
		t.Errorf("served certificate serial %x, want the Secret's %x", res.leaf.SerialNumber, issued.SerialNumber)
	}
	if res := scrape(t, addr, verified, ""); res.err != nil || res.status != http.StatusUnauthorized {
		t.Errorf("no token: %v, status %d, want 401", res.err, res.status)
	}
	if res := scrape(t, addr, verified, token(t, ns, stranger)); res.err != nil || res.status != http.StatusForbidden {
		t.Errorf("a token without get on /metrics: %v, status %d, want 403", res.err, res.status)
	}
	// A client that trusts another CA (the API server's) does not get past the handshake.
	otherCA := x509.NewCertPool()
	otherCA.AppendCertsFromPEM(env.Config.CAData)
	res = scrape(t, addr, &tls.Config{RootCAs: otherCA, ServerName: serverName, MinVersion: tls.VersionTLS12}, scraperToken)
	if unknown := (x509.UnknownAuthorityError{}); !errors.As(res.err, &unknown) {
		t.Errorf("a client trusting another CA: %v, status %d; want an unknown-authority TLS error", res.err, res.status)
	}
	// And without serverName the name does not match: the certificate has DNS names only.
	res = scrape(t, addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, scraperToken)
	if hostErr := (x509.HostnameError{}); !errors.As(res.err, &hostErr) {
		t.Errorf("a client without serverName: %v, status %d; want a hostname TLS error", res.err, res.status)
	}

	// (e) Rotation: cert-manager re-issues the certificate into the same Secret (renewal, as
	// `cmctl renew` asks for it), the kubelet would update the files; the running operator
	// serves the new one.
	secret, err = framework.ReissueCertificate(ctx, env.Client, ns, cert.Name, secret.Data["tls.crt"])
	if err != nil {
		t.Fatalf("renewing: %v", err)
	}
	reissued := verifyLeaf(t, secret, serverName)
	if reissued.SerialNumber.Cmp(issued.SerialNumber) == 0 {
		t.Fatal("the renewed certificate has the first one's serial number")
	}
	verifyLeaf(t, secret, serverName)
	if err := projectSecret(certDir, secret.Data); err != nil {
		t.Fatal(err)
	}
	// controller-runtime's certwatcher reacts to file events and re-reads every 10s anyway.
	var served *big.Int
	framework.EventuallyWithin(t, "the operator to serve the re-issued certificate", 45*time.Second, func() (bool, error) {
		if k.Exited() {
			return false, fmt.Errorf("the operator exited; last lines of its log:\n%s", k.Tail(20))
		}
		if res := scrape(t, addr, verified, scraperToken); res.err == nil && res.leaf != nil {
			served = res.leaf.SerialNumber
		}
		return served != nil && served.Cmp(reissued.SerialNumber) == 0, nil
	})
	if res := scrape(t, addr, verified, scraperToken); res.err != nil || res.status != http.StatusOK {
		t.Errorf("after rotation: %v, status %d", res.err, res.status)
	}
	if k.Exited() || strings.Contains(k.Log(), "Shutting down") {
		t.Errorf("the operator restarted or stopped to pick up the certificate (PID %d):\n%s", k.PID, k.Tail(20))
	}
	if strings.Contains(k.Log(), "forbidden") {
		t.Errorf("the operator's ServiceAccount lacks permissions; see %s", k.LogPath)
	}
	t.Logf("PID %d served serial %x, then %x without a restart", k.PID, issued.SerialNumber, reissued.SerialNumber)
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}

	// (f) The control case: the fixture's eck.yaml as released (metrics-port: 0,
	// metrics-secure: false), the same binary and ServiceAccount. ECK still serves metrics,
	// on a random port, in plain HTTP, to anyone: no TLS, no token needed.
	origYAML := configMapData(t, manifest, o.Op.ConfigMapName, o.Op.ConfigKey)
	if origYAML == storedYAML {
		t.Fatal("the stored eck.yaml is the fixture's: the guard changed nothing")
	}
	controlRoot := t.TempDir()
	control, err := framework.StartECK(ctx, env, framework.ECKOptions{
		ConfigFile: writeFile(t, filepath.Join(controlRoot, o.Op.ConfigPath), origYAML),
		Namespace:  ns, ServiceAccount: o.Op.ServiceAccount,
		LogName: "eck-operator-" + ns + "-unguarded.log",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := control.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", control.LogPath, control.Tail(40))
		}
	})
	if control.MetricsPort == port {
		t.Errorf("the unguarded operator listens on the guarded port %d", port)
	}
	controlAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(control.MetricsPort))
	plain, err := http.Get("http://" + controlAddr + "/metrics")
	if err != nil {
		t.Fatalf("unguarded operator, plain HTTP on port %d: %v", control.MetricsPort, err)
	}
	body, _ := io.ReadAll(plain.Body)
	_ = plain.Body.Close()
	if plain.StatusCode != http.StatusOK || !strings.Contains(string(body), "# TYPE controller_runtime_") {
		t.Errorf("unguarded operator: plain HTTP without a token got %s, %.200q; want 200 and metrics", plain.Status, body)
	}
	if res := scrape(t, controlAddr, verified, scraperToken); res.err == nil {
		t.Errorf("unguarded operator: a TLS client got status %d, want a failed handshake (it speaks plain HTTP)", res.status)
	}
	t.Logf("control: the unguarded operator serves metrics on random port %d in plain HTTP to anyone (%d bytes, no token)", control.MetricsPort, len(body))
}

// applyOperatorClusterRBAC creates the fixture's ClusterRole elastic-operator and its
// ClusterRoleBinding, renamed <ns>:elastic-operator and bound to the ServiceAccount in ns.
func applyOperatorClusterRBAC(t *testing.T, fixture, ns string) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, doc := range strings.Split(string(raw), "\n---") {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatal(err)
		}
		switch head.Kind {
		case "ClusterRole":
			role := &rbacv1.ClusterRole{}
			if err := yaml.Unmarshal([]byte(doc), role); err != nil {
				t.Fatal(err)
			}
			if role.Name != "elastic-operator" { // -view and -edit are for users, not the operator
				continue
			}
			role.Name = ns + ":" + role.Name
			objs = append(objs, role)
		case "ClusterRoleBinding":
			binding := &rbacv1.ClusterRoleBinding{}
			if err := yaml.Unmarshal([]byte(doc), binding); err != nil {
				t.Fatal(err)
			}
			binding.Name = ns + ":" + binding.Name
			binding.RoleRef.Name = ns + ":" + binding.RoleRef.Name
			for i := range binding.Subjects {
				binding.Subjects[i].Namespace = ns
			}
			objs = append(objs, binding)
		}
	}
	if len(objs) != 2 {
		t.Fatalf("%s: found %d of the operator's ClusterRole and ClusterRoleBinding, want 2", fixture, len(objs))
	}
	for _, obj := range objs {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
}

// grantMetrics lets ns/sa get the non-resource URL /metrics, as a Prometheus needs, with the
// ClusterRole the guard ships for its scrapers (config/rbac/metrics_reader_role.yaml; the
// chart's metricsReader.serviceAccounts binds the same), under a name of the test's own.
func grantMetrics(t *testing.T, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join(repo, "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, role); err != nil {
		t.Fatal(err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: ns + ":metrics-reader"}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + ":metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
}

func serviceAccount(t *testing.T, ns, name string) string {
	t.Helper()
	if err := env.Client.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func token(t *testing.T, ns, sa string) string {
	t.Helper()
	tok, err := env.ServiceAccountToken(context.Background(), ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitAllowed waits until the API server's RBAC authorizer allows user the access (its
// caches follow new bindings with a small delay).
func waitAllowed(t *testing.T, user string, res *authorizationv1.ResourceAttributes, nonRes *authorizationv1.NonResourceAttributes) {
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
		return sar.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("RBAC does not allow %s %+v%+v: %v (reason: %q)", user, res, nonRes, err, reason)
	}
}

type scrapeResult struct {
	status int
	body   string
	leaf   *x509.Certificate // the certificate the server presented
	err    error
}

// scrape GETs https://addr/metrics on a new connection (so each call sees the certificate
// served now) with the TLS settings and, unless empty, the bearer token.
func scrape(t *testing.T, addr string, tlsConfig *tls.Config, bearer string) scrapeResult {
	t.Helper()
	httpClient := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true},
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return scrapeResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := scrapeResult{status: resp.StatusCode, body: string(body), err: err}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		r.leaf = resp.TLS.PeerCertificates[0]
	}
	return r
}

// metricFamilies lists the metric families of Prometheus text whose names start with one of
// the prefixes.
func metricFamilies(text string, prefixes ...string) []string {
	var names []string
	for _, line := range strings.Split(text, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ = strings.Cut(name, " ")
			if slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
				names = append(names, name)
			}
		}
	}
	return names
}

// secretMountPath is where the manager container mounts the guard's Secret volume.
func secretMountPath(t *testing.T, o framework.Operator, secret string) string {
	t.Helper()
	if !mountsSecret(o.Template.Spec, secret) {
		t.Fatalf("the StatefulSet does not mount Secret %s", secret)
	}
	for _, m := range o.Template.Spec.Containers[o.Op.ContainerIndex].VolumeMounts {
		if m.Name == keys.VolumeName {
			if !m.ReadOnly {
				t.Errorf("volume %s is mounted read-write", m.Name)
			}
			return m.MountPath
		}
	}
	t.Fatalf("the manager container does not mount volume %s", keys.VolumeName)
	return ""
}

// projectSecret writes the Secret's keys into dir the way the kubelet projects a Secret
// volume: files in a timestamped directory, a ..data symlink to it swapped atomically with a
// rename, and one symlink per key through ..data. Calling it again updates every key at once.
func projectSecret(dir string, data map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := os.MkdirTemp(dir, ".."+time.Now().Format("2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	for key, value := range data {
		if err := os.WriteFile(filepath.Join(ts, key), value, 0o600); err != nil {
			return err
		}
	}
	dataLink := filepath.Join(dir, "..data")
	old, _ := os.Readlink(dataLink)
	tmpLink := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return err
	}
	if err := os.Rename(tmpLink, dataLink); err != nil {
		return err
	}
	for key := range data {
		link := filepath.Join(dir, key)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(path.Join("..data", key), link); err != nil {
			return err
		}
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

func writeFile(t *testing.T, file, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// configMapData reads a ConfigMap's key from a manifest file, as it was applied.
func configMapData(t *testing.T, manifest, name, key string) string {
	t.Helper()
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		cm := &corev1.ConfigMap{}
		if err := yaml.Unmarshal([]byte(doc), cm); err == nil && cm.Kind == "ConfigMap" && cm.Name == name {
			return cm.Data[key]
		}
	}
	t.Fatalf("%s: no ConfigMap %s", manifest, name)
	return ""
}
