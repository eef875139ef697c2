package framework

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PodOptions describe a pod to run the ECK operator in the way the kubelet would, without a
// kubelet: RunPod materialises the container's volume mounts, resolves its environment and
// expands its command line itself, independently of the guard's model, so that the real
// binary, not the guard, says what the pod serves.
type PodOptions struct {
	Template  *corev1.PodTemplateSpec
	Container int
	// ConfigMaps and Secrets are the objects the pod's volumes and env refer to, by name.
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
	// Namespace and ServiceAccount: the operator authenticates with a token of it, as in its Pod.
	Namespace, ServiceAccount string
	// LogName is the log file's name in Env.Dir.
	LogName string
	// Timeout bounds the wait for the metrics server; 90 seconds if zero.
	Timeout time.Duration
}

// Served is what a running ECK operator serves, seen from outside.
type Served struct {
	// Exited is set when the process exited before serving metrics (its log tail).
	Exited string
	Port   int
	// Plain: a GET of /metrics over plain HTTP without a token got 200.
	Plain bool
	// TLS: the port speaks TLS, and Unauthorized: a GET without a token got 401.
	TLS, Unauthorized bool
	// Certificate is the subject of the certificate served over TLS.
	Certificate string
}

func (s Served) String() string {
	switch {
	case s.Exited != "":
		return "exited: " + s.Exited
	case s.Plain:
		return fmt.Sprintf("plain HTTP, no token, on port %d", s.Port)
	case s.TLS && s.Unauthorized:
		return fmt.Sprintf("TLS (%s) with token checks on port %d", s.Certificate, s.Port)
	}
	return fmt.Sprintf("port %d: TLS %v, 401 without a token %v", s.Port, s.TLS, s.Unauthorized)
}

// podRoot is where the pod's paths live: the process runs in a mount namespace of its own
// with a staging directory bound over it, so every path the pod uses must be under it.
const podRoot = "/tmp"

