// Package framework starts a real Kubernetes control plane for end-to-end tests: etcd and
// kube-apiserver through controller-runtime's envtest, and optionally kube-controller-manager,
// so that StatefulSets get Pods, Namespaces get their default ServiceAccount and owner
// references are garbage collected. The binaries are built from pinned Go modules by
// `make controlplane` into <repo>/bin (see test/tools/controlplane.mk).
//
// In a single test:
//
//	env := framework.Start(t, framework.Options{ControllerManager: true})
//	env.Go(mgr.Start) // the manager / webhook server under test, stopped before the control plane
//
// Shared by the tests of a package, from TestMain:
//
//	env, err := framework.New(ctx, framework.Options{...})
//	code := m.Run()
//	if code != 0 { env.KeepDir = true; env.DumpLogs(os.Stderr, 100) }
//	if err := env.Stop(); err != nil { ... }
//
// Things to know about this control plane:
//   - There is no scheduler and no kubelet: Pods are created but stay Pending, forever.
//   - envtest disables the ServiceAccount admission plugin, so Pods need no ServiceAccount.
//   - The API server only knows the users envtest provisions (Env.Config is system:masters);
//     Env.Environment.AddUser makes more (client certificates), e.g. a scraper with fewer rights.
//   - Webhook configurations installed through Options.WebhookInstallOptions are pointed at
//     https://<LocalServingHost>:<LocalServingPort>/<path> (service references become URLs).
package framework

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// DefaultControllers are the kube-controller-manager controllers run when Options.Controllers
// is empty: workloads (Deployment, ReplicaSet, StatefulSet), garbage collection, Namespace
// deletion, the default ServiceAccount and kube-root-ca.crt ConfigMap of every Namespace, and
// EndpointSlices. Use []string{"*"} for the kube-controller-manager defaults.
var DefaultControllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"root-ca-certificate-publisher-controller",
	"endpointslice-controller",
}

// Options configure the control plane. The zero value starts etcd and kube-apiserver only.
type Options struct {
	// ControllerManager also starts kube-controller-manager, running Controllers.
	ControllerManager bool
	// Controllers are kube-controller-manager's --controllers; DefaultControllers if empty.
	Controllers []string

	// CRDDirectoryPaths are directories or files of CustomResourceDefinitions (YAML or JSON),
	// installed before New returns; a missing path is an error.
	CRDDirectoryPaths []string
	// CRDs are CustomResourceDefinitions installed in addition to those in CRDDirectoryPaths.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// WebhookInstallOptions are passed to envtest, which installs the webhook configurations
	// pointed at a local webhook server and fills in LocalServingHost, LocalServingPort,
	// LocalServingCertDir and LocalServingCAData (read them from Env.Environment).
	WebhookInstallOptions envtest.WebhookInstallOptions

	// APIServerFlags are extra kube-apiserver flags, by name without dashes (for example
	// "feature-gates": "Foo=true"); they replace envtest's value for the same flag.
	APIServerFlags map[string]string

	// Scheme is the scheme of Env.Client; client-go's scheme.Scheme if nil. Add the types of
	// the CRDs (cert-manager, Prometheus operator, ours) to it to use them typed.
	Scheme *runtime.Scheme

	// BinDir is the directory holding etcd, kube-apiserver and kube-controller-manager:
	// $KUBEBUILDER_ASSETS if set, otherwise <repo>/bin, found by walking up to go.mod.
	BinDir string
	// StartTimeout bounds the start of each of etcd, kube-apiserver and
	// kube-controller-manager; 1 minute if zero (envtest's 20s is tight on a busy 2-core box).
	StartTimeout time.Duration
}

// Env is a running control plane. Its fields are set by New and must not be changed, except
// KeepDir.
type Env struct {
	// Config is the admin (system:masters) client configuration.
	Config *rest.Config
	// Client is a controller-runtime client for Config, with Options.Scheme.
	Client client.Client
	// Clientset is a client-go clientset for Config (discovery, typed core APIs).
	Clientset kubernetes.Interface
	// Environment is the underlying envtest environment (AddUser, WebhookInstallOptions, ...).
	Environment *envtest.Environment

	// Dir is a temporary directory holding the logs of every process (etcd.log,
	// kube-apiserver.log, kube-controller-manager.log) and Kubeconfig. Stop removes it unless
	// KeepDir is set.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig file, for kubectl while debugging.
	Kubeconfig string
	// BinDir is the directory the control-plane binaries were run from.
	BinDir string
	// KeepDir keeps Dir when Stop is called (Start sets it when the test failed).
	KeepDir bool

	kcm *controllerManager
	// apiServer is the kube-apiserver RestartAPIServer started in place of envtest's (nil
	// before a restart); extraAPIServers are those of StartAPIServer.
	apiServer       *process
	extraAPIServers []*process
	apiServerRuns   int

	mu        sync.Mutex
	cancelBG  context.CancelFunc
	bgCtx     context.Context
	bg        sync.WaitGroup
	bgErrs    []error
	logFiles  []*os.File
	stopOnce  sync.Once
	stopError error
}

