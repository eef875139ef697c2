package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Defaults of WebhookOptions. The API server gives up on a webhook after its timeoutSeconds
// (5 in the guard's configuration, at most 30): nothing of a request may take longer than that.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxInFlight       = 100
)

// WebhookOptions configure WebhookServer.
type WebhookOptions struct {
	Host    string
	Port    int
	CertDir string
	// EnableHTTP2 lets clients negotiate HTTP/2; off by default.
	EnableHTTP2 bool
	// ReadHeaderTimeout bounds the request's headers, ReadTimeout the whole request
	// (headers and body: a client that sends its body slowly is cut off), WriteTimeout the
	// answer, IdleTimeout a kept-alive connection between requests. Zero means the default.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	// MaxInFlight bounds the admissions handled at once; one more is answered 429 at once
	// rather than queued until the API server's timeout. Zero means DefaultMaxInFlight,
	// negative means no bound.
	MaxInFlight int
}

func (o *WebhookOptions) setDefaults() {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&o.ReadTimeout, DefaultReadTimeout}, {&o.WriteTimeout, DefaultWriteTimeout}, {&o.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
}

// WebhookServer is a webhook.Server with the http.Server bounds that controller-runtime's
// DefaultServer does not expose (its header timeout is 32s, it has no read or write timeout,
// and it offers h2). Hooks are registered in a DefaultServer, never started, for its mux:
// they keep controller-runtime's webhook metrics (controller_runtime_webhook_*), and each is
// behind the in-flight bound.
type WebhookServer struct {
	opts  WebhookOptions
	inner crwebhook.Server
	limit chan struct{}

	mu      sync.Mutex
	started bool
}

var _ crwebhook.Server = &WebhookServer{}

// NewWebhookServer returns a server with the options (zero values are defaults).
func NewWebhookServer(o WebhookOptions) *WebhookServer {
	o.setDefaults()
	s := &WebhookServer{opts: o, inner: crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir})}
	if o.MaxInFlight > 0 {
		s.limit = make(chan struct{}, o.MaxInFlight)
	}
	return s
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (*WebhookServer) NeedLeaderElection() bool { return false }

// Register serves hook at path, behind the in-flight bound.
func (s *WebhookServer) Register(path string, hook http.Handler) {
	s.inner.Register(path, s.bounded(hook))
}

// WebhookMux is the mux of the registered hooks.
func (s *WebhookServer) WebhookMux() *http.ServeMux { return s.inner.WebhookMux() }

// bounded answers 429 Too Many Requests, without reading the body, when MaxInFlight
// requests are in flight. The API server takes it as a failed call and applies the
// webhook's failurePolicy (Ignore: admitted unchanged; the controller heals it later),
// right away instead of after timeoutSeconds.
func (s *WebhookServer) bounded(h http.Handler) http.Handler {
	if s.limit == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.limit <- struct{}{}:
			defer func() { <-s.limit }()
			h.ServeHTTP(w, r)
		default:
			shed.Inc()
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("eck-metrics-guard: %d admissions in flight, try again", cap(s.limit)), http.StatusTooManyRequests)
		}
	})
}

// Start serves until ctx ends, as DefaultServer does (certificate files watched and
// reloaded), with the bounds of the options.
func (s *WebhookServer) Start(ctx context.Context) error {
	log := logf.Log.WithName("webhook-server")
	cfg := &tls.Config{}
	for _, op := range TLSOptions(s.opts.EnableHTTP2) {
		op(cfg)
	}
	watcher, err := certwatcher.New(filepath.Join(s.opts.CertDir, "tls.crt"), filepath.Join(s.opts.CertDir, "tls.key"))
	if err != nil {
		return err
	}
	cfg.GetCertificate = watcher.GetCertificate
	go func() {
		if err := watcher.Start(ctx); err != nil {
			log.Error(err, "certificate watcher error")
		}
	}()
	listener, err := tls.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)), cfg)
	if err != nil {
		return err
	}
	srv := &http.Server{
		BaseContext:       func(net.Listener) context.Context { return ctx },
		Handler:           s.WebhookMux(),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		// TLS handshake errors and cut-off clients, at V(1): an attack must not flood the log.
		ErrorLog: stdlog.New(logWriter{log}, "", 0),
	}
	if !s.opts.EnableHTTP2 {
		// An empty, non-nil TLSNextProto turns HTTP/2 off even if ALPN were to offer it.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	log.Info("Serving webhook server", "host", s.opts.Host, "port", s.opts.Port, "http2", s.opts.EnableHTTP2,
		"readHeaderTimeout", s.opts.ReadHeaderTimeout, "readTimeout", s.opts.ReadTimeout, "maxInFlight", s.opts.MaxInFlight)
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			log.Error(err, "error shutting down the webhook server")
		}
		close(done)
	}()
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	if err := srv.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}

// StartedChecker is healthy once the server accepts TLS connections.
func (s *WebhookServer) StartedChecker() healthz.Checker {
	return func(*http.Request) error {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if !started {
			return fmt.Errorf("webhook server has not been started yet")
		}
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // a reachability check
		if err != nil {
			return fmt.Errorf("webhook server is not reachable: %w", err)
		}
		return conn.Close()
	}
}

// logWriter turns the http.Server's log lines into logr's.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.V(1).Info(strings.TrimSpace(string(p)))
	return len(p), nil
}
