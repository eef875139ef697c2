package main

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"
)

// caInjector is cert-manager's cainjector on a controller-runtime manager.
type caInjector struct {
	mgr manager.Manager
	// synced is closed once the informers of every injector have synced.
	synced chan struct{}
}

// newCAInjector sets up cert-manager's cainjector as cert-manager's cmd/cainjector/app.Run
// does with its default configuration (all namespaces, every injectable kind, Certificates as
// a data source, Secrets read directly rather than cached), without leader election and
// without a metrics endpoint.
func newCAInjector(ctx context.Context, kubeconfig string) (*caInjector, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	cfg = util.RestConfigWithUserAgent(cfg, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(apiregistrationv1.AddToScheme(scheme))

	ctrl.SetLogger(logf.Log.WithName("cainjector"))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Cache:  cache.Options{ReaderFailOnMissingInformer: true},
		// As cert-manager's: Secrets are read from the API server, never cached.
		Client:  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the cainjector's manager: %w", err)
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor: map[string]bool{
			cainjector.MutatingWebhookConfigurationName:   true,
			cainjector.ValidatingWebhookConfigurationName: true,
			cainjector.APIServiceName:                     true,
			cainjector.CustomResourceDefinitionName:       true,
		},
	}); err != nil {
		return nil, fmt.Errorf("registering the cainjector's injectors: %w", err)
	}

	// The injectors' controllers create their informers only when they start, after the
	// manager's caches have synced. Creating them now, for the kinds the injectors watch,
	// makes the manager wait for them before it starts its other runnables, so that
	// `synced` below means "every injector sees the cluster".
	secretMetadata := &metav1.PartialObjectMetadata{}
	secretMetadata.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{},
		&admissionregistrationv1.ValidatingWebhookConfiguration{},
		&apiregistrationv1.APIService{},
		&apiextensionsv1.CustomResourceDefinition{},
		&cmapi.Certificate{},
		secretMetadata, // watched metadata only (builder.OnlyMetadata)
	} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("cainjector: informer for %T: %w", obj, err)
		}
	}
	in := &caInjector{mgr: mgr, synced: make(chan struct{})}
	// Runnables that need no leader election start once the caches have synced.
	if err := mgr.Add(syncedRunnable(func(context.Context) error {
		close(in.synced)
		return nil
	})); err != nil {
		return nil, err
	}
	return in, nil
}

// syncedRunnable is a manager runnable that does not wait for leader election.
type syncedRunnable func(context.Context) error

func (r syncedRunnable) Start(ctx context.Context) error { return r(ctx) }
func (syncedRunnable) NeedLeaderElection() bool          { return false }
