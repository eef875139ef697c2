package framework

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// netnsSubnet is where NetNS takes its /30s: 10.213.0.0/16, private, and unlikely to be a
// route of the machine (NewNetNS checks, and takes another /30 if one is in use).
const netnsSubnet = "10.213."

// NetNS is a network namespace made by the test, joined to the host by a veth pair of its
// own: HostIP on the host's end, PodIP in the namespace, a /30 nobody else uses. A process
// run in it (Command) has its own loopback and PodIP: an address the API server accepts in an
// EndpointSlice (it refuses loopback ones), reachable from this machine only. Delete removes
// it; NewNetNS's test does so in t.Cleanup, whatever the outcome.
type NetNS struct {
	// Name is the namespace's name (ip netns), and /run/netns/<Name> its handle.
	Name string
	// HostIP is the host's end of the veth pair, PodIP the namespace's.
	HostIP, PodIP string

	hostLink string

	mu     sync.Mutex
	closed bool
	relays []net.Listener
}

// NetNSRequirements reports what creating a network namespace needs and is missing: root
// (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2's ip and util-linux's nsenter. The error says
// what to install, so that a suite that needs one fails with it instead of skipping.
func NetNSRequirements() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the test creates a network namespace and a veth pair: run it as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "ip (Debian/Ubuntu: apt-get install iproute2)")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		missing = append(missing, "nsenter (Debian/Ubuntu: apt-get install util-linux)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("a network namespace of the test's own needs: %s", strings.Join(missing, "; "))
	}
	return nil
}

// StartNetNS is NewNetNS for a test: it fails the test if the namespace cannot be made, and
// deletes it in t.Cleanup (also when the test fails).
func StartNetNS(t testing.TB) *NetNS {
	t.Helper()
	n, err := NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// NewNetNS creates a network namespace named emg-<pid>-<n> with a veth pair: the host end
// vh<pid>-<n> holds HostIP/30, the namespace end vn<pid>-<n> PodIP/30, and its loopback is up.
// It first removes the namespaces of earlier test processes that died before deleting theirs.
// It takes the first /30 of 10.213.0.0/16 from a start that depends on the process id that
// no interface of the machine has an address in (at most 64 tries). On error, what it made is
// removed again.
func NewNetNS() (_ *NetNS, retErr error) {
	if err := NetNSRequirements(); err != nil {
		return nil, err
	}
	seq := int(netnsSeq.Add(1))
	pid := os.Getpid()
	removeStaleNetNS()
	n := &NetNS{
		Name:     fmt.Sprintf("%s%d-%d", netnsPrefix, pid, seq),
		hostLink: fmt.Sprintf("vh%d-%d", pid, seq%1000), // at most 15 bytes: pids have 7 digits at most
	}
	podLink := fmt.Sprintf("vn%d-%d", pid, seq%1000)
	used, err := addressesInUse()
	if err != nil {
		return nil, err
	}
	start := (pid*7 + seq*13) % (256 * 64)
	for i := 0; i < 64 && n.HostIP == ""; i++ {
		block := (start + i) % (256 * 64) // one of the 16384 /30s of the /16
		third, fourth := block/64, (block%64)*4
		prefix := fmt.Sprintf("%s%d.", netnsSubnet, third)
		clash := false
		for _, a := range used {
			if strings.HasPrefix(a, prefix) {
				if last, err := strconv.Atoi(strings.TrimPrefix(a, prefix)); err == nil && last >= fourth && last < fourth+4 {
					clash = true
				}
			}
		}
		if !clash {
			n.HostIP, n.PodIP = prefix+strconv.Itoa(fourth+1), prefix+strconv.Itoa(fourth+2)
		}
	}
	if n.HostIP == "" {
		return nil, fmt.Errorf("no free /30 in %s0.0/16 after 64 tries", netnsSubnet)
	}
	if err := ipCmd("netns", "add", n.Name); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := n.Delete(); err != nil {
				retErr = fmt.Errorf("%w (and removing it: %v)", retErr, err)
			}
		}
	}()
	steps := [][]string{
		{"link", "add", n.hostLink, "type", "veth", "peer", "name", podLink},
		{"link", "set", podLink, "netns", n.Name},
		{"addr", "add", n.HostIP + "/30", "dev", n.hostLink},
		{"link", "set", n.hostLink, "up"},
		{"-n", n.Name, "addr", "add", n.PodIP + "/30", "dev", podLink},
		{"-n", n.Name, "link", "set", podLink, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// netnsPrefix starts the name of every namespace NewNetNS makes: emg-<pid>-<n>.
const netnsPrefix = "emg-"

// removeStaleNetNS deletes the namespaces NewNetNS made in processes that are gone (a test
// binary killed before its cleanups ran), so that their veth pairs and addresses do not pile
// up. A namespace whose process still runs is left alone.
func removeStaleNetNS() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, entry := range entries {
		rest, ok := strings.CutPrefix(entry.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // still running
		}
		_ = ipCmd("netns", "del", entry.Name())
	}
}

// netnsSeq numbers the namespaces of this process.
var netnsSeq atomic.Int32

// addressesInUse are the IPv4 addresses of every interface of the host.
func addressesInUse() ([]string, error) {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip -4 -o addr show: %w", err)
	}
	var addrs []string
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		for i, f := range fields {
			if f == "inet" && i+1 < len(fields) {
				addr, _, _ := strings.Cut(fields[i+1], "/")
				addrs = append(addrs, addr)
			}
		}
	}
	return addrs, nil
}

