package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// DefaultBindingName is the one ClusterRoleBinding of the guarded operators' ServiceAccounts
// to system:auth-delegator (--auth-delegator-binding; the chart derives it from the release).
const DefaultBindingName = "eck-metrics-guard:auth-delegator"

// bindingResync is how often the binding is computed again without any event.
const bindingResync = 10 * time.Minute

// BindingReconciler keeps one ClusterRoleBinding, Name, to system:auth-delegator whose
// subjects are exactly the ServiceAccounts of the operators the guard secures and is entitled
// to grant (see policy.Entitled). One named binding is what lets the RBAC restrict the
// guard's update and delete of ClusterRoleBindings to that name: it cannot touch any other.
// It is written with the resourceVersion it was read at (optimistic concurrency): a
// concurrent change makes the update fail with a conflict, and the reconcile runs again.
type BindingReconciler struct {
	Name     string
	Client   client.Client
	Lookup   cluster.Lookup
	Defaults policy.Defaults
	// Policies is whether the MetricsSecurityPolicy CRD is served.
	Policies bool
}

// SetupWithManager registers the controller. Every event maps to the one request: the
// binding is computed from every operator of the cluster.
func (r *BindingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: r.Name}}}
	})
	isOperator := builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, _, ok := eck.FromObject(o)
		return ok
	}))
	b := ctrl.NewControllerManagedBy(mgr).
		Named("auth-delegator-binding").
		// The manager's cache holds this one binding only (a metadata.name field selector,
		// which RBAC authorizes by resourceNames).
		Watches(&rbacv1.ClusterRoleBinding{}, one, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == r.Name }))).
		Watches(&appsv1.StatefulSet{}, one, isOperator).
		Watches(&appsv1.Deployment{}, one, isOperator).
		Watches(namespaceMetadata(), one)
	if r.Policies {
		b = b.Watches(&v1alpha1.MetricsSecurityPolicy{}, one, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.Complete(quietConflicts{"auth-delegator-binding", r}) // conflicts.go
}

// Subjects are the ServiceAccounts the binding must hold, sorted, without duplicates.
func (r *BindingReconciler) Subjects(ctx context.Context) ([]rbacv1.Subject, error) {
	workloads, err := r.Lookup.Operators(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []rbacv1.Subject
	for _, w := range workloads {
		in, err := cluster.Input(ctx, r.Lookup, w.Operator.Namespace, w, r.Defaults)
		if err != nil {
			return nil, err
		}
		if d := policy.Decide(in); d.Plan == nil || len(d.Errs) > 0 {
			continue
		}
		if ok, _ := policy.Entitled(in); !ok {
			continue
		}
		out = append(out, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: w.Operator.ServiceAccount, Namespace: w.Operator.Namespace})
	}
	slices.SortFunc(out, func(a, b rbacv1.Subject) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return slices.Compact(out), nil
}

// Reconcile implements reconcile.Reconciler.
func (r *BindingReconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	subjects, err := r.Subjects(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: mutate.AuthDelegatorRole}
	crb := &rbacv1.ClusterRoleBinding{}
	err = r.Client.Get(ctx, types.NamespacedName{Name: r.Name}, crb)
	switch {
	case apierrors.IsNotFound(err):
		crb = &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: r.Name, Labels: map[string]string{keys.LabelManagedBy: keys.ManagedByValue}},
			RoleRef:    roleRef,
			Subjects:   subjects,
		}
		if err := r.Client.Create(ctx, crb, client.FieldOwner(FieldManager)); err != nil {
			return reconcile.Result{}, fmt.Errorf("failed to create ClusterRoleBinding %s: %w", r.Name, err)
		}
		logf.FromContext(ctx).Info("created the auth-delegator binding", "name", r.Name, "subjects", len(subjects))
		return reconcile.Result{RequeueAfter: bindingResync}, nil
	case err != nil:
		return reconcile.Result{}, err
	}
	if crb.RoleRef != roleRef {
		// roleRef cannot change: someone replaced the binding with one to another role.
		// Delete it (with the uid and resourceVersion read) and create it again.
		pre := client.Preconditions{UID: &crb.UID, ResourceVersion: &crb.ResourceVersion}
		if err := r.Client.Delete(ctx, crb, pre); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("failed to delete ClusterRoleBinding %s with roleRef %s: %w", r.Name, crb.RoleRef.Name, err)
		}
		return reconcile.Result{Requeue: true}, nil
	}
	if slices.Equal(crb.Subjects, subjects) && crb.Labels[keys.LabelManagedBy] == keys.ManagedByValue {
		return reconcile.Result{RequeueAfter: bindingResync}, nil
	}
	crb.Subjects = subjects
	if crb.Labels == nil {
		crb.Labels = map[string]string{}
	}
	crb.Labels[keys.LabelManagedBy] = keys.ManagedByValue
	// Update carries the resourceVersion read: a concurrent writer makes it a conflict.
	if err := r.Client.Update(ctx, crb, client.FieldOwner(FieldManager)); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to update ClusterRoleBinding %s: %w", r.Name, err)
	}
	logf.FromContext(ctx).Info("updated the auth-delegator binding", "name", r.Name, "subjects", len(subjects))
	return reconcile.Result{RequeueAfter: bindingResync}, nil
}
