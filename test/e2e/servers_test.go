package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// startServers runs a second guard server in this process, with its default flags, its
// metrics endpoint secure on a port of its own (authenticating and authorizing against the
// real API server) and its webhook server on another, and returns both addresses.
func startServers(t *testing.T) (metrics, webhook string) {
	t.Helper()
	mp, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	wp, err := framework.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	o := &app.ServerOptions{}
	fs := pflag.NewFlagSet("eck-metrics-guard", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{
		"--metrics-bind-address=127.0.0.1:" + fmt.Sprint(mp), "--health-probe-bind-address=0", "--controller=false",
		"--webhook-host=127.0.0.1", "--webhook-port=" + fmt.Sprint(wp), "--webhook-cert-dir=" + env.Environment.WebhookInstallOptions.LocalServingCertDir,
	}); err != nil {
		t.Fatal(err)
	}
	mgr, err := app.NewManagerFor(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the second guard did not stop")
		}
	})
	metrics, webhook = fmt.Sprintf("127.0.0.1:%d", mp), fmt.Sprintf("127.0.0.1:%d", wp)
	framework.Eventually(t, "the metrics and webhook servers to listen", func() (bool, error) {
		for _, addr := range []string{metrics, webhook} {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return false, nil
			}
			conn.Close()
		}
		return true, nil
	})
	return metrics, webhook
}

// TestMetricsEndpointAuth: the guard's own metrics endpoint, against the real API server's
// TokenReviews and SubjectAccessReviews: no token and a garbage token are 401 (controller-
// runtime's filter answers a garbage token 500), a valid token without get on /metrics 403,
// one with it 200.
func TestMetricsEndpointAuth(t *testing.T) {
	metrics, _ := startServers(t)
	ctx := context.Background()
	ns := env.Namespace(t, "e2e-metrics-auth", nil, nil)
	for _, name := range []string{"scraper", "nobody"} {
		if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-metrics-reader-"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-metrics-reader-"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}}}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.Delete(ctx, binding)
		_ = env.Client.Delete(ctx, role)
	})
	scraper, err := env.ServiceAccountToken(ctx, ns, "scraper")
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := env.ServiceAccountToken(ctx, ns, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, "https://"+metrics+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"garbage token", "garbage", http.StatusUnauthorized},
		{"garbage JWT", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl", http.StatusUnauthorized},
		{"valid token, no grant", nobody, http.StatusForbidden},
		{"valid token, get /metrics", scraper, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			framework.Eventually(t, fmt.Sprintf("%d", tc.want), func() (bool, error) {
				got := get(tc.token)
				if got != tc.want && got != http.StatusForbidden { // RBAC caches settle in ms
					t.Fatalf("%s: %d, want %d", tc.name, got, tc.want)
				}
				return got == tc.want, nil
			})
		})
	}
}

// TestServersTLS: both servers of the running guard refuse TLS 1.1, negotiate TLS 1.3 when
// offered, and answer ALPN h2+http/1.1 with http/1.1 (HTTP/2 is off by default).
func TestServersTLS(t *testing.T) {
	metrics, webhook := startServers(t)
	for name, addr := range map[string]string{"metrics": metrics, "webhook": webhook} {
		t.Run(name, func(t *testing.T) {
			d := &net.Dialer{Timeout: 5 * time.Second}
			if conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
				conn.Close()
				t.Error("TLS 1.1 accepted")
			}
			conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if st.Version != tls.VersionTLS13 {
				t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(st.Version))
			}
			if st.NegotiatedProtocol != "http/1.1" {
				t.Errorf("ALPN %q, want http/1.1", st.NegotiatedProtocol)
			}
		})
	}
}
