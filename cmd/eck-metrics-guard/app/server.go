package app

import (
	"context"
	"flag"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
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
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/serving"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/webhook"
)

// ServerOptions are the flags of the webhook server, grouped per component.
type ServerOptions struct {
	Kubeconfig string

	Webhook struct {
		Host     string
		Port     int
		CertDir  string
		CertMode string
		// Used by the self-managed certificate mode.
		Namespace     string
		Secret        string
		Service       string
		Configuration string
		ExtraDNSNames []string
		// MaxInFlight bounds the admissions served at once (serving.WebhookOptions).
		MaxInFlight int
	}
	// EnableHTTP2 lets the webhook and metrics servers negotiate HTTP/2 (off: HTTP/1.1 only).
	EnableHTTP2 bool
	// Namespaces limits the guard to ECK operators in these namespaces (cache, controller,
	// webhook lookups); empty means every namespace.
	Namespaces []string
	Metrics    struct {
		BindAddress string
		Secure      bool
		CertDir     string
	}
	Health struct {
		BindAddress string
	}
	Controller struct {
		Enabled          bool
		LeaderElect      bool
		LeaderElectionNS string
		// BindingName is the one ClusterRoleBinding to system:auth-delegator the controller
		// keeps (its RBAC may update that name only).
		BindingName string
		// SkipNameValidation lets a process run the controllers more than once, one manager
		// after another (tests that stop and start the guard); not a flag.
		SkipNameValidation bool
	}
	Defaults policy.Defaults
	Log      zap.Options
}

