// Command load drives the guard's webhook server and a null webhook on the same stack the way
// kube-apiserver drives a webhook, and reports latency, errors, server CPU per request and peak
// memory of each, the guard's as a ratio to the null webhook's measured in the same run.
//
// Both servers run as child processes of this command (the command itself, re-executed with
// -serve), so that /proc gives each one's CPU and memory alone: the guard's server is
// serving.WebhookServer with the guard's admission handler reading the captured cluster (see
// package captures) through its cached lookup; the null webhook is the same server with a
// handler that allows everything. Requests are the captured AdmissionReviews, sent over TLS:
// HTTP/2 when the server offers it, otherwise HTTP/1.1 with kept-alive connections from a
// pool. Runs alternate between the two servers (null, guard, guard, null, ...), so that a
// machine busy with other work weighs on both alike: read the ratios.
//
//	go run ./test/load              # every case, open loop at 200, 1,000 and 3,000/s, closed loop
//	go run ./test/load -quick       # what CI runs: two cases, short runs
//	go run ./test/load -overload    # 3x the guard's capacity, with and without the in-flight bound
//	go run ./test/load -apiserver 500  # unrelated creates through kube-apiserver, guard registered vs not
//	go run ./test/load -eck-apiserver 300  # ECK StatefulSet creates: no mutation, MutatingAdmissionPolicy, null webhook, the guard
//
// Every run is bounded in count and in time.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