func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command is path and args run inside the namespace: nsenter enters its network namespace
// and execs path, so the process keeps the PID it is started with (ECK.ListeningPorts reads
// /proc/<pid>/net, which shows the namespace's sockets).
func (n *NetNS) Command(path string, args []string) (string, []string) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		nsenter = "nsenter" // NetNSRequirements said so already
	}
	return nsenter, append([]string{"--net=" + filepath.Join("/run/netns", n.Name), "--", path}, args...)
}

// ForwardAPIServer makes the API server reachable from inside the namespace: a TCP relay of
// the test's own, listening on HostIP only, to the API server on 127.0.0.1 (the namespace has
// a loopback of its own). TLS goes through untouched, end to end. It returns the address
// (host:port) to dial from inside. Delete stops it.
func (n *NetNS) ForwardAPIServer(e *Env) (string, error) {
	target := strings.TrimPrefix(strings.TrimPrefix(e.Config.Host, "https://"), "http://")
	target = strings.TrimSuffix(target, "/")
	l, err := net.Listen("tcp", net.JoinHostPort(n.HostIP, "0"))
	if err != nil {
		return "", fmt.Errorf("relay to the API server on %s: %w", n.HostIP, err)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = l.Close()
		return "", errors.New("the network namespace is deleted")
	}
	n.relays = append(n.relays, l)
	n.mu.Unlock()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed by Delete
			}
			go relay(conn, target)
		}
	}()
	return l.Addr().String(), nil
}

// relay copies between conn and a new connection to target until either side closes.
func relay(conn net.Conn, target string) {
	defer conn.Close()
	up, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

// ServiceAccountKubeconfig is Env.ServiceAccountKubeconfig for a process in the namespace: the
// server is the relay of ForwardAPIServer (started on first use), and the API server's
// certificate is checked for the name it was issued to (localhost), not for the relay's
// address.
func (n *NetNS) ServiceAccountKubeconfig(ctx context.Context, e *Env, ns, name string) (string, error) {
	n.mu.Lock()
	var addr string
	if len(n.relays) > 0 {
		addr = n.relays[0].Addr().String()
	}
	n.mu.Unlock()
	if addr == "" {
		var err error
		if addr, err = n.ForwardAPIServer(e); err != nil {
			return "", err
		}
	}
	token, err := e.ServiceAccountToken(ctx, ns, name)
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: "https://" + addr, CertificateAuthorityData: e.Config.CAData, TLSServerName: "localhost"}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: name, Namespace: ns}
	cfg.CurrentContext = "default"
	path := filepath.Join(e.Dir, fmt.Sprintf("sa-%s-%s-%s-%d.kubeconfig", n.Name, ns, name, time.Now().UnixNano()))
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// Delete stops the relays and removes the namespace and the host's end of the veth pair
// (the kernel removes both ends with either, asynchronously: Delete waits up to 10s for the
// host's end to go). Calling it again does nothing.
func (n *NetNS) Delete() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	relays := n.relays
	n.mu.Unlock()
	for _, l := range relays {
		_ = l.Close()
	}
	var errs []error
	if _, err := os.Stat(filepath.Join("/run/netns", n.Name)); err == nil {
		if err := ipCmd("netns", "del", n.Name); err != nil {
			errs = append(errs, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := net.InterfaceByName(n.hostLink); err != nil {
			break // gone
		}
		_ = ipCmd("link", "del", n.hostLink)
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("veth %s still there 10s after deleting network namespace %s", n.hostLink, n.Name))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(errs...)
}
