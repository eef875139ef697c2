package framework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// eckModule is the Go module of the ECK operator, pinned in test/tools/eck/go.mod.
const eckModule = "github.com/elastic/cloud-on-k8s/v3"

// eckServingMetricsMessage is logged by controller-runtime's metrics server once it listens
// (sigs.k8s.io/controller-runtime/pkg/metrics/server).
const eckServingMetricsMessage = "Serving metrics server"

// ECKCRDs is the file of ECK's CustomResourceDefinitions (config/crds/v1/all-crds.yaml), from
// the ECK module pinned in test/tools/eck/go.mod (downloaded into the Go module cache on first
// use). Install it with Options.CRDDirectoryPaths before StartECK: the operator watches every
// ECK kind and does not start without them.
func ECKCRDs() (string, error) {
	dir, err := moduleDir("eck", eckModule)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config", "crds", "v1", "all-crds.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ECK CRDs: %w", err)
	}
	return path, nil
}

// ECKOptions say how to run the real ECK operator.
type ECKOptions struct {
	// ConfigFile is the eck.yaml passed as --config (required).
	ConfigFile string
	// Namespace is the operator namespace (--operator-namespace, required) and that of
	// ServiceAccount.
	Namespace string
	// ServiceAccount is the ServiceAccount the operator authenticates as, with a token from
	// the TokenRequest API, as in its Pod: its RBAC, not an admin identity, decides what the
	// operator may do. Default "elastic-operator".
	ServiceAccount string
	// MetricsPort is the port the operator's metrics server must listen on before StartECK
	// returns; 0 waits for whatever port the metrics server reports it serves on (ECK's
	// default metrics-port 0 means a random port) and sets ECK.MetricsPort to it.
	MetricsPort int
	// Args are extra flags; they override eck.yaml. Those needed outside a cluster are always
	// passed: no leader election, no telemetry, no admission webhook (nor its certificates).
	Args []string
	// LogName is the log file's name in Env.Dir; default eck-operator-<Namespace>.log.
	LogName string
	// Timeout bounds the wait for the metrics port; 2 minutes if zero.
	Timeout time.Duration
	// NetNS, if set, runs the operator in that network namespace (as in a Pod: addresses of
	// its own, not the host's), reaching the API server through NetNS.ForwardAPIServer.
	NetNS *NetNS
}

// ECK is a running ECK operator process.
type ECK struct {
	// PID is the process id.
	PID int
	// LogPath is the file its standard output and error go to.
	LogPath string
	// Kubeconfig is the ServiceAccount kubeconfig it runs with.
	Kubeconfig string
	// MetricsPort is the TCP port its metrics server listens on.
	MetricsPort int

	*process
}

