package app

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/serving"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/webhook"
)

// ServerOptions are the flags of `eck-metrics-guard webhook`, in one section per component
// (FlagSets), each bound straight into the options that component takes: nothing is copied
// from one struct into another before use.
type ServerOptions struct {
	// Client is how the guard reaches the API server.
	Client ClientOptions
	// Webhook is the admission server (serving's options) and its certificate.
	Webhook WebhookOptions
	// Metrics is the guard's own metrics endpoint; TLSOpts and FilterProvider follow from
	// Webhook.EnableHTTP2 and SecureServing.
	Metrics metricsserver.Options
	// Profiling serves Go's profiles (net/http/pprof) on the metrics endpoint.
	Profiling bool
	Health    HealthOptions
	// Namespaces limits the guard to ECK operators in these namespaces (cache, controller,
	// webhook lookups); empty means every namespace.
	Namespaces []string
	Controller ControllerOptions
	// Defaults are the settings of operators whose annotations choose none, for the webhook
	// and the controller alike.
	Defaults policy.Defaults
	Log      zap.Options
}

// ClientOptions are the guard's API client settings.
type ClientOptions struct {
	Kubeconfig string
	// QPS and Burst bound the guard's requests to the API server on the client side (every
	// client of the process gets its own bucket of this size); QPS < 0 turns the bound off,
	// leaving the pacing to the API server's Priority and Fairness.
	QPS   float32
	Burst int
}

// Default client bounds. client-go's own (5/s, burst 10) took 39 s to retrofit 200 namespaces
// opted in at once: about ten requests an operator (ConfigMap read and patch, Service list and
// apply, workload patch, the follow-up reconciles, Events). At 200/s with a burst of 400 the same
// takes a few seconds (docs/benchmarks.md), and a runaway loop is still bounded below what
// Priority and Fairness gives one workload-low client of a small API server.
const (
	DefaultQPS   = 200
	DefaultBurst = 400
)

// WebhookOptions are the admission server's options and those of its certificate.
type WebhookOptions struct {
	serving.WebhookOptions
	CertMode string
	// Used by the self-managed certificate mode.
	Namespace     string
	Secret        string
	Service       string
	Configuration string
	ExtraDNSNames []string
}

// HealthOptions are the /healthz and /readyz endpoint's.
type HealthOptions struct {
	BindAddress string
}

// ControllerOptions are the controller's.
type ControllerOptions struct {
	Enabled          bool
	LeaderElect      bool
	LeaderElectionNS string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election, as
	// kube-controller-manager's flags of the same names do.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// MaxConcurrentReconciles is the number of workers of each controller.
	MaxConcurrentReconciles int
	// ResyncPeriod is how often every cached object is handed to the controllers again.
	ResyncPeriod time.Duration
	// BindingName is the one ClusterRoleBinding to system:auth-delegator the controller
	// keeps (its RBAC may update that name only).
	BindingName string
	// SkipNameValidation lets a process run the controllers more than once, one manager
	// after another (tests that stop and start the guard); not a flag.
	SkipNameValidation bool
}

// DefaultMaxConcurrentReconciles: a reconcile mostly waits on the API server (and, for its
// writes, on the webhook), so workers beyond the cores pay; 10 converge 200 operators opted in
// at once in a few seconds on two cores (docs/benchmarks.md).
const DefaultMaxConcurrentReconciles = 10

// DefaultResyncPeriod: the cache holds only the ConfigMaps the guard labelled, so a change of
// another ECK config (an operator an Audit policy covers, one not opted in, or a config
// recreated while the webhook was down) reaches no controller by a watch. Every 10 minutes the
// controllers see every cached object again; at a few API reads per operator that is about
// 2 requests a second for 400 operators.
const DefaultResyncPeriod = 10 * time.Minute

// Flag sections, in the order of the command's help.
const (
	sectionClient     = "API client"
	sectionWebhook    = "webhook server"
	sectionMetrics    = "metrics and health"
	sectionScope      = "scope"
	sectionController = "controller"
	sectionDefaults   = "defaults for operators"
	sectionPlan       = "certificates and monitors"
	sectionLogging    = "logging"
)

