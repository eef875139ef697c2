package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is an HTTP client for a webhook as kube-apiserver's is: TLS, HTTP/2 when the
// server offers it (one connection, streams multiplexed), otherwise HTTP/1.1 with kept-alive
// connections from a pool (client-go keeps 25 idle per host, and opens more as needed).
func newClient(pool *x509.CertPool, timeout time.Duration) *http.Client {
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &http.Client{Transport: t, Timeout: timeout}
}

// load is one run's load: open loop at Rate requests a second, or closed loop with
// Concurrency callers; at most Count requests and Duration, whichever ends first.
type load struct {
	Rate        int
	Concurrency int
	Count       int
	Duration    time.Duration
}

func (l load) String() string {
	if l.Rate > 0 {
		return fmt.Sprintf("open %d/s", l.Rate)
	}
	return fmt.Sprintf("closed c=%d", l.Concurrency)
}

// outcome is what one run measured at the client.
type outcome struct {
	Sent, OK, Shed, Errors, Overrun int64
	// Latencies of the answered requests (200), from when each was due (open loop: its
	// slot in the schedule, so that a server that falls behind is charged for the wait).
	Latencies []time.Duration
	// ShedLatencies are those of the requests answered 429.
	ShedLatencies []time.Duration
	Elapsed       time.Duration
	Protocol      string
	FirstError    string
}

// maxOutstanding bounds the requests in flight of an open loop: a server slower than the
// rate must not make the driver itself grow without bound. A request that would exceed it
// counts as Overrun, and is not sent.
const maxOutstanding = 5000

// drive sends body to url with load l.
func drive(ctx context.Context, c *http.Client, url string, body []byte, l load) outcome {
	var (
		mu       sync.Mutex
		out      outcome
		inflight atomic.Int64
		wg       sync.WaitGroup
	)
	record := func(due time.Time) {
		inflight.Add(1)
		defer inflight.Add(-1)
		code, proto, err := post(ctx, c, url, body)
		lat := time.Since(due)
		mu.Lock()
		defer mu.Unlock()
		out.Sent++
		if out.Protocol == "" && proto != "" {
			out.Protocol = proto
		}
		switch {
		case err != nil:
			out.Errors++
			if out.FirstError == "" {
				out.FirstError = err.Error()
			}
		case code == http.StatusOK:
			out.OK++
			out.Latencies = append(out.Latencies, lat)
		case code == http.StatusTooManyRequests:
			out.Shed++
			out.ShedLatencies = append(out.ShedLatencies, lat)
		default:
			out.Errors++
			if out.FirstError == "" {
				out.FirstError = fmt.Sprintf("HTTP %d", code)
			}
		}
	}
	start := time.Now()
	deadline := start.Add(l.Duration)
	if l.Rate > 0 {
		interval := time.Second / time.Duration(l.Rate)
		for i := 0; i < l.Count; i++ {
			due := start.Add(time.Duration(i) * interval)
			if due.After(deadline) || ctx.Err() != nil {
				break
			}
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			if inflight.Load() >= maxOutstanding {
				mu.Lock()
				out.Overrun++
				mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				record(due)
			}()
		}
	} else {
		var next atomic.Int64
		for range l.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(l.Count) && time.Now().Before(deadline) && ctx.Err() == nil {
					record(time.Now())
				}
			}()
		}
	}
	wg.Wait()
	out.Elapsed = time.Since(start)
	return out
}

// post sends one admission as kube-apiserver's webhook client (client-go's REST client) does:
// an answer 429 or 5xx with a Retry-After header is retried after that many seconds, up to
// 10 times, within the request's timeout.
func post(ctx context.Context, c *http.Client, url string, body []byte) (int, string, error) {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		code, proto, after, err := postOnce(ctx, c, url, body)
		if err != nil || (code != http.StatusTooManyRequests && code < 500) || after < 0 || attempt == 10 {
			return code, proto, err
		}
		select {
		case <-ctx.Done():
			return 0, proto, ctx.Err()
		case <-time.After(time.Duration(after) * time.Second):
		}
	}
}

// postOnce sends one request; after is the answer's Retry-After in seconds, -1 if none.
func postOnce(ctx context.Context, c *http.Client, url string, body []byte) (code int, proto string, after int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", -1, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", -1, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, resp.Proto, -1, err
	}
	after = -1
	if v, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && v >= 0 {
		after = v
	}
	return resp.StatusCode, resp.Proto, after, nil
}

// percentile of sorted durations (nearest rank); 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// quantiles are p50, p90, p99 and max.
func quantiles(d []time.Duration) [4]time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	var m time.Duration
	if len(s) > 0 {
		m = s[len(s)-1]
	}
	return [4]time.Duration{percentile(s, 0.50), percentile(s, 0.90), percentile(s, 0.99), m}
}
