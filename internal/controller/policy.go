package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// ConditionReady is the condition a MetricsSecurityPolicy's status carries: True when the
// status describes the current spec, False when the spec cannot be applied (its reason says
// why).
const ConditionReady = "Ready"

// PolicyReconciler keeps the status of every MetricsSecurityPolicy true: the ECK operators
// in the namespaces it selects and whether each is in the end state. It writes nothing else;
// the OperatorReconcilers secure the operators.
type PolicyReconciler struct {
	Client client.Client
	Lookup cluster.Lookup
	// BindingName is the auth-delegator binding (BindingReconciler); empty means
	// DefaultBindingName.
	BindingName string
}

func (r *PolicyReconciler) bindingName() string {
	if r.BindingName == "" {
		return DefaultBindingName
	}
	return r.BindingName
}

// SetupWithManager registers the controller: policies are its primary objects. What a
// status reports on brings back the policies that select its namespace: an ECK operator
// workload (spec or labels changed), its eck.yaml ConfigMap, a metrics Service; a Namespace
// whose labels or annotations change brings back every policy (it may have left a selector).
// Each reconcile reads the cache only.
func (r *PolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	selecting := handler.EnqueueRequestsFromMapFunc(r.policiesSelecting)
	workloads := builder.WithPredicates(eitherVersion(isOperator),
		predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))
	return ctrl.NewControllerManagedBy(mgr).
		Named("metricssecuritypolicy").
		For(&v1alpha1.MetricsSecurityPolicy{}).
		// Which policy governs an operator depends on every policy that selects it.
		Watches(&v1alpha1.MetricsSecurityPolicy{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// The one auth-delegator binding (the cache holds no other): its subjects are in
		// every policy's status.
		Watches(&rbacv1.ClusterRoleBinding{}, handler.EnqueueRequestsFromMapFunc(r.allPolicies),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == r.bindingName() }))).
		Watches(&appsv1.StatefulSet{}, selecting, workloads).
		Watches(&appsv1.Deployment{}, selecting, workloads).
		Watches(&corev1.ConfigMap{}, selecting, builder.WithPredicates(eitherVersion(func(o client.Object) bool {
			cm, ok := o.(*corev1.ConfigMap)
			if !ok {
				return false
			}
			_, isConfig := eck.ConfigKeyOf(cm)
			return isConfig
		}))).
		Watches(&corev1.Service{}, selecting, builder.WithPredicates(eitherVersion(func(o client.Object) bool {
			return o.GetLabels()[keys.LabelMetricsService] == "true"
		}))).
		Watches(namespaceMetadata(), handler.EnqueueRequestsFromMapFunc(r.allPolicies),
			builder.WithPredicates(predicate.Or[client.Object](predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Complete(quietConflicts{"metricssecuritypolicy", r})
}

func isOperator(o client.Object) bool {
	_, _, ok := eck.FromObject(o)
	return ok
}

// eitherVersion passes an event when the object, before or after it, satisfies keep (a
// Service that loses its label matters as much as one that gets it).
func eitherVersion(keep func(client.Object) bool) predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return keep(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return keep(e.Object) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return keep(e.ObjectOld) || keep(e.ObjectNew) },
		GenericFunc: func(e event.GenericEvent) bool { return keep(e.Object) },
	}
}

// policiesSelecting maps an object to the policies whose selector matches its namespace.
func (r *PolicyReconciler) policiesSelecting(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.policiesSelectingNamespace(ctx, obj.GetNamespace())
}

func (r *PolicyReconciler) policiesSelectingNamespace(ctx context.Context, namespace string) []reconcile.Request {
	ns := namespaceMetadata()
	if err := r.Client.Get(ctx, types.NamespacedName{Name: namespace}, ns); err != nil {
		return r.allPolicies(ctx, nil)
	}
	var list v1alpha1.MetricsSecurityPolicyList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		if sel, err := policy.Selector(&list.Items[i]); err == nil && sel.Matches(labels.Set(ns.Labels)) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: list.Items[i].Name}})
		}
	}
	return reqs
}

func (r *PolicyReconciler) allPolicies(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.MetricsSecurityPolicyList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
	}
	return reqs
}

// Reconcile implements reconcile.Reconciler.
func (r *PolicyReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	p := &v1alpha1.MetricsSecurityPolicy{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			policyOperators.DeletePartialMatch(map[string]string{"policy": req.Name})
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	status, err := r.report(ctx, p)
	if err != nil {
		return reconcile.Result{}, err
	}
	policyOperators.WithLabelValues(p.Name, "true").Set(float64(status.Compliant))
	policyOperators.WithLabelValues(p.Name, "false").Set(float64(status.Covered - status.Compliant))
	if equality.Semantic.DeepEqual(status, p.Status) {
		return reconcile.Result{}, nil
	}
	p.Status = status
	if err := r.Client.Status().Update(ctx, p); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to update the status of MetricsSecurityPolicy %s: %w", p.Name, err)
	}
	return reconcile.Result{}, nil
}

