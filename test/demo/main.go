// Command demo is `make demo`: a newcomer's one-command look at eck-metrics-guard. On this
// machine it starts a real control plane (etcd, kube-apiserver, kube-controller-manager from
// ./bin), cert-manager's own controllers and the guard (webhook and controller, in this
// process); installs the sample ECK operator (config/samples/eck-operator.yaml) and a CA
// issuer; opts the namespace in; waits until the controller has secured the operator; and
// prints what changed. It exits non-zero if the end state is not reached.
//
//	go run ./test/demo [--keep] [--verbose] [--timeout 60s]
//
// The logs of etcd, kube-apiserver, kube-controller-manager and cert-manager go to files in
// a temporary directory (kept with --keep or on failure); the guard's own logs are discarded
// unless --verbose.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

const (
	namespace = "elastic-system"
	issuer    = "metrics-ca"
	sample    = "config/samples/eck-operator.yaml"
)

type options struct {
	keep    bool
	verbose bool
	timeout time.Duration
}

func main() {
	var o options
	flag.BoolVar(&o.keep, "keep", false, "leave everything running until Ctrl-C, and print how to reach it with kubectl")
	flag.BoolVar(&o.verbose, "verbose", false, "write the guard's own logs to standard error")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "how long to wait for the operator to be secured")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "\n✗ demo failed: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (retErr error) {
	logOut := io.Discard
	if o.verbose {
		logOut = os.Stderr
	}
	log.SetLogger(zap.New(zap.WriteTo(logOut), zap.UseDevMode(o.verbose)))
	klog.SetOutput(logOut)
	klog.LogToStderr(false)
	if !o.verbose {
		rest.SetDefaultWarningHandler(rest.NoWarnings{})
	}

	repo, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	fmt.Println("eck-metrics-guard demo: a real kube-apiserver, cert-manager and the guard, on this machine")
	fmt.Println()
	heading("Starting")

	crds := []string{filepath.Join(repo, "config", "crd", "bases")}
	if err := step("CRDs: cert-manager's, ECK's and the Prometheus Operator's (Go module cache), MetricsSecurityPolicy (config/crd)", func() error {
		for _, find := range []func() (string, error){framework.CertManagerCRDs, framework.ECKCRDs} {
			path, err := find()
			if err != nil {
				return err
			}
			crds = append(crds, path)
		}
		prom, err := framework.PrometheusOperatorCRDs()
		crds = append(crds, prom...)
		return err
	}); err != nil {
		return err
	}
	// The real ECK operator runs, after the guard, in a network namespace of the demo's own
	// when it can (root, iproute2), removed after everything else has stopped.
	netns, nsErr := (*framework.NetNS)(nil), framework.NetNSRequirements()
	if nsErr == nil {
		if netns, nsErr = framework.NewNetNS(); nsErr == nil {
			defer func() {
				if err := netns.Delete(); err != nil {
					fmt.Fprintf(os.Stderr, "removing network namespace %s: %v\n", netns.Name, err)
				}
			}()
		}
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmv1.AddToScheme, monitoringv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}

	var env *framework.Env
	if err := step("control plane: etcd, kube-apiserver, kube-controller-manager; webhook configuration from config/webhook", func() error {
		startCtx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		env, err = framework.New(startCtx, framework.Options{
			ControllerManager: true,
			CRDDirectoryPaths: crds,
			Scheme:            scheme,
			WebhookInstallOptions: envtest.WebhookInstallOptions{
				Paths: []string{filepath.Join(repo, "config", "webhook")},
			},
		})
		return err
	}); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			env.KeepDir = true
			fmt.Fprintf(os.Stderr, "\nlogs of every component are kept in %s\n", env.Dir)
		}
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping: %v\n", err)
		}
	}()
	fmt.Printf("    component logs: %s\n", env.Dir)

	if err := step("cert-manager controllers (SelfSigned and CA issuers)", func() error {
		startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := framework.StartCertManager(startCtx, env)
		return err
	}); err != nil {
		return err
	}
	if err := step("eck-metrics-guard webhook + controller (in this process)", func() error {
		return env.StartGuard(nil)
	}); err != nil {
		return err
	}

	fmt.Println()
	heading("Installing an ECK operator, then opting its namespace in")
	c := env.Client
	var before snapshot
	if err := step("namespace "+namespace+" and "+sample+" (not opted in yet)", func() error {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
			return err
		}
		kinds, err := applySample(ctx, c, filepath.Join(repo, sample))
		if err != nil {
			return err
		}
		fmt.Printf("(%s) ", kinds)
		return nil
	}); err != nil {
		return err
	}
	if err := step("the operator Pod "+namespace+"/elastic-operator-0, as applied (created by kube-controller-manager)", func() error {
		return poll(ctx, 30*time.Second, func() (bool, error) {
			before, err = take(ctx, c)
			return err == nil && before.pod != nil, client.IgnoreNotFound(err)
		})
	}); err != nil {
		return err
	}
	if err := step("CA issuer "+issuer+": SelfSigned Issuer -> CA Certificate -> CA Issuer, Ready", func() error {
		return caIssuer(ctx, c)
	}); err != nil {
		return err
	}
	if err := step(fmt.Sprintf("opt in: namespace %s annotated %s=true, %s=%s", namespace, keys.AnnotationSecure, keys.AnnotationIssuer, issuer), func() error {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true",%q:%q}}}`, keys.AnnotationSecure, keys.AnnotationIssuer, issuer)
		return c.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, client.RawPatch(types.MergePatchType, []byte(patch)))
	}); err != nil {
		return err
	}

	// One deadline for the retrofit and the restart of the Pod.
	waitCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var after snapshot
	var last []string
	failed := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if after.sts != nil {
			fmt.Fprintln(os.Stderr)
			printEvents(ctx, os.Stderr, c, after.sts)
		}
		status := "(none)"
		if after.sts != nil && after.sts.Annotations[keys.AnnotationStatus] != "" {
			status = after.sts.Annotations[keys.AnnotationStatus]
		}
		return fmt.Errorf("the end state was not reached within %s (%v): StatefulSet annotation %s is %q; still missing:\n  - %s",
			o.timeout, err, keys.AnnotationStatus, status, strings.Join(last, "\n  - "))
	}
	if err := step(fmt.Sprintf("the controller's retrofit (up to %s): status secured, end state reached (internal/compliance)", o.timeout), func() error {
		return poll(waitCtx, o.timeout, func() (bool, error) {
			s, err := take(ctx, c)
			if err != nil {
				return false, client.IgnoreNotFound(err)
			}
			after = s
			last = s.findings(false)
			return len(last) == 0, nil
		})
	}); err != nil {
		return failed(err)
	}
	// kube-controller-manager rolls the StatefulSet out only past Ready Pods: without a
	// kubelet the old Pod stays Pending, and the rollout waits for it forever. Delete it, as
	// the rollout would once it were Ready (or as one does with a stuck Pod).
	deleted := false
	if err := step("the Pod onto the new template (no kubelet here: the demo deletes the old Pending Pod, as the rollout would)", func() error {
		return poll(waitCtx, o.timeout, func() (bool, error) {
			s, err := take(ctx, c)
			if err != nil {
				return false, client.IgnoreNotFound(err)
			}
			after = s
			last = s.findings(true)
			if len(last) == 0 {
				return true, nil
			}
			if !deleted && s.pod != nil && s.pod.UID == before.pod.UID && s.current() {
				if err := c.Delete(ctx, s.pod, client.Preconditions{UID: &s.pod.UID}); client.IgnoreNotFound(err) != nil {
					return false, err
				}
				deleted = true
			}
			return false, nil
		})
	}); err != nil {
		return failed(err)
	}

	fmt.Println()
	if err := show(ctx, c, before, after); err != nil {
		return err
	}
	if err := report(waitCtx, c); err != nil {
		return failed(err)
	}
	realCtx, cancelReal := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelReal()
	if err := realECK(realCtx, env, repo, before, after, netns, nsErr); err != nil {
		return err
	}

	if !o.keep {
		fmt.Println("\nAll done: stopping everything (run `make demo KEEP=1` to look around with kubectl).")
		return nil
	}
	fmt.Println()
	heading("Still running (--keep)")
	fmt.Printf("    kubeconfig: %s\n", env.Kubeconfig)
	fmt.Printf("    try:        kubectl --kubeconfig %s get sts -n %s -o yaml\n", env.Kubeconfig, namespace)
	fmt.Printf("                kubectl --kubeconfig %s get certificates,secrets,svc,servicemonitors,events -n %s\n", env.Kubeconfig, namespace)
	fmt.Printf("                kubectl --kubeconfig %s get metricssecuritypolicy demo-audit -o yaml\n", env.Kubeconfig)
	fmt.Printf("    logs:       %s\n", env.Dir)
	fmt.Println("    Press Ctrl-C to stop.")
	<-ctx.Done()
	fmt.Println("\nStopping...")
	return nil
}

