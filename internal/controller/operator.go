// Package controller completes what the webhook cannot: it creates the companion objects
// of a guarded ECK operator (metrics Service, auth-delegator binding, cert-manager
// Certificate, ServiceMonitor), secures operators that existed before they were opted in,
// and heals objects admitted while the webhook was down. It computes everything with the
// same policy and mutate packages as the webhook and the CLI.
package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/patch"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// FieldManager owns, in server-side apply, every field the controller writes.
const FieldManager = "eck-metrics-guard"

// statusSecured is the value of AnnotationStatus on an operator in the end state.
const statusSecured = "secured"

// waitForSecret is how often the controller looks again for a TLS Secret that is not
// there yet.
const waitForSecret = 10 * time.Second

// Options are the controller's settings (command-line flags).
type Options struct {
	// Defaults hold the flags' settings, certificate validity and monitor included; a
	// covering policy's defaults go on top of them (package policy).
	Defaults policy.Defaults
}

// OperatorReconciler brings one ECK operator workload (a StatefulSet, or an OLM install's
// Deployment: Kind says which), its ConfigMap and its companion objects to the end state. Its permissions are in rbac.go.
type OperatorReconciler struct {
	// Kind is "StatefulSet" or "Deployment".
	Kind   string
	Client client.Client
	// APIReader reads what is not cached: a ConfigMap the Lookup gave trimmed, and the operator's
	// cert-manager Certificate (its Ready condition; the guard reads no Secret).
	APIReader client.Reader
	Lookup    cluster.Lookup
	Recorder  events.EventRecorder
	Options   Options
}

var (
	certificateGVK    = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}
	serviceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}
	podMonitorGVK     = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}
)

// SetupWithManager registers the controller: workloads of Kind are its primary objects;
// changes to Namespaces (opt-in) and ConfigMaps (drift) bring it back to them, and so do its
// Certificates when cert-manager is installed (a Certificate turns Ready when its Secret is
// written; otherwise the controller looks for the Secret again every waitForSecret).
func (r *OperatorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("eck-operator-"+strings.ToLower(r.Kind)).
		// ECK operators, and workloads that carry the guard's status (an operator that is no
		// longer recognisable must not keep a "secured" of earlier days): no reconcile for
		// every other StatefulSet of the cluster.
		For(r.newObject(), builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			_, _, ok := eck.FromObject(o)
			_, annotated := o.GetAnnotations()[keys.AnnotationStatus]
			return ok || annotated
		}))).
		Watches(namespaceMetadata(), handler.EnqueueRequestsFromMapFunc(r.operatorsInNamespace)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.operatorsInNamespace))
	if _, err := mgr.GetRESTMapper().RESTMapping(certificateGVK.GroupKind(), certificateGVK.Version); err == nil {
		certificates := &metav1.PartialObjectMetadata{}
		certificates.SetGroupVersionKind(certificateGVK)
		b = b.Watches(certificates, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), r.newObject(), handler.OnlyControllerOwner()))
	}
	// The auth-delegator binding is the BindingReconciler's (binding.go).
	if PoliciesServed(mgr.GetRESTMapper()) {
		// A policy that starts covering a namespace, or changes its mode or defaults, brings
		// every operator back; its status updates (no new generation) do not.
		b = b.Watches(&v1alpha1.MetricsSecurityPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allOperators),
			builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.Complete(quietConflicts{"eck-operator-" + strings.ToLower(r.Kind), r}) // conflicts.go
}

func namespaceMetadata() *metav1.PartialObjectMetadata {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	return ns
}

// PoliciesServed reports whether the MetricsSecurityPolicy CRD is installed.
func PoliciesServed(mapper meta.RESTMapper) bool {
	_, err := mapper.RESTMapping(v1alpha1.GroupVersion.WithKind("MetricsSecurityPolicy").GroupKind(), v1alpha1.GroupVersion.Version)
	return err == nil
}

// allOperators maps anything to every ECK operator of the cluster (a Namespace named ""
// stands for all of them).
func (r *OperatorReconciler) allOperators(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.operatorsInNamespace(ctx, namespaceMetadata())
}