var sections = []string{sectionClient, sectionWebhook, sectionMetrics, sectionScope, sectionController, sectionDefaults, sectionPlan, sectionLogging}

// FlagSets returns the flags, one named set per section.
func (o *ServerOptions) FlagSets() map[string]*pflag.FlagSet {
	sets := map[string]*pflag.FlagSet{}
	for _, name := range sections {
		sets[name] = pflag.NewFlagSet(name, pflag.ContinueOnError)
	}

	fs := sets[sectionClient]
	fs.StringVar(&o.Client.Kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server; empty means in-cluster config or $KUBECONFIG")
	fs.Float32Var(&o.Client.QPS, "kube-api-qps", DefaultQPS, "requests per second to the API server, per client, sustained; negative: no client-side bound (Priority and Fairness alone)")
	fs.IntVar(&o.Client.Burst, "kube-api-burst", DefaultBurst, "requests to the API server in a burst, per client")

	fs = sets[sectionWebhook]
	w := &o.Webhook
	fs.StringVar(&w.Host, "webhook-host", "", "address the webhook server listens on; empty means all")
	fs.IntVar(&w.Port, "webhook-port", 9443, "port the webhook server listens on")
	fs.StringVar(&w.CertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the webhook's tls.crt and tls.key; changes are picked up without a restart")
	fs.StringVar(&w.CertMode, "webhook-cert-mode", CertModeFiles, `"files": serve the certificate in --webhook-cert-dir (cert-manager's); "self-managed": make, rotate and inject one into the existing, initially empty Secret --webhook-secret, mounted at --webhook-cert-dir`)
	fs.StringVar(&w.Namespace, "webhook-namespace", "", "the guard's namespace, for the self-managed certificate; empty means $POD_NAMESPACE")
	fs.StringVar(&w.Secret, "webhook-secret", "eck-metrics-guard-webhook-tls", "Secret of the self-managed certificate (in --webhook-namespace)")
	fs.StringVar(&w.Service, "webhook-service", "eck-metrics-guard-webhook", "Service the API server calls the webhook through; the self-managed certificate names <service>.<namespace>.svc")
	fs.StringVar(&w.Configuration, "webhook-configuration", "eck-metrics-guard", "MutatingWebhookConfiguration whose caBundle the self-managed mode keeps")
	fs.StringSliceVar(&w.ExtraDNSNames, "webhook-extra-dns-names", nil, "more DNS names for the self-managed certificate")
	fs.IntVar(&w.MaxInFlight, "webhook-max-in-flight", serving.DefaultMaxInFlight, "admissions served at once; one more is answered 429 at once (the API server applies failurePolicy) instead of waiting past timeoutSeconds; negative: no bound")
	fs.BoolVar(&w.EnableHTTP2, "enable-http2", false, "let the webhook and metrics servers negotiate HTTP/2; off, they speak HTTP/1.1 only (HTTP/2 rapid reset, CVE-2023-44487)")

	fs = sets[sectionMetrics]
	fs.StringVar(&o.Metrics.BindAddress, "metrics-bind-address", ":8443", `address of the guard's own metrics endpoint; "0" turns it off`)
	fs.BoolVar(&o.Metrics.SecureServing, "metrics-secure", true, "serve the guard's metrics over TLS, to callers authorized to get /metrics")
	fs.StringVar(&o.Metrics.CertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for the metrics endpoint; empty means a self-signed certificate")
	fs.BoolVar(&o.Profiling, "profiling", false, "serve Go's profiles at /debug/pprof/ on the metrics endpoint (authorized as /metrics is)")
	fs.StringVar(&o.Health.BindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")

	fs = sets[sectionScope]
	fs.StringSliceVar(&o.Namespaces, "namespaces", nil, "secure ECK operators in these namespaces only: the cache holds their namespaced objects only, and the guard needs Roles there only (chart: watchNamespaces); empty means every namespace")

	fs = sets[sectionController]
	c := &o.Controller
	fs.BoolVar(&c.Enabled, "controller", true, "run the controller: companion objects, retrofit of existing operators, healing of drift")
	fs.BoolVar(&c.LeaderElect, "leader-elect", false, "elect one replica to run the controller (every replica serves the webhook)")
	fs.StringVar(&c.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader election Lease; empty means the guard's own")
	fs.DurationVar(&c.LeaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a follower waits after the leader's last renewal before taking the Lease")
	fs.DurationVar(&c.RenewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew before it gives the Lease up and exits (an API server outage longer than this restarts the leader)")
	fs.DurationVar(&c.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.IntVar(&c.MaxConcurrentReconciles, "max-concurrent-reconciles", DefaultMaxConcurrentReconciles, "workers of each controller (operator StatefulSets, operator Deployments, the binding, the policies)")
	fs.DurationVar(&c.ResyncPeriod, "resync-period", DefaultResyncPeriod, "how often every ECK operator and policy is reconciled again, changed or not: the backstop for what no watch sees (the cache holds only the ConfigMaps the guard labelled)")
	fs.StringVar(&c.BindingName, "auth-delegator-binding", controller.DefaultBindingName, "the one ClusterRoleBinding to system:auth-delegator whose subjects are the guarded operators' ServiceAccounts (the guard's RBAC may update and delete this name only)")

	fs = sets[sectionDefaults]
	fs.StringVar(&o.Defaults.Issuer, "default-issuer", "", "cert-manager issuer for operators whose annotations choose no certificate")
	fs.StringVar(&o.Defaults.IssuerKind, "default-issuer-kind", "", "Issuer or ClusterIssuer, for --default-issuer")
	fs.IntVar(&o.Defaults.Port, "default-metrics-port", 0, "metrics port for operators whose annotations choose none; 0 picks 8081 or the next free port")

	// The certificate and monitor settings of the companion objects: defaults the Plan merges
	// under a policy's and the annotations, defined once for the server and inject.
	addCompanionFlags(sets[sectionPlan], &o.Defaults, true)

	logFlags := flag.NewFlagSet("log", flag.ContinueOnError)
	o.Log.BindFlags(logFlags)
	sets[sectionLogging].AddGoFlagSet(logFlags)
	return sets
}

// AddFlags registers every section's flags on fs.
func (o *ServerOptions) AddFlags(fs *pflag.FlagSet) {
	sets := o.FlagSets()
	for _, name := range sections {
		fs.AddFlagSet(sets[name])
	}
}

// sectionedUsage prints the flags section by section.
func sectionedUsage(sets map[string]*pflag.FlagSet) func(*cobra.Command) error {
	return func(cmd *cobra.Command) error {
		out := cmd.OutOrStderr()
		fmt.Fprintf(out, "Usage:\n  %s\n", cmd.UseLine())
		for _, name := range sections {
			fmt.Fprintf(out, "\n%s flags:\n%s", strings.ToUpper(name[:1])+name[1:], sets[name].FlagUsages())
		}
		if cmd.HasAvailableInheritedFlags() {
			fmt.Fprintf(out, "\nGlobal flags:\n%s", cmd.InheritedFlags().FlagUsages())
		}
		return nil
	}
}

func newServerCommand() *cobra.Command {
	o := &ServerOptions{}
	cmd := &cobra.Command{
		Use:   "webhook",
		Short: "Run the admission webhook server and the controller",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := policy.ValidateDefaults(o.Defaults); err != nil {
				return usageError(err)
			}
			return RunServer(ctrl.SetupSignalHandler(), o)
		},
	}
	sets := o.FlagSets()
	for _, name := range sections {
		cmd.Flags().AddFlagSet(sets[name])
	}
	cmd.SetUsageFunc(sectionedUsage(sets))
	return cmd
}

// Scheme holds every type the server reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := orv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// NewManager builds the controller-runtime manager with the webhook registered. It is
// exported for the end-to-end tests, which run the same server in their process.
func NewManager(o *ServerOptions) (ctrl.Manager, error) {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = o.Client.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load the kubeconfig: %w", err)
	}
	return NewManagerFor(cfg, o)
}

// NewManagerFor is NewManager with a given rest config (whose QPS and Burst, when unset, are
// the flags').
func NewManagerFor(cfg *rest.Config, o *ServerOptions) (ctrl.Manager, error) {
	if o.Webhook.CertMode != CertModeFiles && o.Webhook.CertMode != CertModeSelfManaged {
		return nil, fmt.Errorf("--webhook-cert-mode %q: must be %s or %s", o.Webhook.CertMode, CertModeFiles, CertModeSelfManaged)
	}
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 && cfg.Burst == 0 && cfg.RateLimiter == nil {
		cfg.QPS, cfg.Burst = o.Client.QPS, o.Client.Burst
	}
	metricsOpts := o.Metrics
	metricsOpts.TLSOpts = serving.TLSOptions(o.Webhook.EnableHTTP2)
	if metricsOpts.SecureServing {
		metricsOpts.FilterProvider = serving.WithAuthenticationAndAuthorization
	}
	if o.Profiling {
		metricsOpts.ExtraHandlers = map[string]http.Handler{
			"/debug/pprof/":        http.HandlerFunc(pprof.Index),
			"/debug/pprof/profile": http.HandlerFunc(pprof.Profile),
		}
	}
	var server crwebhook.Server = serving.NewWebhookServer(o.Webhook.WebhookOptions)
	var certsReady chan struct{}
	if o.Webhook.CertMode == CertModeSelfManaged {
		certsReady = make(chan struct{})
		server = &startWhenReady{Server: server, ready: certsReady}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 Scheme(),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.Health.BindAddress,
		WebhookServer:          server,
		Cache:                  cacheOptions(o),
		Client: client.Options{Cache: &client.CacheOptions{
			// Read from the API server, one namespace at a time, by the controller only: the
			// cache holds the guard's metrics Services only (cacheOptions).
			DisableFor: []client.Object{&corev1.Service{}},
		}},
		Controller: config.Controller{
			SkipNameValidation:      ptr.To(o.Controller.SkipNameValidation),
			MaxConcurrentReconciles: o.Controller.MaxConcurrentReconciles,
		},
		LeaderElection:          o.Controller.LeaderElect,
		LeaderElectionID:        "eck-metrics-guard.metrics-guard.eck.dev",
		LeaderElectionNamespace: o.Controller.LeaderElectionNS,
		LeaseDuration:           setDuration(o.Controller.LeaseDuration),
		RenewDeadline:           setDuration(o.Controller.RenewDeadline),
		RetryPeriod:             setDuration(o.Controller.RetryPeriod),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the manager: %w", err)
	}
	if certsReady != nil {
		if err := addRotator(mgr, o, certsReady); err != nil {
			return nil, err
		}
	}
	// Policies are on when their CRD is installed (the chart and config/default install it);
	// without it the guard runs on annotations alone. Installing it later needs a restart.
	policies := controller.PoliciesServed(mgr.GetRESTMapper())
	if !policies {
		mgr.GetLogger().Info("the MetricsSecurityPolicy CRD is not installed: policies are off, annotations alone opt in", "crd", "metricssecuritypolicies."+v1alpha1.GroupVersion.Group)
	}
	var lookup cluster.Lookup = cluster.CachedLookup{Reader: mgr.GetCache(), Live: mgr.GetAPIReader(), Policies: policies, Selectors: &policy.Selectors{}}
	if len(o.Namespaces) > 0 {
		lookup = cluster.Scoped{Lookup: lookup, Namespaces: o.Namespaces}
	}
	if err := setupWebhook(mgr, o, lookup, policies); err != nil {
		return nil, err
	}
	if o.Controller.Enabled {
		if err := setupControllers(mgr, o, lookup, policies); err != nil {
			return nil, err
		}
	}
	if err := setupHealth(mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

// cacheOptions: what the guard caches, and how little of it (docs/benchmarks.md, "Memory at
// scale"). Namespaces as metadata; StatefulSets and Deployments whole, but trimmed to a stub
// unless they run ECK (cluster.Transform: the API cannot select by image); of the ConfigMaps,
// only those labelled as a guarded operator's config (cluster.ConfigMapSelector), selected by
// the API server, so that the cluster's other ConfigMaps are never sent, decoded nor held;
// the one auth-delegator binding, by name (RBAC lets the guard list and watch it by name only);
// of the Services, the metrics Services the guard labelled (the policy controller watches them;
// the manager's client reads Services from the API server, one namespace at a time).
func cacheOptions(o *ServerOptions) cache.Options {
	var namespaces map[string]cache.Config
	for _, ns := range o.Namespaces {
		if namespaces == nil {
			namespaces = map[string]cache.Config{}
		}
		namespaces[ns] = cache.Config{}
	}
	return cache.Options{
		DefaultTransform:  cluster.Transform,
		DefaultNamespaces: namespaces,
		SyncPeriod:        ptr.To(o.Controller.ResyncPeriod),
		ByObject: map[client.Object]cache.ByObject{
			&rbacv1.ClusterRoleBinding{}: {Field: fields.OneTermEqualSelector("metadata.name", bindingName(o))},
			&corev1.ConfigMap{}:          {Label: cluster.ConfigMapSelector()},
			// What the policy controller watches: the metrics Services the guard labelled.
			&corev1.Service{}: {Label: labels.SelectorFromSet(labels.Set{keys.LabelMetricsService: "true"})},
		},
	}
}

// setupWebhook registers the admission handler, and starts the informers it reads with the
// manager, so that /readyz waits for them and the first admission request does not.
func setupWebhook(mgr ctrl.Manager, o *ServerOptions, lookup cluster.Lookup, policies bool) error {
	handler := &webhook.Handler{Lookup: lookup, Defaults: o.Defaults}
	mgr.GetWebhookServer().Register(webhook.Path, &admission.Webhook{Handler: handler, RecoverPanic: ptr.To(true)})
	cached := []client.Object{&appsv1.StatefulSet{}, &appsv1.Deployment{}, &corev1.ConfigMap{}, namespaceMetadata()}
	if policies {
		cached = append(cached, &v1alpha1.MetricsSecurityPolicy{})
	}
	for _, obj := range cached {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("failed to set up the cache for %T: %w", obj, err)
		}
	}
	return nil
}

// setDuration is d, or nil (controller-runtime's default) when it is not set.
func setDuration(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}

// setupControllers registers the operator reconcilers (StatefulSets, Deployments), the
// auth-delegator binding's and, with the CRD, the policies'.
func setupControllers(mgr ctrl.Manager, o *ServerOptions, lookup cluster.Lookup, policies bool) error {
	opts := controller.Options{Defaults: o.Defaults}
	for _, kind := range []string{"StatefulSet", "Deployment"} {
		r := &controller.OperatorReconciler{
			Kind:      kind,
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Lookup:    lookup,
			Recorder:  mgr.GetEventRecorder("eck-metrics-guard"),
			Options:   opts,
		}
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the controller: %w", err)
		}
	}
	// The binding decides for every operator of the cluster on each reconcile: only the
	// entitled ones count, and only theirs need their ConfigMaps read.
	b := &controller.BindingReconciler{Name: bindingName(o), Client: mgr.GetClient(), Lookup: cluster.EntitledOnly{Lookup: lookup}, Defaults: o.Defaults, Policies: policies}
	if err := b.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("failed to set up the binding controller: %w", err)
	}
	if policies {
		p := &controller.PolicyReconciler{Client: mgr.GetClient(), Lookup: lookup, BindingName: bindingName(o)}
		if err := p.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the policy controller: %w", err)
		}
	}
	// OpenReports Reports, when their CRDs are installed (detected at start, as policies are).
	if controller.ReportsServed(mgr.GetRESTMapper()) {
		r := &controller.ReportReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Lookup: lookup, Defaults: o.Defaults}
		if err := r.SetupWithManager(mgr); err != nil {
			return fmt.Errorf("failed to set up the report controller: %w", err)
		}
	} else {
		ctrl.Log.WithName("setup").Info("OpenReports CRDs (openreports.io/v1alpha1 Report) not installed: no policy reports")
	}
	return nil
}

// setupHealth adds /healthz, and /readyz: ready once the webhook server serves and the cache
// has synced.
func setupHealth(mgr ctrl.Manager) error {
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("cache not synced")
		}
		return nil
	})
}

func bindingName(o *ServerOptions) string {
	if o.Controller.BindingName == "" {
		return controller.DefaultBindingName
	}
	return o.Controller.BindingName
}

func namespaceMetadata() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

// RunServer runs the server until ctx ends.
func RunServer(ctx context.Context, o *ServerOptions) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Log)))
	mgr, err := NewManager(o)
	if err != nil {
		return err
	}
	return mgr.Start(ctx)
}