// applySample creates every object of a multi-document YAML file, as `kubectl create -f`
// would, and returns the kinds it created.
func applySample(ctx context.Context, c client.Client, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var kinds []string
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("failed to decode %s: %w", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, u); err != nil {
			return "", fmt.Errorf("failed to create %s %s: %w", u.GetKind(), u.GetName(), err)
		}
		kinds = append(kinds, u.GetKind())
	}
	return strings.Join(kinds, ", "), nil
}

// caIssuer makes the chain a platform team would, and waits until the CA Issuer is Ready.
func caIssuer(ctx context.Context, c client.Client) error {
	objs := []client.Object{
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: "selfsigned", Namespace: namespace}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{SelfSigned: &cmv1.SelfSignedIssuer{}}}},
		&cmv1.Certificate{ObjectMeta: metav1.ObjectMeta{Name: issuer, Namespace: namespace}, Spec: cmv1.CertificateSpec{
			IsCA: true, CommonName: "demo metrics CA", SecretName: issuer,
			PrivateKey: &cmv1.CertificatePrivateKey{Algorithm: cmv1.ECDSAKeyAlgorithm, Size: 256},
			IssuerRef:  cmmeta.IssuerReference{Name: "selfsigned", Kind: cmv1.IssuerKind, Group: "cert-manager.io"},
		}},
		&cmv1.Issuer{ObjectMeta: metav1.ObjectMeta{Name: issuer, Namespace: namespace}, Spec: cmv1.IssuerSpec{IssuerConfig: cmv1.IssuerConfig{CA: &cmv1.CAIssuer{SecretName: issuer}}}},
	}
	for _, obj := range objs {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("failed to create %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return poll(ctx, 30*time.Second, func() (bool, error) {
		var iss cmv1.Issuer
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: issuer}, &iss); err != nil {
			return false, err
		}
		for _, cond := range iss.Status.Conditions {
			if cond.Type == cmv1.IssuerConditionReady && cond.Status == cmmeta.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

// snapshot is the operator as stored at one moment.
type snapshot struct {
	op  *eck.Operator
	sts *appsv1.StatefulSet
	cm  *corev1.ConfigMap
	pod *corev1.Pod // nil until kube-controller-manager has created it
}

// take reads the one ECK operator StatefulSet of the namespace, its ConfigMap and its Pod.
func take(ctx context.Context, c client.Client) (snapshot, error) {
	var s snapshot
	var list appsv1.StatefulSetList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return s, err
	}
	for i := range list.Items {
		if op, ok := eck.FromStatefulSet(&list.Items[i]); ok {
			s.op, s.sts = op, &list.Items[i]
		}
	}
	if s.sts == nil {
		return s, fmt.Errorf("no ECK operator StatefulSet in %s", namespace)
	}
	s.cm = &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: s.op.ConfigMapName}, s.cm); err != nil {
		return s, err
	}
	pod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: s.sts.Name + "-0"}, pod); err == nil {
		s.pod = pod
	} else if client.IgnoreNotFound(err) != nil {
		return s, err
	}
	return s, nil
}

