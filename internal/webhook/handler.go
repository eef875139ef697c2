// Package webhook is the admission front door: it decodes a request, asks package policy,
// applies package mutate and answers with the JSON patch of what changed. It makes no
// API writes and reads only through a Lookup backed by the manager's cache.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/patch"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Path is where the API server sends admission reviews for every kind the guard mutates.
const Path = "/mutate"

// Handler mutates ECK operator StatefulSets and Deployments, their ConfigMaps and their
// metrics Services. Everything else is allowed untouched.
type Handler struct {
	Lookup   cluster.Lookup
	Defaults policy.Defaults

	// fullDiff makes the patch from the whole objects before and after (patch.Diff), as the
	// guard did before patch.Template: the tests compare both.
	fullDiff bool
}

var (
	statefulSets = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}
	deployments  = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	configMaps   = metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	services     = metav1.GroupVersionKind{Version: "v1", Kind: "Service"}
)

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	switch req.Kind {
	case statefulSets:
		return h.workload(ctx, req, &appsv1.StatefulSet{})
	case deployments:
		return h.workload(ctx, req, &appsv1.Deployment{})
	case configMaps:
		return h.configMap(ctx, req)
	case services:
		return h.service(ctx, req)
	}
	return admission.Allowed("")
}

// workloadObject is a StatefulSet or a Deployment.
type workloadObject interface {
	runtime.Object
	metav1.Object
}

func (h *Handler) workload(ctx context.Context, req admission.Request, obj workloadObject) admission.Response {
	if !mayBeOperator(req.Object.Raw) {
		return h.notOperator(ctx, req)
	}
	if err := decode(req, obj); err != nil {
		return h.failOpen(ctx, err)
	}
	op, tmpl, ok := eck.FromObject(obj)
	if !ok {
		return h.notOperator(ctx, req)
	}
	if obj.GetDeletionTimestamp() != nil {
		return admission.Allowed("being deleted") // finalizers must be able to go
	}
	in, err := h.input(ctx, req.Namespace, cluster.Workload{Operator: op, Template: tmpl, Annotations: obj.GetAnnotations()})
	if err != nil {
		return h.failOpen(ctx, err)
	}
	in.Admitting = policy.HolderWorkload
	var old *policy.Input
	if in.Enforced() {
		if old, ok = oldWorkload(req, in); !ok {
			return h.failOpen(ctx, fmt.Errorf("the old %s does not decode", req.Kind.Kind))
		}
	}
	r, _ := engine.Admit(in, old)
	secured := func() {
		if r.Template != nil {
			*tmpl = *r.Template
		}
	}
	return h.answer(ctx, req, r, old, obj.GetAnnotations(), policy.HolderWorkload, obj, secured, func() ([]jsonpatch.Operation, error) {
		if r.Template == nil {
			return nil, nil
		}
		// Only the pod template changes (engine.Secure secures a copy of it): the operations
		// come from comparing the two templates, not the whole objects.
		return patch.Template("/spec/template", tmpl, r.Template)
	})
}

// answer turns the engine's result for the object under admission into the response: its own
// invalid settings, and the Enforce violations the request introduced, deny it; otherwise the
// patch that secures it, from the change alone (cheap), or, with fullDiff, from the whole
// object before and after secured writes the secured copy over obj.
func (h *Handler) answer(ctx context.Context, req admission.Request, r engine.Result, old *policy.Input, annotations map[string]string, holder policy.Holder,
	obj runtime.Object, secured func(), cheap func() ([]jsonpatch.Operation, error)) admission.Response {
	d := r.Decision
	if resp, done := foreignErrors(d, policy.OwnErrors(d.Errs, annotations, holder)); done {
		return resp
	}
	if len(d.Denied) > 0 {
		d = introduced(d, old)
	}
	if resp, done := h.early(ctx, req, d); done {
		return resp
	}
	if h.fullDiff {
		before := obj.DeepCopyObject()
		secured()
		return h.patched(ctx, func() ([]jsonpatch.Operation, error) { return patch.Diff(before, obj) }, d.Warnings)
	}
	return h.patched(ctx, cheap, d.Warnings)
}