// Start is New for a single test: it fails the test (t.Fatal) if the control plane cannot
// start, and stops it when the test ends (t.Cleanup). If the test failed, the tail of every
// log is written to the test log, and Dir is kept.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := New(ctx, opts)
	if err != nil {
		t.Fatalf("starting the test control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			env.KeepDir = true
			var b strings.Builder
			env.DumpLogs(&b, 60)
			t.Log(b.String())
		}
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the test control plane: %v", err)
		}
	})
	return env
}

// New starts etcd, kube-apiserver (through envtest) and, if opts.ControllerManager,
// kube-controller-manager; it installs the CRDs and webhook configurations of opts. When it
// returns an error, everything it started is stopped again. ctx bounds the start only.
// Call Stop when done.
func New(ctx context.Context, opts Options) (_ *Env, retErr error) {
	binDir, err := binaryDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	need := []string{"etcd", "kube-apiserver"}
	if opts.ControllerManager {
		need = append(need, "kube-controller-manager")
	}
	for _, name := range need {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return nil, fmt.Errorf("run `make controlplane` first: %s not found", filepath.Join(binDir, name))
		}
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	if opts.Scheme == nil {
		opts.Scheme = scheme.Scheme
	}

	dir, err := os.MkdirTemp("", "e2e-controlplane-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, BinDir: binDir}
	e.bgCtx, e.cancelBG = context.WithCancel(context.Background())
	defer func() {
		if retErr != nil {
			e.KeepDir = true // keep the logs the error points at
			if err := e.Stop(); err != nil {
				retErr = fmt.Errorf("%w (and stopping: %v)", retErr, err)
			}
			retErr = fmt.Errorf("%w (logs in %s)", retErr, dir)
		}
	}()

	etcdLog, err := e.createLog("etcd.log")
	if err != nil {
		return nil, err
	}
	apiLog, err := e.createLog("kube-apiserver.log")
	if err != nil {
		return nil, err
	}
	apiServer := &envtest.APIServer{Path: filepath.Join(binDir, "kube-apiserver"), Out: apiLog, Err: apiLog}
	for name, value := range opts.APIServerFlags {
		apiServer.Configure().Set(name, value)
	}
	e.Environment = &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: apiServer,
			Etcd:      &envtest.Etcd{Path: filepath.Join(binDir, "etcd"), Out: etcdLog, Err: etcdLog},
		},
		BinaryAssetsDirectory:    binDir,
		Scheme:                   opts.Scheme,
		CRDDirectoryPaths:        opts.CRDDirectoryPaths,
		CRDs:                     opts.CRDs,
		ErrorIfCRDPathMissing:    true,
		WebhookInstallOptions:    opts.WebhookInstallOptions,
		ControlPlaneStartTimeout: opts.StartTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if e.Config, err = e.Environment.Start(); err != nil {
		// envtest does not stop what it started when CRD or webhook installation fails.
		_ = e.Environment.Stop()
		e.Environment = nil
		return nil, err
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: opts.Scheme}); err != nil {
		return nil, err
	}
	if e.Clientset, err = kubernetes.NewForConfig(e.Config); err != nil {
		return nil, err
	}
	e.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, e.Environment.KubeConfig, 0o600); err != nil {
		return nil, err
	}
	if err := e.fixWebhookURLs(ctx); err != nil {
		return nil, err
	}

	if opts.ControllerManager {
		controllers := opts.Controllers
		if len(controllers) == 0 {
			controllers = DefaultControllers
		}
		e.kcm, err = startControllerManager(ctx, e, filepath.Join(binDir, "kube-controller-manager"), controllers, opts.StartTimeout)
		if err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Go runs fn in the background until Stop, which cancels ctx and waits for fn to return
// before it stops the control plane. Use it for the manager and webhook server under test,
// e.g. env.Go(mgr.Start): nothing then talks to, or is called by, an API server that is going
// away. An error from fn (other than context.Canceled) is returned by Stop.
func (e *Env) Go(fn func(ctx context.Context) error) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		if err := fn(e.bgCtx); err != nil && !errors.Is(err, context.Canceled) {
			e.mu.Lock()
			e.bgErrs = append(e.bgErrs, err)
			e.mu.Unlock()
		}
	}()
}