// StartECK runs bin/eck-operator (`make eck-operator`) as `manager --config=<ConfigFile>`
// against the control plane, authenticated as the ServiceAccount, and returns once its metrics
// server listens. ECK exits with status 0 even when it fails to start, so the process is
// watched rather than its status: if it exits first, or ctx ends, the error holds the tail of
// its log. Stop it with Stop; e.Stop stops it too, before the control plane.
func StartECK(ctx context.Context, e *Env, opts ECKOptions) (*ECK, error) {
	path := filepath.Join(e.BinDir, "eck-operator")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("run `make eck-operator` first: %s not found", path)
	}
	if opts.ConfigFile == "" || opts.Namespace == "" {
		return nil, errors.New("StartECK: ConfigFile and Namespace are required")
	}
	if opts.ServiceAccount == "" {
		opts.ServiceAccount = "elastic-operator"
	}
	if opts.LogName == "" {
		opts.LogName = "eck-operator-" + opts.Namespace + ".log"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	var kubeconfig string
	var err error
	if opts.NetNS != nil {
		kubeconfig, err = opts.NetNS.ServiceAccountKubeconfig(ctx, e, opts.Namespace, opts.ServiceAccount)
	} else {
		kubeconfig, err = e.ServiceAccountKubeconfig(ctx, opts.Namespace, opts.ServiceAccount)
	}
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"manager",
		"--config=" + opts.ConfigFile,
		"--operator-namespace=" + opts.Namespace,
		"--enable-leader-election=false",
		"--disable-telemetry",
		"--enable-webhook=false",
		"--manage-webhook-certs=false",
	}, opts.Args...)
	// ECK reads every setting from the environment too (viper.AutomaticEnv, METRICS_PORT for
	// metrics-port, ...): give it only what it needs, so that nothing of the test's
	// environment overrides eck.yaml. The rest config comes from KUBECONFIG (ECK has no
	// --kubeconfig flag).
	env := []string{
		"KUBECONFIG=" + kubeconfig,
		"HOME=" + e.Dir,
		"TMPDIR=" + os.TempDir(),
		"PATH=" + os.Getenv("PATH"),
	}
	bin := path
	if opts.NetNS != nil {
		bin, args = opts.NetNS.Command(path, args)
	}
	p, err := startProcess(e, "eck-operator", opts.LogName, bin, args, env)
	if err != nil {
		return nil, err
	}
	k := &ECK{PID: p.cmd.Process.Pid, LogPath: p.logPath, Kubeconfig: kubeconfig, process: p}
	p.stopWith(e)

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var last string
	for {
		ports, err := k.ListeningPorts()
		switch {
		case err != nil:
			last = err.Error()
		case opts.MetricsPort != 0 && slices.Contains(ports, opts.MetricsPort):
			k.MetricsPort = opts.MetricsPort
			return k, nil
		case opts.MetricsPort == 0 && len(ports) == 1 && strings.Contains(k.Log(), eckServingMetricsMessage):
			// Outside a cluster with the webhook off and no probes address, the metrics
			// server is the operator's only listener.
			k.MetricsPort = ports[0]
			return k, nil
		default:
			last = fmt.Sprintf("listening on %v", ports)
		}
		select {
		case <-k.exited:
			return nil, k.failure("exited before its metrics server listened")
		case <-ctx.Done():
			_ = k.Stop()
			return nil, fmt.Errorf("eck-operator: no metrics server on port %d (%s): %w; last lines of %s:\n%s", opts.MetricsPort, last, ctx.Err(), k.LogPath, tail(k.LogPath, 30))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Exited reports whether the process has exited.
func (k *ECK) Exited() bool { return k.hasExited() }

// Log is the whole log so far.
func (k *ECK) Log() string {
	data, _ := os.ReadFile(k.LogPath)
	return string(data)
}

// Tail is the last n lines of the log.
func (k *ECK) Tail(n int) string { return tail(k.LogPath, n) }

// Stop sends SIGTERM and waits (SIGKILL after 10s). It returns an error, with the tail of the
// log, if the process had exited on its own; only the first call reports it.
func (k *ECK) Stop() error { return k.stop() }

// ListeningPorts are the TCP ports the process listens on (IPv4 and IPv6), read from /proc:
// those of this process, not of whatever else may listen on the machine. Linux only.
func (k *ECK) ListeningPorts() ([]int, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("listening ports are read from /proc, which %s lacks", runtime.GOOS)
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", k.PID)
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", k.PID, table))
		if err != nil {
			return nil, err
		}
		s := bufio.NewScanner(f)
		s.Scan() // header
		for s.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(s.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if port, err := strconv.ParseInt(hexPort, 16, 32); err == nil && !slices.Contains(ports, int(port)) {
				ports = append(ports, int(port))
			}
		}
		err = s.Err()
		_ = f.Close()
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(ports)
	return ports, nil
}

// ServiceAccountToken returns a token for the ServiceAccount from the TokenRequest API (valid
// one hour), the kind of token the kubelet projects into a Pod.
func (e *Env) ServiceAccountToken(ctx context.Context, ns, name string) (string, error) {
	tr, err := e.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("TokenRequest for ServiceAccount %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// ServiceAccountKubeconfig writes, in e.Dir, a kubeconfig for the control plane that
// authenticates with a ServiceAccountToken, and returns its path.
func (e *Env) ServiceAccountKubeconfig(ctx context.Context, ns, name string) (string, error) {
	token, err := e.ServiceAccountToken(ctx, ns, name)
	if err != nil {
		return "", err
	}
	server := e.Config.Host
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: e.Config.CAData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: name, Namespace: ns}
	cfg.CurrentContext = "default"
	path := filepath.Join(e.Dir, fmt.Sprintf("sa-%s-%s-%d.kubeconfig", ns, name, time.Now().UnixNano()))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// FreePort is a TCP port nothing listens on right now, for a process the test starts on this
// machine.
func FreePort() (int, error) { return freePort() }