// notOperator answers a workload that is not an ECK operator. It reaches the guard only
// when it, or the object it replaces, runs the ECK image: an Enforce policy denies a write
// that makes an operator unrecognisable, which would take it out of the policy's sight.
func (h *Handler) notOperator(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Update {
		return admission.Allowed("not an ECK operator")
	}
	var old workloadObject = &appsv1.StatefulSet{}
	if req.Kind == deployments {
		old = &appsv1.Deployment{}
	}
	if !mayBeOperator(req.OldObject.Raw) || decodeOld(req, old) != nil {
		return admission.Allowed("not an ECK operator")
	}
	was, _, ok := eck.FromObject(old)
	if !ok {
		return admission.Allowed("not an ECK operator")
	}
	ns, err := h.Lookup.Namespace(ctx, req.Namespace)
	if err != nil {
		return h.failOpen(ctx, err)
	}
	was.Namespace = req.Namespace
	if denied := engine.NoLongerOperator(ns.Coverage, was); denied != nil {
		return invalid(req, field.ErrorList{denied})
	}
	return admission.Allowed("no longer an ECK operator").WithWarnings(fmt.Sprintf("eck-metrics-guard: %s %s/%s ran the ECK operator and no longer does as far as the guard can tell: it is no longer guarded", was.Kind, was.Namespace, was.Name))
}

func (h *Handler) configMap(ctx context.Context, req admission.Request) admission.Response {
	cm := &corev1.ConfigMap{}
	if err := decode(req, cm); err != nil {
		return h.failOpen(ctx, err)
	}
	if cm.DeletionTimestamp != nil {
		return admission.Allowed("being deleted")
	}
	in, ours, err := cluster.ConfigMapInput(ctx, h.Lookup, req.Namespace, cm, h.Defaults)
	if err != nil {
		return h.failOpen(ctx, err)
	}
	if !ours {
		return admission.Allowed("not an ECK operator config")
	}
	in.Admitting = policy.HolderConfigMap
	var old *policy.Input
	if in.Enforced() && req.Operation == admissionv1.Update {
		was := &corev1.ConfigMap{}
		if decodeOld(req, was) != nil {
			return h.failOpen(ctx, fmt.Errorf("the old ConfigMap does not decode"))
		}
		o := in
		o.ConfigMap = was
		old = &o
	}
	r, err2 := engine.Admit(in, old)
	if err2 != nil {
		return invalid(req, field.ErrorList{err2})
	}
	secured := func() {
		if r.ConfigMap != nil {
			*cm = *r.ConfigMap
		}
	}
	return h.answer(ctx, req, r, old, cm.Annotations, policy.HolderConfigMap, cm, secured, func() ([]jsonpatch.Operation, error) {
		if r.ConfigMap == nil {
			return nil, nil
		}
		return patch.ConfigMap(cm, r.ConfigMap) // a secured copy
	})
}

func (h *Handler) service(ctx context.Context, req admission.Request) admission.Response {
	svc := &corev1.Service{}
	if err := decode(req, svc); err != nil {
		return h.failOpen(ctx, err)
	}
	workloads, err := h.Lookup.Operators(ctx, req.Namespace)
	if err != nil {
		return h.failOpen(ctx, err)
	}
	for _, w := range workloads {
		in, err := h.input(ctx, req.Namespace, w)
		if err != nil {
			return h.failOpen(ctx, err)
		}
		d := policy.Decide(in)
		if d.Plan == nil || !mutate.IsMetricsService(svc, w.Operator, d.Plan) {
			continue
		}
		before := svc.DeepCopy()
		mutate.Service(svc, w.Operator)
		if h.fullDiff {
			return h.patched(ctx, func() ([]jsonpatch.Operation, error) { return patch.Diff(before, svc) }, nil)
		}
		return h.patched(ctx, func() ([]jsonpatch.Operation, error) { return patch.Service(before, svc) }, nil)
	}
	return admission.Allowed("not the metrics Service of a guarded ECK operator")
}

func (h *Handler) input(ctx context.Context, namespace string, w cluster.Workload) (policy.Input, error) {
	return cluster.Input(ctx, h.Lookup, namespace, w, h.Defaults)
}

// foreignErrors admits unchanged, with a warning, a request whose decision found invalid
// settings only on other objects (the namespace's annotations, which the webhook never sees
// written, or the ConfigMap's, seen from its workload): they must not block this object's
// writes. Errors of its own (own) are denied as usual.
func foreignErrors(d policy.Decision, own field.ErrorList) (admission.Response, bool) {
	if len(d.Errs) == 0 || len(own) > 0 {
		return admission.Response{}, false
	}
	return admission.Allowed("admitted unchanged").WithWarnings(
		"eck-metrics-guard: not secured, the settings of another object are invalid: " + d.Errs.ToAggregate().Error()), true
}