// RunPod starts bin/eck-operator as the pod's container would run, waits until it serves
// metrics (or exits), looks at what it serves, and stops it.
func RunPod(ctx context.Context, e *Env, opts PodOptions) (Served, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 90 * time.Second
	}
	bin := filepath.Join(e.BinDir, "eck-operator")
	c := &opts.Template.Spec.Containers[opts.Container]
	stage, err := os.MkdirTemp(e.Dir, "pod-")
	if err != nil {
		return Served{}, err
	}
	defer os.RemoveAll(stage)
	if err := materialise(stage, opts); err != nil {
		return Served{}, err
	}
	kubeconfig, err := e.ServiceAccountKubeconfig(ctx, opts.Namespace, opts.ServiceAccount)
	if err != nil {
		return Served{}, err
	}
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return Served{}, err
	}
	if err := writeAt(stage, "/tmp/.kube/config", data); err != nil {
		return Served{}, err
	}
	vars, err := podEnv(c, opts)
	if err != nil {
		return Served{}, err
	}
	expandAll := func(list []string) []string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = kubeletExpand(s, vars)
		}
		return out
	}
	argv := append(expandAll(c.Command), expandAll(c.Args)...)
	if len(c.Command) == 0 {
		argv = append([]string{"/elastic-operator"}, argv...)
	}
	if argv[0] != "/elastic-operator" {
		return Served{}, fmt.Errorf("RunPod runs ECK's entrypoint only, not %q", argv[0])
	}
	argv[0] = bin
	environ := []string{"KUBECONFIG=/tmp/.kube/config", "HOME=/tmp", "PATH=/usr/bin:/bin"}
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	// unshare execs sh, which execs the operator: one PID, whose listeners /proc shows.
	// Pdeathsig fires when the thread that started the child exits, and Go retires idle
	// threads: keep this one until the operator is stopped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	script := `mount --bind "$0" /tmp && exec "$@"`
	p, err := startProcess(e, "eck-operator", opts.LogName, "/usr/bin/unshare", append([]string{"--mount", "--propagation", "private", "/bin/sh", "-c", script, stage}, argv...), environ)
	if err != nil {
		return Served{}, err
	}
	k := &ECK{PID: p.cmd.Process.Pid, LogPath: p.logPath, process: p}
	defer func() { _ = k.Stop() }()

	deadline := time.Now().Add(opts.Timeout)
	for {
		if k.Exited() {
			return Served{Exited: lastMessages(k.Log())}, nil
		}
		if strings.Contains(k.Log(), eckServingMetricsMessage) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Served{}, fmt.Errorf("no metrics server within %s; last lines of %s:\n%s", opts.Timeout, k.LogPath, k.Tail(20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ports []int
	for time.Now().Before(deadline) {
		if ports, err = k.ListeningPorts(); err == nil && len(ports) > 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(ports) != 1 {
		return Served{}, fmt.Errorf("listening on %v (%v), want the metrics port alone", ports, err)
	}
	return probe(ports[0]), nil
}

// probe looks at a metrics port as a scraper without credentials would.
func probe(port int) Served {
	s := Served{Port: port}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/metrics"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		s.Plain = resp.StatusCode == http.StatusOK
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only to look
	if err != nil {
		return s
	}
	s.TLS = true
	if certs := conn.ConnectionState().PeerCertificates; len(certs) > 0 {
		s.Certificate = certs[0].Subject.String()
	}
	_ = conn.Close()
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := secure.Get("https://" + addr + "/metrics"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		s.Unauthorized = resp.StatusCode == http.StatusUnauthorized
	}
	return s
}

// materialise writes, under stage, what the kubelet mounts into the container: each
// ConfigMap, Secret, projected and emptyDir volume at its mount path, with items and subPath
// as the kubelet applies them.
func materialise(stage string, opts PodOptions) error {
	c := &opts.Template.Spec.Containers[opts.Container]
	volumes := map[string]corev1.Volume{}
	for _, v := range opts.Template.Spec.Volumes {
		volumes[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			return fmt.Errorf("no volume %s", m.Name)
		}
		files, err := volumeFiles(v, opts)
		if err != nil {
			return err
		}
		if m.SubPath != "" {
			data, ok := files[m.SubPath]
			if !ok {
				return fmt.Errorf("volume %s has no %s for subPath", m.Name, m.SubPath)
			}
			if err := writeAt(stage, m.MountPath, data); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Join(stage, stagePath(m.MountPath)), 0o755); err != nil {
			return err
		}
		for name, data := range files {
			if err := writeAt(stage, path.Join(m.MountPath, name), data); err != nil {
				return err
			}
		}
	}
	return nil
}

// volumeFiles are the files a volume holds, by path inside it.
func volumeFiles(v corev1.Volume, opts PodOptions) (map[string][]byte, error) {
	files := map[string][]byte{}
	project := func(data map[string][]byte, items []corev1.KeyToPath) {
		if items == nil {
			for k, d := range data {
				files[k] = d
			}
			return
		}
		for _, it := range items {
			if d, ok := data[it.Key]; ok {
				files[it.Path] = d
			}
		}
	}
	configMap := func(name string) (map[string][]byte, error) {
		cm, ok := opts.ConfigMaps[name]
		if !ok {
			return nil, fmt.Errorf("no ConfigMap %s", name)
		}
		data := map[string][]byte{}
		for k, s := range cm.Data {
			data[k] = []byte(s)
		}
		for k, b := range cm.BinaryData {
			data[k] = b
		}
		return data, nil
	}
	secret := func(name string) (map[string][]byte, error) {
		s, ok := opts.Secrets[name]
		if !ok {
			return nil, fmt.Errorf("no Secret %s", name)
		}
		return s.Data, nil
	}
	switch {
	case v.ConfigMap != nil:
		data, err := configMap(v.ConfigMap.Name)
		if err != nil {
			return nil, err
		}
		project(data, v.ConfigMap.Items)
	case v.Secret != nil:
		data, err := secret(v.Secret.SecretName)
		if err != nil {
			return nil, err
		}
		project(data, v.Secret.Items)
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				data, err := configMap(src.ConfigMap.Name)
				if err != nil {
					return nil, err
				}
				project(data, src.ConfigMap.Items)
			case src.Secret != nil:
				data, err := secret(src.Secret.Name)
				if err != nil {
					return nil, err
				}
				project(data, src.Secret.Items)
			}
		}
	case v.EmptyDir != nil:
	default:
		return nil, fmt.Errorf("volume %s: RunPod does not materialise this kind", v.Name)
	}
	return files, nil
}

// podEnv is the container's environment as the kubelet sets it: envFrom sources in order
// (with their prefixes), then env entries in order, each value expanded against what is
// defined before it.
func podEnv(c *corev1.Container, opts PodOptions) (map[string]string, error) {
	vars := map[string]string{}
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := opts.ConfigMaps[from.ConfigMapRef.Name]
			if !ok {
				continue
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, ok := opts.Secrets[from.SecretRef.Name]
			if !ok {
				continue
			}
			data = map[string]string{}
			for k, b := range s.Data {
				data[k] = string(b)
			}
		}
		for k, v := range data {
			vars[from.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			vars[e.Name] = kubeletExpand(e.Value, vars)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if cm, ok := opts.ConfigMaps[ref.Name]; ok {
				if v, ok := cm.Data[ref.Key]; ok {
					vars[e.Name] = v
				}
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if s, ok := opts.Secrets[ref.Name]; ok {
				if v, ok := s.Data[ref.Key]; ok {
					vars[e.Name] = string(v)
				}
			}
		default:
			return nil, errors.New("RunPod resolves env from ConfigMaps and Secrets only")
		}
	}
	return vars, nil
}

// kubeletExpand is the kubelet's $(VAR) syntax, written again here on purpose: the test
// must not take the guard's model on its word.
func kubeletExpand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '(' && strings.IndexByte(s[i+2:], ')') >= 0:
			end := i + 2 + strings.IndexByte(s[i+2:], ')')
			if v, ok := vars[s[i+2:end]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : end+1])
			}
			i = end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// stagePath is a pod path under podRoot, relative to the staging directory.
func stagePath(p string) string {
	rel, err := filepath.Rel(podRoot, path.Clean(p))
	if err != nil || strings.HasPrefix(rel, "..") {
		panic(fmt.Sprintf("RunPod: pod path %s is not under %s", p, podRoot))
	}
	return rel
}

func writeAt(stage, p string, data []byte) error {
	full := filepath.Join(stage, stagePath(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, data, 0o600)
}

// lastMessages are the messages of the last lines of an ECK log, with their errors.
func lastMessages(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) > 4 {
		lines = lines[len(lines)-4:]
	}
	var out []string
	for _, l := range lines {
		var entry struct {
			Message string `json:"message"`
			Error   string `json:"error"`
		}
		if json.Unmarshal([]byte(l), &entry) == nil && entry.Message != "" {
			l = entry.Message
			if entry.Error != "" {
				l += ": " + entry.Error
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, " | ")
}
