// Command cert-manager-controller runs cert-manager's own controllers, from the
// github.com/cert-manager/cert-manager module, against the API server of a kubeconfig. It is
// for the end-to-end tests only (test/e2e/framework.StartCertManager): cert-manager's
// controller binary lives in a nested Go module that the module proxy does not serve, so this
// small runner wires the public pkg/controller package itself, with only the controllers that
// SelfSigned and CA issuers need:
//
//   - Certificates: trigger, key manager, request manager, issuing, readiness, revision manager;
//   - CertificateRequests: the approver (signers wait for the Approved condition), and the
//     SelfSigned and CA signers;
//   - Issuers and ClusterIssuers (readiness of SelfSigned and CA issuers).
//
// With --cainjector it also runs cert-manager's cainjector in the same process, as
// cert-manager's own cainjector binary sets it up (pkg/controller/cainjector.RegisterAllInjectors
// on a controller-runtime manager, every injectable kind, the Certificate data source on): it
// copies the CA of the Certificate named by `cert-manager.io/inject-ca-from` (or of the Secret
// named by `cert-manager.io/inject-ca-from-secret`) into the caBundle of webhook
// configurations, APIServices and CRD conversion webhooks.
//
// There is no leader election, no webhook (defaulting and validation of cert-manager's
// resources), no metrics or health endpoint, and no ACME, Vault or Venafi issuer. It logs to
// stderr (klog; -v=4 for debug) and exits cleanly on SIGTERM or SIGINT.
//
// Usage:
//
//	cert-manager-controller --kubeconfig=admin.kubeconfig [--cluster-resource-namespace=cert-manager] [--cainjector]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The issuer implementations used by the issuers and clusterissuers controllers; they
	// register themselves with pkg/issuer.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// readyMessage is logged once the informers of every controller have synced.
const readyMessage = "cert-manager controllers ready"

// controllers are the names of the cert-manager controllers run; their packages, imported
// above, register them with pkg/controller in init().
var controllers = []string{
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	issuers.ControllerName,
	clusterissuers.ControllerName,
}

func main() {
	// A flag set of its own: controller-runtime, imported for the cainjector, registers its
	// own --kubeconfig on flag.CommandLine.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "path of the kubeconfig of the API server (required)")
	clusterResourceNamespace := fs.String("cluster-resource-namespace", "cert-manager",
		"namespace of the Secrets referenced by ClusterIssuers (e.g. the key pair of a CA ClusterIssuer)")
	leaderElect := fs.Bool("leader-elect", false, "accepted for compatibility with cert-manager's flags; only false is supported")
	workers := fs.Int("concurrent-workers", 5, "workers of each controller")
	minBackoff := fs.Duration("certificate-request-minimum-backoff-duration", time.Hour,
		"initial delay before a failed issuance is retried (cert-manager's default: 1h)")
	maxBackoff := fs.Duration("certificate-request-maximum-backoff-duration", 32*time.Hour,
		"maximum delay before a failed issuance is retried (cert-manager's default: 32h)")
	withCAInjector := fs.Bool("cainjector", false,
		"also run cert-manager's cainjector: the caBundle of webhook configurations, APIServices and CRDs annotated cert-manager.io/inject-ca-from(-secret)")
	klog.InitFlags(fs)        // -v, logs to stderr
	_ = fs.Parse(os.Args[1:]) // exits on an error

	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig is required")
		fs.Usage()
		os.Exit(2)
	}
	if *leaderElect {
		fmt.Fprintln(os.Stderr, "--leader-elect=true is not supported: this runner is for tests only")
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", fs.Args())
		os.Exit(2)
	}
	klog.EnableContextualLogging(true)
	defer klog.Flush()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log)

	if err := run(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   100,
		KubernetesAPIBurst: 200,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace: *clusterResourceNamespace,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			// cert-manager's defaults.
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: *minBackoff,
			CertificateRequestMaximumBackoffDuration: *maxBackoff,
		},
	}, *workers, *withCAInjector); err != nil {
		logf.Log.Error(err, "cert-manager controllers failed")
		klog.Flush()
		os.Exit(1)
	}
	logf.Log.Info("cert-manager controllers stopped")
}

// run constructs the controllers (and, with withCAInjector, the cainjector), starts the
// shared informers they registered with, and runs the controllers until ctx is cancelled.
func run(ctx context.Context, opts controllerpkg.ContextOptions, workers int, withCAInjector bool) error {
	log := logf.Log
	var injector *caInjector
	if withCAInjector {
		var err error
		if injector, err = newCAInjector(ctx, opts.Kubeconfig); err != nil {
			return err
		}
	}
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}
	// The informer factories are shared by every context the factory builds.
	shared, err := factory.Build()
	if err != nil {
		return fmt.Errorf("building the controller context: %w", err)
	}

	known := controllerpkg.Known()
	type named struct {
		name string
		ctrl controllerpkg.Interface
	}
	var ctrls []named
	for _, name := range controllers {
		constructor, ok := known[name]
		if !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return fmt.Errorf("controller %q is not registered (registered: %v)", name, names)
		}
		// Constructing a controller registers its informers with the shared factories, which
		// must therefore be started afterwards.
		ctrl, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("constructing controller %q: %w", name, err)
		}
		ctrls = append(ctrls, named{name, ctrl})
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(ctrls))
	var injectorErr error // set before wg.Wait returns
	for i, c := range ctrls {
		wg.Go(func() {
			log.Info("starting controller", "controller", c.name)
			// A controller stopped before its informers synced returns an error: that is only
			// one when the runner was not being stopped.
			if err := c.ctrl.Run(workers, runCtx); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("controller %q: %w", c.name, err)
				cancel() // one failing controller stops them all
			}
		})
	}

	var injectorSynced <-chan struct{}
	if injector != nil {
		injectorSynced = injector.synced
		wg.Go(func() {
			log.Info("starting cainjector")
			if err := injector.mgr.Start(runCtx); err != nil && ctx.Err() == nil {
				injectorErr = fmt.Errorf("cainjector: %w", err)
				cancel()
			}
		})
	}

	shared.SharedInformerFactory.Start(runCtx.Done())
	shared.KubeSharedInformerFactory.Start(runCtx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(runCtx.Done())
	synced := allSynced(shared.SharedInformerFactory.WaitForCacheSync(runCtx.Done())) &&
		allSynced(shared.KubeSharedInformerFactory.WaitForCacheSync(runCtx.Done())) &&
		allSynced(shared.HTTP01ResourceMetadataInformersFactory.WaitForCacheSync(runCtx.Done()))
	if synced && injectorSynced != nil {
		select {
		case <-injectorSynced:
		case <-runCtx.Done():
			synced = false
		}
	}
	if synced {
		// test/e2e/framework.StartCertManager waits for this message.
		log.Info(readyMessage, "controllers", len(ctrls), "cainjector", injector != nil)
	}

	<-runCtx.Done()
	log.Info("shutting down")
	wg.Wait()
	shared.SharedInformerFactory.Shutdown()
	shared.KubeSharedInformerFactory.Shutdown()
	shared.HTTP01ResourceMetadataInformersFactory.Shutdown()
	return errors.Join(append(errs, injectorErr)...)
}

// allSynced reports whether every informer in the result of an informer factory's
// WaitForCacheSync has synced.
func allSynced[K comparable](synced map[K]bool) bool {
	for _, ok := range synced {
		if !ok {
			return false
		}
	}
	return true
}