// findings lists what is not yet as the demo expects: the controller's verdict, the end
// state (internal/compliance), and, with pod, a Pod of the current revision that mounts the
// Secret.
func (s snapshot) findings(pod bool) []string {
	var out []string
	if v := s.sts.Annotations[keys.AnnotationStatus]; v != "secured" {
		out = append(out, fmt.Sprintf("StatefulSet annotation %s is %q, want \"secured\"", keys.AnnotationStatus, v))
	}
	_, f := compliance.Operator(s.op, &s.sts.Spec.Template, s.cm)
	out = append(out, f...)
	switch {
	case !pod:
	case s.pod == nil:
		out = append(out, "Pod "+s.sts.Name+"-0 does not exist")
	case !s.current() || s.pod.Labels[appsv1.ControllerRevisionHashLabelKey] != s.sts.Status.UpdateRevision:
		out = append(out, "Pod "+s.pod.Name+" is not of the StatefulSet's current revision yet")
	case secretVolume(s.pod.Spec) == "":
		out = append(out, "Pod "+s.pod.Name+" does not mount the TLS Secret")
	}
	return out
}

// current says whether kube-controller-manager has seen the StatefulSet's latest template.
func (s snapshot) current() bool {
	return s.sts.Status.ObservedGeneration >= s.sts.Generation && s.sts.Status.UpdateRevision != ""
}

func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return cond()
	})
}

// step prints one progress line: what, then how long it took or that it failed.
func step(what string, fn func() error) error {
	fmt.Printf("  • %s ... ", what)
	start := time.Now()
	err := fn()
	if err != nil {
		fmt.Println("failed")
		return err
	}
	fmt.Printf("done (%s)\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// report shows what a platform team sees: a MetricsSecurityPolicy in Audit mode over the demo
// namespace, whose status lists the operator as compliant.
func report(ctx context.Context, c client.Client) error {
	fmt.Println()
	heading("A platform team's view: a MetricsSecurityPolicy (mode Audit) over the namespace")
	p := &v1alpha1.MetricsSecurityPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-audit"},
		Spec: v1alpha1.MetricsSecurityPolicySpec{
			Mode:              v1alpha1.ModeAudit,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: namespace}},
		},
	}
	if err := step("policy demo-audit: its status lists the operator, compliant", func() error {
		if err := c.Create(ctx, p); err != nil {
			return err
		}
		err := poll(ctx, time.Minute, func() (bool, error) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return false, err
			}
			return p.Status.ObservedGeneration == p.Generation && p.Status.Covered == 1 && p.Status.Compliant == 1, nil
		})
		if err != nil {
			return fmt.Errorf("%w; status: %+v", err, p.Status)
		}
		return nil
	}); err != nil {
		return err
	}
	fmt.Printf("\n    $ kubectl get metricssecuritypolicy\n    NAME         MODE    COVERED   COMPLIANT\n    %-12s %-7s %-9d %d\n\n", p.Name, p.Spec.Mode, p.Status.Covered, p.Status.Compliant)
	for _, o := range p.Status.Operators {
		fmt.Printf("    status.operators: %s %s/%s, ECK %s, mode %s, compliant: %v\n", o.Kind, o.Namespace, o.Name, o.Version, o.Mode, o.Compliant)
	}
	return nil
}
