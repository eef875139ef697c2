package serving

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"time"
)

// The tests run the real WebhookServer on 127.0.0.1, with a certificate of their own, and
// talk to it over TCP and TLS as clients (and attackers) would. Every load loop is bounded
// in count and in time.

// selfSigned writes tls.crt and tls.key for 127.0.0.1 into a new directory.
func selfSigned(t *testing.T) (dir string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "guard"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return dir, pool
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a WebhookServer with o (Host, Port and CertDir set here) and the handler at
// /mutate, until the test ends.
func start(t *testing.T, o WebhookOptions, h http.Handler) (addr string, pool *x509.CertPool) {
	t.Helper()
	o.CertDir, pool = selfSigned(t)
	o.Host, o.Port = "127.0.0.1", freePort(t)
	s := NewWebhookServer(o)
	s.Register("/mutate", h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the server did not stop")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for s.StartedChecker()(nil) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return net.JoinHostPort(o.Host, fmt.Sprint(o.Port)), pool
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = io.WriteString(w, "ok")
})

func TestTLSVersions(t *testing.T) {
	addr, pool := start(t, WebhookOptions{}, ok)
	for _, tc := range []struct {
		name     string
		min, max uint16
		want     uint16 // 0: refused
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, 0},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS11, 0},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, tls.VersionTLS12},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, tls.VersionTLS13},
		{"client offers 1.0 to 1.3", tls.VersionTLS10, tls.VersionTLS13, tls.VersionTLS13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tc.min, MaxVersion: tc.max})
			if tc.want == 0 {
				if err == nil {
					conn.Close()
					t.Fatalf("%s accepted", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if v := conn.ConnectionState().Version; v != tc.want {
				t.Errorf("negotiated %s, want %s", tls.VersionName(v), tls.VersionName(tc.want))
			}
		})
	}
}

func TestALPN(t *testing.T) {
	for _, tc := range []struct {
		http2 bool
		want  string
	}{{false, "http/1.1"}, {true, "h2"}} {
		t.Run(fmt.Sprintf("EnableHTTP2=%v", tc.http2), func(t *testing.T) {
			addr, pool := start(t, WebhookOptions{EnableHTTP2: tc.http2}, ok)
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("ALPN negotiated %q, want %q", got, tc.want)
			}
			// A client that offers h2 only gets no protocol by default, and cannot speak h2.
			if !tc.http2 {
				h2, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
				if err == nil {
					defer h2.Close()
					if got := h2.ConnectionState().NegotiatedProtocol; got == "h2" {
						t.Error("h2 negotiated with HTTP/2 off")
					}
				}
			}
		})
	}
}

// TestSlowClientsCutOff: a client that sends its headers, or its body, a byte at a time is
// disconnected once the read timeouts pass, and so is an idle kept-alive connection; 50 such
// clients at once are all cut off, and a normal request still goes through meanwhile.
func TestSlowClientsCutOff(t *testing.T) {
	slowClients(t, WebhookOptions{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, IdleTimeout: time.Second})
}

// TestSlowClientsCutOffAtDefaults is the same with the server's defaults (5s for the headers,
// 10s for the whole request, 60s idle: the idle part is left out), as the guard runs.
// SLOW_CLIENTS=500 repeats issue 11's measurement (500 slow-body connections).
func TestSlowClientsCutOffAtDefaults(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 15s")
	}
	o := WebhookOptions{}
	o.setDefaults()
	slowClients(t, o)
}