// operatorsInNamespace maps a Namespace, or an object in one, to the ECK operators there.
func (r *OperatorReconciler) operatorsInNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	ns := obj.GetNamespace()
	if ns == "" {
		ns = obj.GetName()
	}
	workloads, err := r.Lookup.Operators(ctx, ns)
	if err != nil {
		logf.FromContext(ctx).Error(err, "failed to list operators", "namespace", ns)
		return nil
	}
	var reqs []reconcile.Request
	for _, w := range workloads {
		if w.Operator.Kind != r.Kind {
			continue
		}
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name != w.Operator.ConfigMapName {
			continue
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: w.Operator.Namespace, Name: w.Operator.Name}})
	}
	return reqs
}

// Reconcile implements reconcile.Reconciler.
func (r *OperatorReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	sts := r.newObject()
	if err := r.Client.Get(ctx, req.NamespacedName, sts); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	op, tmpl, ok := eck.FromObject(sts)
	if !sts.GetDeletionTimestamp().IsZero() {
		return reconcile.Result{}, nil
	}
	if !ok {
		if _, annotated := sts.GetAnnotations()[keys.AnnotationStatus]; annotated {
			return reconcile.Result{}, r.setStatus(ctx, sts, "not guarded: no longer an ECK operator the guard can recognise (another image, or not ECK's manager)")
		}
		return reconcile.Result{}, nil
	}
	in, err := cluster.Input(ctx, r.Lookup, sts.GetNamespace(), cluster.Workload{Operator: op, Template: tmpl, Annotations: sts.GetAnnotations()}, r.Options.Defaults)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.liveConfigMaps(ctx, &in); err != nil {
		return reconcile.Result{}, err
	}
	res, ferr := engine.Secure(in)
	d := res.Decision
	if ferr != nil {
		d.Errs = append(d.Errs, ferr)
	}
	if len(d.Errs) > 0 {
		r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "InvalidSettings", "Reconcile", "not secured: %v", d.Errs.ToAggregate())
		operators.WithLabelValues(stateInvalid).Inc()
		return reconcile.Result{}, r.setStatus(ctx, sts, "not secured: invalid settings: "+d.Errs.ToAggregate().Error())
	}
	if len(d.Denied) > 0 {
		// An Enforce policy would deny this object today; it was admitted before the policy
		// or while the webhook was down. What can be secured is secured.
		r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "PolicyViolation", "Reconcile", "secured anyway: %v", d.Denied.ToAggregate())
	}
	if d.Plan == nil {
		log.V(1).Info("left alone", "reason", d.Skip)
		if !d.Guarded {
			// An operator the guard no longer guards keeps no "secured" of earlier days.
			if _, annotated := sts.GetAnnotations()[keys.AnnotationStatus]; annotated {
				return reconcile.Result{}, r.setStatus(ctx, sts, "not guarded: "+d.Skip)
			}
			return reconcile.Result{}, nil
		}
		r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "Unsupported", "Reconcile", "%s", d.Skip)
		return reconcile.Result{}, r.setStatus(ctx, sts, "not secured: "+engine.Judge(in).String())
	}
	plan := d.Plan

	if !plan.Flags {
		if err := r.healConfigMap(ctx, sts, op, in.ConfigMap, res); err != nil {
			return reconcile.Result{}, err
		}
	}
	// The companions only with an opt-in of someone allowed to make it (no confused deputy:
	// docs/design/20261201-confused-deputy.md); the auth-delegator binding's subjects follow
	// the same rule (BindingReconciler).
	entitled, notEntitled := res.Entitled, res.NotEntitled
	if entitled {
		have, err := r.existing(ctx, sts.GetNamespace(), plan)
		if err != nil {
			return reconcile.Result{}, err
		}
		if err := r.writeCompanions(ctx, sts, res.Companions(have), have); err != nil {
			return reconcile.Result{}, err
		}
	}

	// The pod template last: the Secret volume is not optional, so the pod waits for the
	// Secret, and ECK reads the certificate only when it starts.
	waiting, err := r.certificateMissing(ctx, sts.GetNamespace(), plan, entitled)
	if err != nil {
		return reconcile.Result{}, err
	}
	// The status is the verdict on what the guard leaves: never "secured" unless what ECK
	// will read proves it.
	status := statusSecured
	switch {
	case !res.Verdict.Secured():
		status = "not secured: " + res.Verdict.String()
		if sts.GetAnnotations()[keys.AnnotationStatus] != status { // once, not on every reconcile
			r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "NotSecured", "Reconcile", "%s", res.Verdict)
		}
	case waiting:
		status = fmt.Sprintf("waiting for certificate Secret %s", plan.SecretName)
	}
	if !entitled {
		switch {
		case !res.Verdict.Secured():
			status += "; " + notEntitled
		case waiting:
			status = fmt.Sprintf("waiting for certificate Secret %s; %s", plan.SecretName, notEntitled)
		default:
			status = "operator secured; " + notEntitled
		}
		if sts.GetAnnotations()[keys.AnnotationStatus] != status { // once, not on every reconcile
			r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "NotEntitled", "Reconcile", "%s", notEntitled)
		}
	}
	if err := r.healWorkload(ctx, sts, res, status); err != nil {
		return reconcile.Result{}, err
	}
	if waiting && entitled {
		r.Recorder.Eventf(sts, nil, corev1.EventTypeNormal, "WaitingForCertificate", "Reconcile", "the pod starts once Secret %s exists", plan.SecretName)
		operators.WithLabelValues(stateWaiting).Inc()
		return reconcile.Result{RequeueAfter: waitForSecret}, nil
	}
	if status != statusSecured {
		operators.WithLabelValues(stateNotSecured).Inc()
		if in.ConfigMap == nil && op.ConfigMapName != "" && !plan.Flags {
			// Not there yet: the cache watches only the ConfigMaps the guard labelled, so
			// its creation reaches no watch of the controller.
			return reconcile.Result{RequeueAfter: waitForSecret}, nil
		}
		return reconcile.Result{}, nil
	}
	operators.WithLabelValues(stateSecured).Inc()
	return reconcile.Result{}, nil
}