// Stop stops, in order, what was started with Go (and waits for it), kube-controller-manager,
// kube-apiserver and etcd; then it removes Dir unless KeepDir is set. It also reports a
// kube-controller-manager that exited on its own. Calling it again returns the same result.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		var errs []error
		e.cancelBG()
		e.bg.Wait()
		e.mu.Lock()
		errs = append(errs, e.bgErrs...)
		e.mu.Unlock()
		if e.kcm != nil {
			if err := e.kcm.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		e.mu.Lock()
		apiServers := append(e.extraAPIServers, e.apiServer)
		e.mu.Unlock()
		for _, p := range apiServers {
			if p != nil {
				if err := p.stop(); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if e.Environment != nil {
			// After a restart envtest's own kube-apiserver is gone already: this stops etcd.
			if err := e.Environment.Stop(); err != nil {
				errs = append(errs, fmt.Errorf("stopping kube-apiserver and etcd: %w", err))
			}
		}
		for _, f := range e.logFiles {
			_ = f.Close()
		}
		if len(errs) > 0 {
			e.KeepDir = true
		}
		if !e.KeepDir {
			_ = os.RemoveAll(e.Dir)
		}
		e.stopError = errors.Join(errs...)
	})
	return e.stopError
}

// DumpLogs writes the path and the last lines lines of each process log in Dir to w.
func (e *Env) DumpLogs(w io.Writer, lines int) {
	restarted, _ := filepath.Glob(filepath.Join(e.Dir, "kube-apiserver-*.log"))
	for _, name := range append([]string{"kube-controller-manager.log", "kube-apiserver.log"}, append(restarted, "etcd.log")...) {
		path := name
		if !filepath.IsAbs(name) {
			path = filepath.Join(e.Dir, name)
		}
		if _, err := os.Stat(path); err != nil {
			continue
		}
		fmt.Fprintf(w, "=== last %d lines of %s ===\n%s\n", lines, path, tail(path, lines))
	}
}

func (e *Env) createLog(name string) (*os.File, error) {
	f, err := os.Create(filepath.Join(e.Dir, name))
	if err != nil {
		return nil, err
	}
	e.logFiles = append(e.logFiles, f)
	return f, nil
}

// fixWebhookURLs removes the double slash envtest leaves when it turns a service reference
// into a URL ("https://host:port/" + path, and a service path must start with "/"): a
// controller-runtime webhook server would answer "//mutate-..." with a redirect.
func (e *Env) fixWebhookURLs(ctx context.Context) error {
	o := &e.Environment.WebhookInstallOptions
	if len(o.MutatingWebhooks)+len(o.ValidatingWebhooks) == 0 {
		return nil
	}
	host := o.LocalServingHostExternalName
	if host == "" {
		host = o.LocalServingHost
	}
	bad := "https://" + net.JoinHostPort(host, fmt.Sprint(o.LocalServingPort)) + "//"
	fix := func(cc *admissionregistrationv1.WebhookClientConfig) bool {
		if cc.URL == nil || !strings.HasPrefix(*cc.URL, bad) {
			return false
		}
		u := strings.TrimSuffix(bad, "/") + strings.TrimLeft(strings.TrimPrefix(*cc.URL, bad), "/")
		cc.URL = &u
		return true
	}
	for _, m := range o.MutatingWebhooks {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if err := e.Client.Get(ctx, types.NamespacedName{Name: m.Name}, &cfg); err != nil {
			return err
		}
		changed := false
		for i := range cfg.Webhooks {
			changed = fix(&cfg.Webhooks[i].ClientConfig) || changed
		}
		if changed {
			if err := e.Client.Update(ctx, &cfg); err != nil {
				return err
			}
		}
	}
	for _, v := range o.ValidatingWebhooks {
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := e.Client.Get(ctx, types.NamespacedName{Name: v.Name}, &cfg); err != nil {
			return err
		}
		changed := false
		for i := range cfg.Webhooks {
			changed = fix(&cfg.Webhooks[i].ClientConfig) || changed
		}
		if changed {
			if err := e.Client.Update(ctx, &cfg); err != nil {
				return err
			}
		}
	}
	return nil
}

// RepoRoot is the directory of the first go.mod above the working directory (go test runs
// tests in their package directory, so this is the repository root).
func RepoRoot() (string, error) { return eckmanifests.RepoRoot() }

// KubernetesVersion is the Kubernetes version the control plane is built from: the version of
// k8s.io/kubernetes in test/tools/controlplane/go.mod, e.g. "v1.37.2".
func KubernetesVersion() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	path := filepath.Join(root, "test", "tools", "controlplane", "go.mod")
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(s.Text()), "require "))
		if len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" && strings.HasPrefix(fields[1], "v") {
			return fields[1], nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no k8s.io/kubernetes requirement in %s", path)
}

func binaryDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	return filepath.Abs(dir)
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