func slowClients(t *testing.T, o WebhookOptions) {
	addr, pool := start(t, o, ok)
	dial := func() *tls.Conn {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	// held sends head, then one byte every 100ms, and reports how long the server kept the
	// connection (bounded at three times the read timeout: past that the test fails).
	held := func(head string) time.Duration {
		conn := dial()
		defer conn.Close()
		began := time.Now()
		if _, err := io.WriteString(conn, head); err != nil {
			return time.Since(began)
		}
		read := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, conn) // returns when the server closes it
			close(read)
		}()
		for time.Since(began) < 3*o.ReadTimeout {
			select {
			case <-read:
				return time.Since(began)
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte("a")); err != nil {
					<-read
					return time.Since(began)
				}
			}
		}
		return time.Since(began)
	}
	clients := 50
	if n := os.Getenv("SLOW_CLIENTS"); n != "" {
		fmt.Sscan(n, &clients)
	}
	for _, tc := range []struct {
		name  string
		head  string
		limit time.Duration
	}{
		{"slow headers", "POST /mutate HTTP/1.1\r\nHost: guard\r\nX-Slow: ", o.ReadHeaderTimeout},
		{"slow body", "POST /mutate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", o.ReadTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			durations := make(chan time.Duration, clients)
			for range clients {
				wg.Add(1)
				go func() { defer wg.Done(); durations <- held(tc.head) }()
			}
			// Meanwhile a normal request is served.
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			resp, err := c.Post("https://"+addr+"/mutate", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Errorf("a normal request during the attack: %v", err)
			} else {
				resp.Body.Close()
			}
			wg.Wait()
			close(durations)
			var longest time.Duration
			for d := range durations {
				longest = max(longest, d)
			}
			t.Logf("%d clients: longest held %s (timeout %s)", clients, longest.Round(time.Millisecond), tc.limit)
			if longest > tc.limit+time.Second {
				t.Errorf("a client was held %s, past the %s timeout", longest, tc.limit)
			}
		})
	}
	if o.IdleTimeout > 5*time.Second {
		return
	}
	t.Run("idle keep-alive", func(t *testing.T) {
		conn := dial()
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST /mutate HTTP/1.1\r\nHost: guard\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		began := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = br.ReadByte()
		if idle := time.Since(began); err == nil || errors.Is(err, os.ErrDeadlineExceeded) || idle > o.IdleTimeout+time.Second {
			t.Errorf("idle connection: %v after %s, want closed after about %s", err, idle, o.IdleTimeout)
		}
	})
}

// TestOverloadShedsFast: with MaxInFlight admissions stuck in the handler, each further one is
// answered 429 at once (not after the API server's timeout), and once they finish the server
// serves again.
func TestOverloadShedsFast(t *testing.T) {
	const inFlight, extra = 4, 200
	release := make(chan struct{})
	entered := make(chan struct{}, inFlight)
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("stuck") != "" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
		}
		_, _ = io.WriteString(w, "ok")
	})
	addr, pool := start(t, WebhookOptions{MaxInFlight: inFlight}, stuck)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxConnsPerHost: 0}}
	var wg sync.WaitGroup
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Post("https://"+addr+"/mutate?stuck=1", "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	for range inFlight {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the stuck requests did not reach the handler")
		}
	}
	before := Shed()
	var slowest time.Duration
	began := time.Now()
	for i := range extra {
		start := time.Now()
		resp, err := c.Post("https://"+addr+"/mutate", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slowest = max(slowest, time.Since(start))
		// No Retry-After: client-go, which the API server calls webhooks with, would wait and
		// retry rather than apply the failurePolicy.
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "" {
			t.Fatalf("request %d with %d in flight: %d (Retry-After %q), want 429 without Retry-After", i, inFlight, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	total := time.Since(began)
	t.Logf("%d requests shed in %s, slowest %s", extra, total.Round(time.Millisecond), slowest.Round(time.Microsecond))
	if slowest > time.Second {
		t.Errorf("shedding took %s, want well under the API server's timeout", slowest)
	}
	if got := Shed() - before; got != extra {
		t.Errorf("eck_metrics_guard_webhook_shed_total grew by %v, want %d", got, extra)
	}
	close(release)
	wg.Wait()
	resp, err := c.Post("https://"+addr+"/mutate", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the load: %d, want 200", resp.StatusCode)
	}
}

// TestBurstLogsOnce: however many requests a burst sheds, it writes one line, and the next
// burst's line carries the counts of the one before.
func TestBurstLogsOnce(t *testing.T) {
	var lines []string
	b := &burst{log: funcr.New(func(prefix, args string) { lines = append(lines, args) }, funcr.Options{}), quiet: 50 * time.Millisecond}
	for i := range 1000 {
		b.note(i%3/2, 100) // shed twice as often as abandoned
	}
	if len(lines) != 1 {
		t.Fatalf("a burst of 1000 wrote %d lines, want 1: %v", len(lines), lines)
	}
	time.Sleep(100 * time.Millisecond)
	b.note(shedRequest, 100)
	if len(lines) != 2 || !strings.Contains(lines[1], `"previousBurstShed"=667`) || !strings.Contains(lines[1], `"previousBurstAbandoned"=333`) {
		t.Fatalf("second burst: %v", lines)
	}
}
