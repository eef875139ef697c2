package serving

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	opts   WebhookOptions
	inner  crwebhook.Server
	limit  chan struct{}
	bursts *burst

	mu      sync.Mutex
	started bool
}

var _ crwebhook.Server = &WebhookServer{}

// NewWebhookServer returns a server with the options (zero values are defaults).
func NewWebhookServer(o WebhookOptions) *WebhookServer {
	o.setDefaults()
	s := &WebhookServer{opts: o, inner: crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}),
		bursts: &burst{log: logf.Log.WithName("webhook-server"), quiet: time.Second}}
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
//
// The answer has no Retry-After header: kube-apiserver calls webhooks through client-go's
// REST client, which retries a 429 that has one (after the seconds it says, up to 10 times),
// so a Retry-After would turn every shed call into a wait until timeoutSeconds and multiply
// the load of a server that is already past its capacity.
//
// A request whose caller has gone (the API server's timeout) before a slot freed is not
// handled, and a body that cannot be read (the caller left while sending it) is dropped
// without the error line controller-runtime writes for each: under overload both come by the
// thousand. What was shed or dropped is logged once per burst (see burst).
func (s *WebhookServer) bounded(h http.Handler) http.Handler {
	if s.limit == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.limit <- struct{}{}:
			defer func() { <-s.limit }()
		default:
			shed.Inc()
			s.bursts.note(shedRequest, cap(s.limit))
			http.Error(w, fmt.Sprintf("eck-metrics-guard: %d admissions in flight, try again", cap(s.limit)), http.StatusTooManyRequests)
			return
		}
		if r.Context().Err() != nil {
			s.bursts.note(abandonedRequest, cap(s.limit))
			http.Error(w, "eck-metrics-guard: the caller has gone", http.StatusServiceUnavailable)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
			if err != nil {
				s.bursts.note(abandonedRequest, cap(s.limit))
				http.Error(w, "eck-metrics-guard: the request body could not be read", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		h.ServeHTTP(w, r)
	})
}

// maxConnections bounds the connections open at once, for a bound of maxInFlight admissions.
// Past capacity, kube-apiserver's client opens a new connection for each call that finds none
// idle (HTTP/1.1; with HTTP/2, when a connection's streams run out): thousands of TLS
// handshakes a second, each costing more CPU than shedding the call, and tens of KiB of
// buffers each. A connection over the bound is closed as soon as it is accepted, before its
// handshake: the API server sees the call fail at once and applies the failurePolicy. Twice
// the in-flight bound leaves room for every API server's pool of kept-alive connections
// (client-go keeps 25 idle per host) and for the calls that are answered 429.
func maxConnections(maxInFlight int) int { return 2 * maxInFlight }

// connLimit is a listener that closes the connections accepted past max open ones.
type connLimit struct {
	net.Listener
	max    int64
	open   atomic.Int64
	bursts *burst
}

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			refused.Inc()
			l.bursts.note(refusedConnection, int(l.max/2))
			_ = c.Close() // before any TLS: costs the accept only
			continue
		}
		return &countedConn{Conn: c, open: &l.open}, nil
	}
}

// countedConn gives its place back once, when closed.
type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

// maxBody is read ahead of the handler; controller-runtime refuses a body larger than 7 MiB,
// so what it is given past this is refused there, as before.
const maxBody = 8 << 20

// Kinds of what bursts counts.
const (
	shedRequest = iota
	abandonedRequest
	refusedConnection
)

// burst logs overload once per burst rather than once per request: the first request shed
// (or abandoned) after a quiet second starts a burst and writes one line, with the counts of
// the burst before it; the eck_metrics_guard_webhook_shed_total metric counts every one.
type burst struct {
	log   logr.Logger
	quiet time.Duration

	mu                         sync.Mutex
	last, began                time.Time
	shed, abandoned, refused   int
	bursts                     int
	prevShed, prevAbd, prevRef int
}

func (b *burst) note(kind, limit int) {
	now := time.Now()
	b.mu.Lock()
	newBurst := b.last.IsZero() || now.Sub(b.last) > b.quiet
	if newBurst {
		if !b.last.IsZero() {
			b.prevShed, b.prevAbd, b.prevRef = b.shed, b.abandoned, b.refused
		}
		b.shed, b.abandoned, b.refused, b.began = 0, 0, 0, now
		b.bursts++
	}
	b.last = now
	switch kind {
	case shedRequest:
		b.shed++
	case abandonedRequest:
		b.abandoned++
	default:
		b.refused++
	}
	prevShed, prevAbd, prevRef, n := b.prevShed, b.prevAbd, b.prevRef, b.bursts
	b.mu.Unlock()
	if newBurst {
		b.log.Info("overloaded: answering 429 to admissions past --webhook-max-in-flight, closing connections past twice that, dropping calls whose caller left; logged once per burst (a quiet second ends it)",
			"maxInFlight", limit, "burst", n, "previousBurstShed", prevShed, "previousBurstAbandoned", prevAbd, "previousBurstRefusedConnections", prevRef)
	}
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
	tcp, err := net.Listen("tcp", net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)))
	if err != nil {
		return err
	}
	if s.limit != nil { // below TLS: the http.Server must see *tls.Conn (handshake, ALPN)
		tcp = &connLimit{Listener: tcp, max: int64(maxConnections(cap(s.limit))), bursts: s.bursts}
	}
	listener := tls.NewListener(tcp, cfg)
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