// introduced keeps, of the violations of an Enforce policy, those the request brings: a
// policy denies writing an opt-out, not every later write of an object that already had it
// (the controller's own patches, a label, an upgrade). The others become warnings, and the
// object is secured anyway. old is the input with the object as it was (nil for a create).
func introduced(d policy.Decision, old *policy.Input) policy.Decision {
	var held field.ErrorList
	if old != nil {
		held = policy.Held(*old)
	}
	var kept field.ErrorList
	for _, e := range d.Denied {
		if slices.ContainsFunc(held, func(h *field.Error) bool { return policy.SameViolation(e, h) }) {
			d.Warnings = append(d.Warnings, e.Error()+" (there before this request; secured anyway)")
			continue
		}
		kept = append(kept, e)
	}
	d.Denied = kept
	return d
}

// oldWorkload is the input with the workload as stored before the request: nil for a
// create; false when the old object does not decode. An old object that was no ECK
// operator has no Operator.
func oldWorkload(req admission.Request, in policy.Input) (*policy.Input, bool) {
	if req.Operation != admissionv1.Update {
		return nil, true
	}
	var old workloadObject = &appsv1.StatefulSet{}
	if req.Kind == deployments {
		old = &appsv1.Deployment{}
	}
	if decodeOld(req, old) != nil {
		return nil, false
	}
	o := in
	op, tmpl, ok := eck.FromObject(old)
	if !ok {
		o.Operator, o.Template, o.WorkloadAnnotations = nil, nil, old.GetAnnotations()
		return &o, true
	}
	op.Namespace = req.Namespace
	o.Operator, o.Template, o.WorkloadAnnotations = op, tmpl, old.GetAnnotations()
	return &o, true
}

// failOpen admits a request the guard could not process (an undecodable object, a cache
// read that failed) unchanged, with a warning: the guard must never block a cluster's
// writes, and the controller secures the object later. Only settings that are invalid are
// denied.
func (h *Handler) failOpen(ctx context.Context, err error) admission.Response {
	logf.FromContext(ctx).Error(err, "admitted unchanged")
	return admission.Allowed("admitted unchanged").WithWarnings("eck-metrics-guard: admitted unchanged, the controller will secure it: " + err.Error())
}

// early answers requests that get no patch: denied, or left alone (with the reason).
func (h *Handler) early(ctx context.Context, req admission.Request, d policy.Decision) (admission.Response, bool) {
	log := logf.FromContext(ctx)
	if refused := d.Refused(); refused != nil {
		log.V(1).Info("denied", "reason", refused.ToAggregate().Error())
		return invalid(req, refused), true
	}
	if d.Plan == nil {
		log.V(1).Info("left unchanged", "reason", d.Skip)
		return admission.Allowed(d.Skip).WithWarnings(d.Warnings...), true
	}
	return admission.Response{}, false
}

// patched answers with the operations diff returns.
func (h *Handler) patched(ctx context.Context, diff func() ([]jsonpatch.Operation, error), warnings []string) admission.Response {
	ops, err := diff()
	if err != nil {
		return h.failOpen(ctx, err)
	}
	if len(ops) == 0 {
		return admission.Allowed("already secured").WithWarnings(warnings...)
	}
	return admission.Patched("secured", ops...).WithWarnings(warnings...)
}

// invalid denies a request with the field errors, as the API server's own validation does.
func invalid(req admission.Request, errs field.ErrorList) admission.Response {
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	status := apierrors.NewInvalid(gk, req.Name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
}

// decodeOld decodes the object as it was before an UPDATE; an error when there is none.
func decodeOld(req admission.Request, into runtime.Object) error {
	if req.Operation != admissionv1.Update || len(req.OldObject.Raw) == 0 {
		return fmt.Errorf("no old object")
	}
	if err := unmarshal(req.OldObject.Raw, into); err != nil {
		return fmt.Errorf("failed to decode the old %s: %w", req.Kind.Kind, err)
	}
	return nil
}

func decode(req admission.Request, into runtime.Object) error {
	if err := unmarshal(req.Object.Raw, into); err != nil {
		return fmt.Errorf("failed to decode %s: %w", req.Kind.Kind, err)
	}
	if o, ok := into.(metav1.Object); ok && o.GetNamespace() == "" {
		o.SetNamespace(req.Namespace)
	}
	return nil
}

// unmarshal decodes a workload through workloadView and a ConfigMap through configMapView
// (what the guard reads of them), anything else whole.
func unmarshal(raw []byte, into runtime.Object) error {
	if cm, ok := into.(*corev1.ConfigMap); ok {
		return decodeConfigMap(raw, cm)
	}
	if w, ok := into.(workloadObject); ok {
		switch into.(type) {
		case *appsv1.StatefulSet, *appsv1.Deployment:
			return decodeWorkload(raw, w)
		}
	}
	return json.Unmarshal(raw, into)
}