// liveConfigMaps replaces the copies of the ConfigMaps the operator reads that do not hold all
// their data (eck.Trimmed) with the API server's: the status must judge the file ECK reads,
// not a copy without it. The server's Lookup keeps none trimmed (the cache holds the labelled
// configs whole, the API server serves the others), so this reads nothing there; a stale
// cached copy only costs a retry (the patch tests its resourceVersion; conflicts.go).
func (r *OperatorReconciler) liveConfigMaps(ctx context.Context, in *policy.Input) error {
	get := func(name string) (*corev1.ConfigMap, error) {
		cm := &corev1.ConfigMap{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: in.Operator.Namespace, Name: name}, cm)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return cm, err
	}
	var err error
	if cm := in.ConfigMap; cm != nil && eck.Trimmed(cm) {
		// The ConfigMap the controller edits: patched against all that is there.
		if in.ConfigMap, err = get(in.Operator.ConfigMapName); err != nil {
			return err
		}
	}
	for name, cm := range in.ConfigMaps {
		if cm != nil && eck.Trimmed(cm) {
			if in.ConfigMaps[name], err = get(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// setStatus records the status annotation alone.
func (r *OperatorReconciler) setStatus(ctx context.Context, obj client.Object, status string) error {
	return r.patchWorkload(ctx, obj, status, nil)
}

// patchWorkload writes the status annotation, and the pod template tmpl if not nil, with a
// JSON patch of exactly those changes.
func (r *OperatorReconciler) patchWorkload(ctx context.Context, obj client.Object, status string, tmpl *corev1.PodTemplateSpec) error {
	before := obj.DeepCopyObject().(client.Object)
	if tmpl != nil {
		_, stored, _ := eck.FromObject(obj)
		*stored = *tmpl
	}
	if obj.GetAnnotations()[keys.AnnotationStatus] != status {
		annotations := obj.GetAnnotations()
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[keys.AnnotationStatus] = status
		obj.SetAnnotations(annotations)
	}
	if err := r.patch(ctx, before, obj); err != nil {
		return fmt.Errorf("failed to patch %s %s/%s: %w", r.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// healWorkload writes the secured pod template of res (what the webhook would have done)
// and records the status annotation, with a JSON patch of exactly those changes.
func (r *OperatorReconciler) healWorkload(ctx context.Context, sts client.Object, res engine.Result, status string) error {
	plan := res.Decision.Plan
	wasSecured := sts.GetAnnotations()[keys.AnnotationStatus] == statusSecured
	healed := res.TemplateChanged
	if err := r.patchWorkload(ctx, sts, status, res.Template); err != nil {
		return err
	}
	if healed {
		r.Recorder.Eventf(sts, nil, corev1.EventTypeNormal, "PodTemplateSecured", "Reconcile", "metrics port %d; TLS Secret %q mounted at %s", plan.Port, plan.SecretName, plan.CertDir)
	}
	if status == statusSecured && !wasSecured {
		r.Recorder.Eventf(sts, nil, corev1.EventTypeNormal, "Secured", "Reconcile", "metrics on port %d over TLS with token authentication", plan.Port)
	}
	return nil
}

// healConfigMap writes the secured ConfigMap of res over live, the API server's copy it was
// computed from (what the webhook would have done), with a JSON patch of exactly the change.
func (r *OperatorReconciler) healConfigMap(ctx context.Context, sts client.Object, op *eck.Operator, live *corev1.ConfigMap, res engine.Result) error {
	switch {
	case live == nil:
		r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "ConfigMapMissing", "Reconcile", "ConfigMap %s with %s not found", op.ConfigMapName, op.ConfigKey)
		return nil
	case !res.ConfigMapChanged || res.ConfigMap == nil:
		return nil
	}
	if err := r.patch(ctx, live, res.ConfigMap); err != nil {
		return fmt.Errorf("failed to patch ConfigMap %s/%s: %w", live.Namespace, live.Name, err)
	}
	r.Recorder.Eventf(sts, nil, corev1.EventTypeNormal, "ConfigSecured", "Reconcile", "eck.yaml in ConfigMap %s: metrics-port %d, metrics-secure true", live.Name, res.Decision.Plan.Port)
	return nil
}

// existing is what the engine needs to know of the operator's namespace to choose its
// companions: its Services (cached), and, when the plan asks for a monitor, the selectors
// of the monitors the guard did not write (read from the API server).
func (r *OperatorReconciler) existing(ctx context.Context, namespace string, plan *policy.Plan) (engine.Existing, error) {
	var have engine.Existing
	var services corev1.ServiceList
	if err := r.Client.List(ctx, &services, client.InNamespace(namespace)); err != nil {
		return have, err
	}
	for i := range services.Items {
		have.Services = append(have.Services, &services.Items[i])
	}
	if plan.Monitor == nil {
		return have, nil
	}
	var err error
	if have.ServiceMonitors, err = r.monitorSelectors(ctx, namespace, serviceMonitorGVK); err != nil {
		return have, err
	}
	have.PodMonitors, err = r.monitorSelectors(ctx, namespace, podMonitorGVK)
	return have, err
}

// writeCompanions labels the operator's own metrics Service, or creates the guard's, then
// the Certificate and the monitor when their APIs are served. The auth-delegator binding is
// the BindingReconciler's (one binding for every guarded operator).
func (r *OperatorReconciler) writeCompanions(ctx context.Context, sts client.Object, c *engine.Companions, have engine.Existing) error {
	switch {
	case c.NewService:
		if err := r.apply(ctx, sts, c.Service, true); err != nil {
			return err
		}
	case c.Labelled:
		i := slices.IndexFunc(have.Services, func(s *corev1.Service) bool { return s.Name == c.Service.Name })
		if err := r.patch(ctx, have.Services[i], c.Service); err != nil {
			return fmt.Errorf("failed to label Service %s/%s: %w", c.Service.Namespace, c.Service.Name, err)
		}
	}
	if c.Certificate != nil {
		if err := r.applyIfServed(ctx, sts, c.Certificate, certificateGVK); err != nil {
			return err
		}
	}
	if c.Monitor != nil {
		if err := r.applyIfServed(ctx, sts, c.Monitor, c.Monitor.GetObjectKind().GroupVersionKind()); err != nil {
			return err
		}
	}
	return nil
}

// apply writes a companion with server-side apply; owned ones go with the workload.
func (r *OperatorReconciler) apply(ctx context.Context, sts client.Object, obj client.Object, owned bool) error {
	if owned {
		if err := controllerutil.SetControllerReference(sts, obj, r.Client.Scheme()); err != nil {
			return err
		}
	}
	u, err := mutate.Unstructured(obj)
	if err != nil {
		return err
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u}), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("failed to apply %s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
	}
	return nil
}

// applyIfServed applies a companion whose API may not be installed (cert-manager,
// Prometheus Operator): discovered, not assumed.
func (r *OperatorReconciler) applyIfServed(ctx context.Context, sts client.Object, obj client.Object, gvk schema.GroupVersionKind) error {
	if _, err := r.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			r.Recorder.Eventf(sts, nil, corev1.EventTypeWarning, "APINotInstalled", "Reconcile", "%s is not served: %s %s not created", gvk.GroupVersion(), gvk.Kind, obj.GetName())
			return nil
		}
		return err
	}
	return r.apply(ctx, sts, obj, true)
}

// madeByGuard reports whether the guard created obj.
func madeByGuard(obj client.Object) bool {
	return obj.GetLabels()[keys.LabelManagedBy] == keys.ManagedByValue
}

// monitorSelectors are the selectors of the monitors of kind gvk in namespace that the guard
// did not write (ECK's chart in its secure mode makes a ServiceMonitor): the engine adds none
// that would scrape the operator twice. None when the kind is not served.
func (r *OperatorReconciler) monitorSelectors(ctx context.Context, namespace string, gvk schema.GroupVersionKind) ([]metav1.LabelSelector, error) {
	if _, err := r.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, err
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := r.Client.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("failed to list %ss in %s: %w", gvk.Kind, namespace, err)
	}
	var out []metav1.LabelSelector
	for _, sm := range list.Items {
		if madeByGuard(&sm) {
			continue
		}
		var selector metav1.LabelSelector
		m, _, _ := unstructured.NestedMap(sm.Object, "spec", "selector")
		if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &selector) == nil {
			out = append(out, selector)
		}
	}
	return out, nil
}

