// Package serving hardens the guard's own servers, the admission webhook and the metrics
// endpoint: TLS 1.2 at least (1.3 is negotiated whenever the client offers it), HTTP/1.1 only
// unless HTTP/2 is asked for (the rapid-reset class of HTTP/2 attacks, CVE-2023-44487 and
// CVE-2023-39325, is why kubebuilder turns it off), bounded read, write and idle times, a bound
// on admissions in flight, and 401 rather than 500 for a bearer token the API server rejects.
package serving

import (
	"crypto/tls"
)

// TLSOptions is the TLS configuration of both servers, for webhook.Options.TLSOpts and
// metricsserver.Options.TLSOpts: TLS 1.2 at least, and ALPN offering http/1.1 only unless
// enableHTTP2.
func TLSOptions(enableHTTP2 bool) []func(*tls.Config) {
	return []func(*tls.Config){func(c *tls.Config) {
		c.MinVersion = tls.VersionTLS12
		if enableHTTP2 {
			c.NextProtos = []string{"h2", "http/1.1"}
		} else {
			c.NextProtos = []string{"http/1.1"}
		}
	}}
}
