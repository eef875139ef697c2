package framework

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// APIServer is a kube-apiserver process the framework runs itself on the control plane's
// etcd, with the flags envtest gave its own: the one RestartAPIServer starts in place of
// the one before, or another one of a highly available control plane (StartAPIServer).
type APIServer struct {
	p *process
	// Port is its secure port on 127.0.0.1.
	Port int
	// Config reaches it as the admin (system:masters); Client uses it.
	Config *rest.Config
	Client client.Client
}

// LogPath is the file its output goes to.
func (s *APIServer) LogPath() string { return s.p.logPath }

// Restart is what RestartAPIServer measured.
type Restart struct {
	// Stopped: SIGTERM sent until the process was gone.
	Stopped time.Duration
	// Down: from the process gone until the new one answered /readyz (whileDown included).
	Down time.Duration
	// Started: from the new process started until it answered /readyz.
	Started time.Duration
	// Killed: it had not exited within the grace period after SIGTERM.
	Killed bool
}

// RestartAPIServer restarts the API server Env.Config points at, as an upgrade or a crash
// loop of a static Pod does: SIGTERM (its graceful shutdown), SIGKILL if it has not exited
// within grace, then, once it is gone,
// whileDown (if not nil; the API server is unreachable meanwhile), then a new kube-apiserver
// process with the very same flags (address, certificates, etcd; so clients keep their
// configuration) until it answers /readyz. Etcd and everything else keep running. Linux only
// (the flags are read from /proc).
func (e *Env) RestartAPIServer(ctx context.Context, grace time.Duration, whileDown func() error) (Restart, error) {
	var r Restart
	e.mu.Lock()
	current := e.apiServer
	e.mu.Unlock()
	var args []string
	var pid int
	if current != nil {
		args, pid = current.cmd.Args[1:], current.cmd.Process.Pid
		current.once.Do(func() {}) // its end is this restart's, not an error of Stop
	} else {
		var cmdline []string
		var err error
		if pid, cmdline, err = e.envtestAPIServer(); err != nil {
			return r, err
		}
		args = cmdline[1:]
	}
	began := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return r, fmt.Errorf("SIGTERM to kube-apiserver %d: %w", pid, err)
	}
	if err := waitGone(ctx, pid, grace); err != nil {
		// It stops serving at once but may take a minute to exit: cut its grace short, as
		// the kubelet does after terminationGracePeriodSeconds.
		r.Killed = true
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if err := waitGone(ctx, pid, 30*time.Second); err != nil {
			return r, err
		}
	}
	r.Stopped = time.Since(began)
	gone := time.Now()
	if whileDown != nil {
		if err := whileDown(); err != nil {
			return r, fmt.Errorf("while the API server was down: %w", err)
		}
	}
	e.mu.Lock()
	e.apiServerRuns++
	n := e.apiServerRuns
	e.mu.Unlock()
	started := time.Now()
	p, err := startProcess(e, "kube-apiserver", fmt.Sprintf("kube-apiserver-%d.log", n), filepath.Join(e.BinDir, "kube-apiserver"), args, nil)
	if err != nil {
		return r, err
	}
	p.cleanStop = true
	e.mu.Lock()
	e.apiServer = p
	e.mu.Unlock()
	if err := waitReady(ctx, p, e.Config, time.Minute); err != nil {
		return r, err
	}
	r.Started, r.Down = time.Since(started), time.Since(gone)
	return r, nil
}

// StartAPIServer starts another kube-apiserver on the control plane's etcd, with the flags of
// the one Env.Config points at but its own port, as the second API server of a highly
// available control plane: what is written through one is seen through the other. It is
// stopped with e, before the control plane. Both run on one host, so they share its API
// server identity Lease (kube-system/apiserver-<hash of the hostname>) and log conflicts
// updating it: harmless to the tests.
func (e *Env) StartAPIServer(ctx context.Context) (*APIServer, error) {
	var args []string
	e.mu.Lock()
	current := e.apiServer
	e.mu.Unlock()
	if current != nil {
		args = current.cmd.Args[1:]
	} else {
		_, cmdline, err := e.envtestAPIServer()
		if err != nil {
			return nil, err
		}
		args = cmdline[1:]
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args = withFlag(args, "secure-port", strconv.Itoa(port))
	e.mu.Lock()
	e.apiServerRuns++
	n := e.apiServerRuns
	e.mu.Unlock()
	p, err := startProcess(e, "kube-apiserver (second)", fmt.Sprintf("kube-apiserver-%d-second.log", n), filepath.Join(e.BinDir, "kube-apiserver"), args, nil)
	if err != nil {
		return nil, err
	}
	p.cleanStop = true
	e.mu.Lock()
	e.extraAPIServers = append(e.extraAPIServers, p)
	e.mu.Unlock()
	cfg := rest.CopyConfig(e.Config)
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	cfg.Host = "https://" + u.Hostname() + ":" + strconv.Itoa(port)
	if err := waitReady(ctx, p, cfg, time.Minute); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: e.Client.Scheme()})
	if err != nil {
		return nil, err
	}
	return &APIServer{p: p, Port: port, Config: cfg, Client: c}, nil
}

// envtestAPIServer finds the kube-apiserver envtest started (a child of this process whose
// secure port is Env.Config's), and its command line.
func (e *Env) envtestAPIServer() (int, []string, error) {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return 0, nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, fmt.Errorf("finding kube-apiserver needs /proc: %w", err)
	}
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		if end < 0 || !strings.HasSuffix(s[:end], "(kube-apiserver") {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if flagValue(cmdline[1:], "secure-port") == u.Port() {
			return pid, cmdline, nil
		}
	}
	return 0, nil, errors.New("no kube-apiserver child of this process serves " + e.Config.Host)
}

// waitGone waits for process pid to be gone (reaped by the one that started it).
func waitGone(ctx context.Context, pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("kube-apiserver %d still running after %s", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady polls /readyz of the API server at cfg every 100ms.
func waitReady(ctx context.Context, p *process, cfg *rest.Config, timeout time.Duration) error {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if p.hasExited() {
			return p.failure("exited while starting")
		}
		if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver at %s not ready within %s; last lines of %s:\n%s", cfg.Host, timeout, p.logPath, tail(p.logPath, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// flagValue is the value of --name=value in args ("" if absent).
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

// withFlag returns args with --name=value in place of any --name=... (appended if absent).
func withFlag(args []string, name, value string) []string {
	out := make([]string, 0, len(args)+1)
	for _, a := range args {
		if !strings.HasPrefix(a, "--"+name+"=") {
			out = append(out, a)
		}
	}
	return append(out, "--"+name+"="+value)
}