// certificateMissing reports whether the pod would wait for the certificate Secret. The guard
// reads no Secret (its RBAC has no Secret rule outside its own namespace): with an issuer, the
// Secret is there once cert-manager's Certificate is Ready; a Secret the operator brings
// (tls-secret, or a tls-certificate volume of its own) is not checked, the kubelet reports a
// missing one (FailedMount) and the pod waits for it.
func (r *OperatorReconciler) certificateMissing(ctx context.Context, namespace string, plan *policy.Plan, entitled bool) (bool, error) {
	if plan.SecretName == "" || plan.Issuer == nil {
		return false, nil
	}
	if !entitled {
		return true, nil // no Certificate is requested
	}
	cert := &unstructured.Unstructured{}
	cert.SetGroupVersionKind(certificateGVK)
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: plan.ServiceName}, cert)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	conditions, _, _ := unstructured.NestedSlice(cert.Object, "status", "conditions")
	for _, c := range conditions {
		if c, ok := c.(map[string]any); ok && c["type"] == "Ready" {
			return c["status"] != "True", nil
		}
	}
	return true, nil
}

// patch sends the JSON patch that turns before into after, if any.
func (r *OperatorReconciler) patch(ctx context.Context, before, after client.Object) error {
	ops, err := patch.Diff(before, after)
	if err != nil || len(ops) == 0 {
		return err
	}
	// Only if nothing changed since the read: list indexes in the patch depend on it.
	guard := jsonpatch.NewOperation("test", "/metadata/resourceVersion", before.GetResourceVersion())
	body, err := patch.Marshal(append([]jsonpatch.Operation{guard}, ops...))
	if err != nil {
		return err
	}
	return r.Client.Patch(ctx, after, client.RawPatch(types.JSONPatchType, body), client.FieldOwner(FieldManager))
}

func (r *OperatorReconciler) newObject() client.Object {
	if r.Kind == "Deployment" {
		return &appsv1.Deployment{}
	}
	return &appsv1.StatefulSet{}
}
