package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

type certPool = *x509.CertPool

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pooled adds up the repetitions of one case and load against one server.
type pooled struct {
	measured
	runs int
}

func (p *pooled) add(m measured) {
	p.runs++
	p.ServerKind = m.ServerKind
	p.Sent += m.Sent
	p.OK += m.OK
	p.Shed += m.Shed
	p.Errors += m.Errors
	p.Overrun += m.Overrun
	p.Latencies = append(p.Latencies, m.Latencies...)
	p.ShedLatencies = append(p.ShedLatencies, m.ShedLatencies...)
	p.Elapsed += m.Elapsed
	p.CPU += m.CPU
	p.PeakRSS = max(p.PeakRSS, m.PeakRSS)
	p.LogLines += m.LogLines
	if p.Protocol == "" {
		p.Protocol = m.Protocol
	}
	if p.FirstError == "" {
		p.FirstError = m.FirstError
	}
}

// cpuPerRequest is the server's CPU per request sent.
func (p *pooled) cpuPerRequest() time.Duration {
	if p.Sent == 0 {
		return 0
	}
	return p.CPU / time.Duration(p.Sent)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// compare runs every case and load against the guard and the null webhook, alternating, and
// prints a table with the guard's figures as ratios to the null webhook's.
func (r *runner) compare(ctx context.Context, proto string, cases []captures.Case, loads []load, reps int) error {
	null, err := r.start(ctx, "null", proto, r.maxInFlight)
	if err != nil {
		return err
	}
	defer null.stop()
	guard, err := r.start(ctx, "guard", proto, r.maxInFlight)
	if err != nil {
		return err
	}
	defer guard.stop()
	fmt.Printf("\n### %s (servers %s), %d repetition(s) of each pair of runs, alternating\n\n", proto, map[string]string{"http1": "offer HTTP/1.1 only", "http2": "offer h2"}[proto], reps)
	fmt.Println("| case | load | achieved/s | guard p50 / p90 / p99 / max ms | null p50 / p90 / p99 / max ms | p50 ratio | p99 ratio | CPU/req guard / null µs | **CPU ratio** | peak RSS guard / null MiB | RSS ratio | errors+shed guard / null |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cases {
		for _, l := range loads {
			var g, n pooled
			for rep := range reps {
				order := []*server{null, guard}
				if rep%2 == 1 {
					order = []*server{guard, null}
				}
				for _, s := range order {
					m, err := r.run(ctx, s, c.Body, l)
					if err != nil {
						return err
					}
					if s == guard {
						g.add(m)
					} else {
						n.add(m)
					}
				}
			}
			gq, nq := quantiles(g.Latencies), quantiles(n.Latencies)
			achieved := float64(g.OK) / g.Elapsed.Seconds()
			fmt.Printf("| %s | %s | %.0f | %s / %s / %s / %s | %s / %s / %s / %s | %s | %s | %.0f / %.0f | **%s** | %.1f / %.1f | %s | %d / %d |\n",
				c.Name, l, achieved,
				ms(gq[0]), ms(gq[1]), ms(gq[2]), ms(gq[3]), ms(nq[0]), ms(nq[1]), ms(nq[2]), ms(nq[3]),
				ratio(float64(gq[0]), float64(nq[0])), ratio(float64(gq[2]), float64(nq[2])),
				us(g.cpuPerRequest()), us(n.cpuPerRequest()), ratio(float64(g.cpuPerRequest()), float64(n.cpuPerRequest())),
				mib(g.PeakRSS), mib(n.PeakRSS), ratio(float64(g.PeakRSS), float64(n.PeakRSS)),
				g.Errors+g.Shed+g.Overrun, n.Errors+n.Shed+n.Overrun)
			for _, p := range []*pooled{&g, &n} {
				if p.FirstError != "" {
					fmt.Fprintf(os.Stderr, "load: %s %s %s: %d errors, first: %s\n", p.ServerKind, c.Name, l, p.Errors, p.FirstError)
				}
			}
			if g.Protocol != "" && !strings.HasPrefix(g.Protocol, map[string]string{"http1": "HTTP/1", "http2": "HTTP/2"}[proto]) {
				return fmt.Errorf("%s: the client spoke %s", proto, g.Protocol)
			}
		}
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// overload measures the guard's capacity (closed loop, the ECK StatefulSet), then sends 3x
// that open loop for 5 s: with the in-flight bound (the default) and without (what it did
// before the bound), over each protocol. It reports goodput, what was shed, latencies,
// memory against the server's RSS before the burst, and the log lines the burst caused.
func (r *runner) overload(ctx context.Context, protos []string) error {
	c, err := captures.Load(captures.ECKStatefulSet)
	if err != nil {
		return err
	}
	fmt.Println("\n| protocol | in-flight bound | capacity/s | offered/s | answered 200/s (goodput) | shed 429 | errors/timeouts | p50 / p99 200 ms | p99 429 ms | RSS before / peak MiB | log lines |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, proto := range protos {
		for _, bound := range []int{r.maxInFlight, -1} {
			s, err := r.start(ctx, "guard", proto, bound)
			if err != nil {
				return err
			}
			capRun, err := r.run(ctx, s, c.Body, load{Concurrency: 16, Count: 1_000_000, Duration: 3 * time.Second})
			if err != nil {
				s.stop()
				return err
			}
			capacity := float64(capRun.OK) / capRun.Elapsed.Seconds()
			rate := int(3 * capacity)
			m, err := r.run(ctx, s, c.Body, load{Rate: rate, Count: rate * 5, Duration: 5 * time.Second})
			s.stop()
			if err != nil {
				return err
			}
			q, sq := quantiles(m.Latencies), quantiles(m.ShedLatencies)
			name := "none"
			if bound >= 0 {
				name = fmt.Sprint(bound)
				if bound == 0 {
					name = "default (100)"
				}
			}
			fmt.Printf("| %s | %s | %.0f | %d | %.0f | %d | %d | %s / %s | %s | %.1f / %.1f | %d |\n",
				m.Protocol, name, capacity, rate, float64(m.OK)/m.Elapsed.Seconds(), m.Shed, m.Errors+m.Overrun,
				ms(q[0]), ms(q[2]), ms(sq[2]), mib(m.RSSBefore), mib(m.PeakRSS), m.LogLines)
			if m.FirstError != "" {
				fmt.Fprintf(os.Stderr, "load: overload %s bound %s: %d errors, first: %s\n", proto, name, m.Errors, m.FirstError)
			}
		}
	}
	return nil
}