// report computes a policy's status from the cache.
func (r *PolicyReconciler) report(ctx context.Context, p *v1alpha1.MetricsSecurityPolicy) (v1alpha1.MetricsSecurityPolicyStatus, error) {
	status := v1alpha1.MetricsSecurityPolicyStatus{ObservedGeneration: p.Generation, Conditions: slices.Clone(p.Status.Conditions)}
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: "Reported", ObservedGeneration: p.Generation,
		Message: "the status lists every ECK operator in the selected namespaces"}
	selector, err := policy.Selector(p)
	if err != nil {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "InvalidSelector", err.Error()
		apimeta.SetStatusCondition(&status.Conditions, ready)
		return status, nil
	}
	var namespaces metav1.PartialObjectMetadataList
	namespaces.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.Client.List(ctx, &namespaces, client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return status, fmt.Errorf("failed to list namespaces: %w", err)
	}
	for _, ns := range namespaces.Items {
		if policy.Excluded(ns.Name, ns.Labels) {
			continue
		}
		ops, err := r.operators(ctx, ns.Name)
		if err != nil {
			return status, err
		}
		status.Operators = append(status.Operators, ops...)
	}
	slices.SortFunc(status.Operators, func(a, b v1alpha1.OperatorStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	status.Covered = int32(len(status.Operators))
	for _, o := range status.Operators {
		if o.Compliant {
			status.Compliant++
		}
	}
	apimeta.SetStatusCondition(&status.Conditions, ready)
	return status, nil
}

// operators reports on the ECK operators of one namespace.
func (r *PolicyReconciler) operators(ctx context.Context, namespace string) ([]v1alpha1.OperatorStatus, error) {
	workloads, err := r.Lookup.Operators(ctx, namespace)
	if err != nil {
		return nil, err
	}
	var services corev1.ServiceList
	if len(workloads) > 0 {
		if err := r.Client.List(ctx, &services, client.InNamespace(namespace)); err != nil {
			return nil, fmt.Errorf("failed to list Services in %s: %w", namespace, err)
		}
		// The cache lists in no fixed order: sorted, the reasons do not flap between two
		// candidate Services (and the status is not rewritten on every event).
		slices.SortFunc(services.Items, func(a, b corev1.Service) int { return cmp.Compare(a.Name, b.Name) })
	}
	var out []v1alpha1.OperatorStatus
	for _, w := range workloads {
		in, err := cluster.Input(ctx, r.Lookup, namespace, w, policy.Defaults{})
		if err != nil {
			return nil, err
		}
		entry := v1alpha1.OperatorStatus{Namespace: namespace, Name: w.Operator.Name, Kind: w.Operator.Kind}
		if in.Coverage != nil {
			entry.Policy, entry.Mode = in.Coverage.Policy, in.Coverage.Mode
		}
		if w.Operator.Version != nil {
			entry.Version = w.Operator.Version.String()
		}
		if ok, why := w.Operator.SupportsSecureMetrics(); !ok {
			entry.Reasons = []string{why}
			out = append(out, entry)
			continue
		}
		verdict, findings := compliance.Check(w.Operator, w.Template, in.ConfigMapGetter())
		if len(findings) == 0 {
			findings = compliance.Service(w.Operator, verdict.Port, services.Items)
		}
		if s, ok := w.Annotations[keys.AnnotationStatus]; ok && s != statusSecured {
			findings = append(findings, "eck-metrics-guard: "+s) // e.g. waiting for its certificate Secret
		}
		if len(findings) == 0 {
			// Without it ECK answers every scraper 500: it cannot check their tokens.
			binding := &rbacv1.ClusterRoleBinding{}
			name := r.bindingName()
			err := r.Client.Get(ctx, types.NamespacedName{Name: name}, binding)
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, err
			}
			want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: w.Operator.ServiceAccount, Namespace: namespace}
			if !slices.Contains(binding.Subjects, want) || binding.RoleRef.Name != mutate.AuthDelegatorRole {
				findings = append(findings, fmt.Sprintf("ServiceAccount %s/%s is not a subject of the ClusterRoleBinding %s to system:auth-delegator", namespace, w.Operator.ServiceAccount, name))
			}
		}
		if len(findings) > 0 {
			if d := policy.Decide(in); d.Plan == nil && d.Skip != "" {
				findings = append(findings, d.Skip)
			}
		}
		entry.Compliant, entry.Reasons = len(findings) == 0, findings
		out = append(out, entry)
	}
	return out, nil
}