// AddFlags registers the flags, one group per component.
func (o *ServerOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig to reach the API server; empty means in-cluster config or $KUBECONFIG")

	fs.StringVar(&o.Webhook.Host, "webhook-host", "", "address the webhook server listens on; empty means all")
	fs.IntVar(&o.Webhook.Port, "webhook-port", 9443, "port the webhook server listens on")
	fs.StringVar(&o.Webhook.CertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the webhook's tls.crt and tls.key; changes are picked up without a restart")
	fs.StringVar(&o.Webhook.CertMode, "webhook-cert-mode", CertModeFiles, `"files": serve the certificate in --webhook-cert-dir (cert-manager's); "self-managed": make, rotate and inject one into the existing, initially empty Secret --webhook-secret, mounted at --webhook-cert-dir`)
	fs.StringVar(&o.Webhook.Namespace, "webhook-namespace", "", "the guard's namespace, for the self-managed certificate; empty means $POD_NAMESPACE")
	fs.StringVar(&o.Webhook.Secret, "webhook-secret", "eck-metrics-guard-webhook-tls", "Secret of the self-managed certificate (in --webhook-namespace)")
	fs.StringVar(&o.Webhook.Service, "webhook-service", "eck-metrics-guard-webhook", "Service the API server calls the webhook through; the self-managed certificate names <service>.<namespace>.svc")
	fs.StringVar(&o.Webhook.Configuration, "webhook-configuration", "eck-metrics-guard", "MutatingWebhookConfiguration whose caBundle the self-managed mode keeps")
	fs.StringSliceVar(&o.Webhook.ExtraDNSNames, "webhook-extra-dns-names", nil, "more DNS names for the self-managed certificate")

	fs.IntVar(&o.Webhook.MaxInFlight, "webhook-max-in-flight", serving.DefaultMaxInFlight, "admissions served at once; one more is answered 429 at once (the API server applies failurePolicy) instead of waiting past timeoutSeconds; negative: no bound")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "let the webhook and metrics servers negotiate HTTP/2; off, they speak HTTP/1.1 only (HTTP/2 rapid reset, CVE-2023-44487)")
	fs.StringSliceVar(&o.Namespaces, "namespaces", nil, "secure ECK operators in these namespaces only: the cache holds their namespaced objects only, and the guard needs Roles there only (chart: watchNamespaces); empty means every namespace")
	fs.StringVar(&o.Metrics.BindAddress, "metrics-bind-address", ":8443", `address of the guard's own metrics endpoint; "0" turns it off`)
	fs.BoolVar(&o.Metrics.Secure, "metrics-secure", true, "serve the guard's metrics over TLS, to callers authorized to get /metrics")
	fs.StringVar(&o.Metrics.CertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for the metrics endpoint; empty means a self-signed certificate")

	fs.StringVar(&o.Health.BindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")

	fs.BoolVar(&o.Controller.Enabled, "controller", true, "run the controller: companion objects, retrofit of existing operators, healing of drift")
	fs.BoolVar(&o.Controller.LeaderElect, "leader-elect", false, "elect one replica to run the controller (every replica serves the webhook)")
	fs.StringVar(&o.Controller.LeaderElectionNS, "leader-election-namespace", "", "namespace of the leader election Lease; empty means the guard's own")
	fs.StringVar(&o.Controller.BindingName, "auth-delegator-binding", controller.DefaultBindingName, "the one ClusterRoleBinding to system:auth-delegator whose subjects are the guarded operators' ServiceAccounts (the guard's RBAC may update and delete this name only)")
	// The companions' flags (certificate validity, monitor): shared with inject.
	addCompanionFlags(fs, &o.Defaults, true)

	fs.StringVar(&o.Defaults.Issuer, "default-issuer", "", "cert-manager issuer for operators whose annotations choose no certificate")
	fs.StringVar(&o.Defaults.IssuerKind, "default-issuer-kind", "", "Issuer or ClusterIssuer, for --default-issuer")
	fs.IntVar(&o.Defaults.Port, "default-metrics-port", 0, "metrics port for operators whose annotations choose none; 0 picks 8081 or the next free port")

	logFlags := flag.NewFlagSet("log", flag.ContinueOnError)
	o.Log.BindFlags(logFlags)
	fs.AddGoFlagSet(logFlags)
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
	o.AddFlags(cmd.Flags())
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
	return s
}

// NewManager builds the controller-runtime manager with the webhook registered. It is
// exported for the end-to-end tests, which run the same server in their process.
func NewManager(o *ServerOptions) (ctrl.Manager, error) {
	loading := clientcmd.NewDefaultClientConfigLoadingRules()
	loading.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(loading, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load the kubeconfig: %w", err)
	}
	return NewManagerFor(cfg, o)
}

// NewManagerFor is NewManager with a given rest config.
func NewManagerFor(cfg *rest.Config, o *ServerOptions) (ctrl.Manager, error) {
	metricsOpts := metricsserver.Options{BindAddress: o.Metrics.BindAddress, SecureServing: o.Metrics.Secure, CertDir: o.Metrics.CertDir,
		TLSOpts: serving.TLSOptions(o.EnableHTTP2)}
	if o.Metrics.Secure {
		metricsOpts.FilterProvider = serving.WithAuthenticationAndAuthorization
	}
	if o.Webhook.CertMode != CertModeFiles && o.Webhook.CertMode != CertModeSelfManaged {
		return nil, fmt.Errorf("--webhook-cert-mode %q: must be %s or %s", o.Webhook.CertMode, CertModeFiles, CertModeSelfManaged)
	}
	var server crwebhook.Server = serving.NewWebhookServer(serving.WebhookOptions{
		Host:        o.Webhook.Host,
		Port:        o.Webhook.Port,
		CertDir:     o.Webhook.CertDir,
		EnableHTTP2: o.EnableHTTP2,
		MaxInFlight: o.Webhook.MaxInFlight,
	})
	var certsReady chan struct{}
	if o.Webhook.CertMode == CertModeSelfManaged {
		certsReady = make(chan struct{})
		server = &startWhenReady{Server: server, ready: certsReady}
	}
	var namespaces map[string]cache.Config
	for _, ns := range o.Namespaces {
		if namespaces == nil {
			namespaces = map[string]cache.Config{}
		}
		namespaces[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 Scheme(),
		Metrics:                metricsOpts,
		HealthProbeBindAddress: o.Health.BindAddress,
		WebhookServer:          server,
		Cache: cache.Options{
			DefaultTransform:  cluster.Transform,
			DefaultNamespaces: namespaces,
			// The one auth-delegator binding: RBAC lets the guard list and watch it by name only.
			ByObject: map[client.Object]cache.ByObject{
				&rbacv1.ClusterRoleBinding{}: {Field: fields.OneTermEqualSelector("metadata.name", bindingName(o))},
			},
		},
		Controller:              config.Controller{SkipNameValidation: ptrTo(o.Controller.SkipNameValidation)},
		LeaderElection:          o.Controller.LeaderElect,
		LeaderElectionID:        "eck-metrics-guard.metrics-guard.eck.dev",
		LeaderElectionNamespace: o.Controller.LeaderElectionNS,
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
	var lookup cluster.Lookup = cluster.CachedLookup{Reader: mgr.GetCache(), Policies: policies, Selectors: &policy.Selectors{}}
	if len(o.Namespaces) > 0 {
		lookup = cluster.Scoped{Lookup: lookup, Namespaces: o.Namespaces}
	}
	handler := &webhook.Handler{Lookup: lookup, Defaults: o.Defaults}
	mgr.GetWebhookServer().Register(webhook.Path, &admission.Webhook{Handler: handler, RecoverPanic: ptrTo(true)})

	// Start the informers with the manager, so that /readyz waits for them and the first
	// admission request does not.
	cached := []client.Object{&appsv1.StatefulSet{}, &appsv1.Deployment{}, &corev1.ConfigMap{}, namespaceMetadata()}
	if policies {
		cached = append(cached, &v1alpha1.MetricsSecurityPolicy{})
	}
	for _, obj := range cached {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("failed to set up the cache for %T: %w", obj, err)
		}
	}
	for _, kind := range []string{"StatefulSet", "Deployment"} {
		if !o.Controller.Enabled {
			break
		}
		r := &controller.OperatorReconciler{
			Kind:      kind,
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Lookup:    lookup,
			Recorder:  mgr.GetEventRecorder("eck-metrics-guard"),
			Options:   controller.Options{Defaults: o.Defaults},
		}
		if err := r.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("failed to set up the controller: %w", err)
		}
	}
	if o.Controller.Enabled {
		r := &controller.BindingReconciler{Name: bindingName(o), Client: mgr.GetClient(), Lookup: lookup, Defaults: o.Defaults, Policies: policies}
		if err := r.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("failed to set up the binding controller: %w", err)
		}
	}
	if o.Controller.Enabled && policies {
		r := &controller.PolicyReconciler{Client: mgr.GetClient(), Lookup: lookup, BindingName: bindingName(o)}
		if err := r.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("failed to set up the policy controller: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("cache not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
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

func ptrTo[T any](v T) *T { return &v }