func main() {
	var (
		serveKind   = flag.String("serve", "", "internal: run a webhook server (guard or null) instead of driving one")
		port        = flag.Int("port", 0, "internal: the port of -serve")
		certDir     = flag.String("cert-dir", "", "internal: the certificates of -serve")
		maxInFlight = flag.Int("max-in-flight", 0, "the servers' --webhook-max-in-flight (0: the guard's default, negative: no bound)")
		quick       = flag.Bool("quick", false, "a short run: two cases, an open loop at 200/s and a closed loop, 1 s each, one repetition")
		casesFlag   = flag.String("cases", strings.Join(captures.Names, ","), "the captured requests to send")
		loadsFlag   = flag.String("loads", "open:200,open:1000,open:3000,closed:8", "the loads: open:<rate/s> or closed:<concurrency>")
		duration    = flag.Duration("duration", 3*time.Second, "the length of each run")
		reps        = flag.Int("reps", 2, "repetitions of each pair of runs (alternating which server goes first)")
		protocols   = flag.String("protocols", "http1,http2", "the servers' protocols: http1 (the guard's default) and http2 (--enable-http2)")
		overload    = flag.Bool("overload", false, "measure the guard under 3x its capacity instead")
		timeout     = flag.Duration("timeout", 5*time.Second, "the client's timeout per request (the webhook's timeoutSeconds)")
		apiserver   = flag.Int("apiserver", 0, "measure n creates of each unrelated kind through a real kube-apiserver (make controlplane), the guard registered and not, instead")
		eckAPI      = flag.Int("eck-apiserver", 0, "measure n ECK StatefulSet creates per variant and round through a real kube-apiserver (make controlplane): no mutation, an in-tree MutatingAdmissionPolicy making the guard's change (ApplyConfiguration, JSONPatch), a null webhook, the guard (its operator's ConfigMap cached, and read live); instead")
		rounds      = flag.Int("rounds", 3, "with -apiserver and -eck-apiserver: rounds of the variants, alternating")
	)
	flag.Parse()
	if *serveKind != "" {
		if err := serve(*serveKind, *port, *certDir, os.Getenv("LOAD_HTTP2") == "1", *maxInFlight); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *quick {
		*casesFlag = captures.ECKStatefulSet + "," + captures.Unrelated
		*loadsFlag = "open:200,closed:4"
		*duration, *reps, *protocols = time.Second, 1, "http1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute) // bounded, whatever the flags
	defer cancel()
	if *apiserver > 0 {
		if err := throughAPIServer(ctx, min(*apiserver, 5000), min(*rounds, 10)); err != nil {
			cancel()
			fatal(err)
		}
		return
	}
	if *eckAPI > 0 {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := eckMutators(ctx, min(*eckAPI, 2000), min(*rounds, 10)); err != nil {
			cancel()
			fatal(err)
		}
		return
	}
	r, err := newRunner(*timeout, *maxInFlight)
	if err != nil {
		fatal(err)
	}
	defer r.cleanup()
	if *overload {
		if err := r.overload(ctx, strings.Split(*protocols, ",")); err != nil {
			fatal(err)
		}
		return
	}
	var loads []load
	for _, s := range strings.Split(*loadsFlag, ",") {
		kind, n, _ := strings.Cut(s, ":")
		v, err := strconv.Atoi(n)
		if err != nil || v <= 0 {
			fatal(fmt.Errorf("load %q: want open:<rate> or closed:<concurrency>", s))
		}
		l := load{Duration: *duration}
		switch kind {
		case "open":
			l.Rate, l.Count = v, int(float64(v)*duration.Seconds())
		case "closed":
			l.Concurrency, l.Count = v, 1_000_000
		default:
			fatal(fmt.Errorf("load %q: want open:<rate> or closed:<concurrency>", s))
		}
		loads = append(loads, l)
	}
	var cases []captures.Case
	for _, name := range strings.Split(*casesFlag, ",") {
		c, err := captures.Load(name)
		if err != nil {
			fatal(err)
		}
		cases = append(cases, c)
	}
	for _, proto := range strings.Split(*protocols, ",") {
		if err := r.compare(ctx, proto, cases, loads, *reps); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "load:", err)
	os.Exit(1)
}

// runner holds what the runs share: the certificates, the client settings, the log files.
type runner struct {
	dir         string
	certs       string
	timeout     time.Duration
	maxInFlight int
	pool        certPool
}

func newRunner(timeout time.Duration, maxInFlight int) (*runner, error) {
	dir, err := os.MkdirTemp("", "eck-metrics-guard-load-")
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		return nil, err
	}
	pool, err := writeCerts(certs)
	if err != nil {
		return nil, err
	}
	return &runner{dir: dir, certs: certs, timeout: timeout, maxInFlight: maxInFlight, pool: pool}, nil
}

func (r *runner) cleanup() {
	if os.Getenv("LOAD_KEEP") != "" {
		fmt.Fprintln(os.Stderr, "load: logs kept in", r.dir)
		return
	}
	_ = os.RemoveAll(r.dir)
}

// server is a child process serving one webhook.
type server struct {
	kind, proto string
	cmd         *exec.Cmd
	url, log    string
}

func (r *runner) start(ctx context.Context, kind, proto string, maxInFlight int) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s := &server{kind: kind, proto: proto, url: fmt.Sprintf("https://127.0.0.1:%d/mutate", port),
		log: filepath.Join(r.dir, fmt.Sprintf("%s-%s-%d.log", kind, proto, port))}
	logFile, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	s.cmd = exec.Command(self, "-serve", kind, "-port", strconv.Itoa(port), "-cert-dir", r.certs, "-max-in-flight", strconv.Itoa(maxInFlight))
	s.cmd.Env = append(os.Environ(), "LOAD_HTTP2="+map[bool]string{true: "1", false: "0"}[proto == "http2"])
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	// Ready when it answers an admission.
	probe, err := captures.Load(captures.Unrelated)
	if err != nil {
		return nil, err
	}
	c := newClient(r.pool, time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if code, _, err := post(ctx, c, s.url, probe.Body); err == nil && code == 200 {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the %s server did not answer in 30s (log %s)", kind, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// logLines counts the lines of the server's log.
func (s *server) logLines() int {
	b, err := os.ReadFile(s.log)
	if err != nil {
		return -1
	}
	return strings.Count(string(b), "\n")
}

// measured is one run against one server.
type measured struct {
	outcome
	CPU        time.Duration // the server's, during the run
	PeakRSS    int64
	RSSBefore  int64
	LogLines   int
	ServerKind string
}

// run drives one server with one load and measures it.
func (r *runner) run(ctx context.Context, s *server, body []byte, l load) (measured, error) {
	c := newClient(r.pool, r.timeout)
	defer c.CloseIdleConnections()
	// Warm the connections and the server up, outside the measurement.
	drive(ctx, c, s.url, body, load{Concurrency: 4, Count: 200, Duration: time.Second})
	if err := resetPeak(s.pid()); err != nil {
		return measured{}, err
	}
	before, _, err := memOf(s.pid())
	if err != nil {
		return measured{}, err
	}
	lines := s.logLines()
	cpu0, err := cpuOf(s.pid())
	if err != nil {
		return measured{}, err
	}
	out := drive(ctx, c, s.url, body, l)
	cpu1, err := cpuOf(s.pid())
	if err != nil {
		return measured{}, err
	}
	_, peak, err := memOf(s.pid())
	if err != nil {
		return measured{}, err
	}
	return measured{outcome: out, CPU: cpu1 - cpu0, PeakRSS: peak, RSSBefore: before, LogLines: s.logLines() - lines, ServerKind: s.kind}, nil
}
