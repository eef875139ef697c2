package controller

import (
	"context"
	"fmt"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/audit"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// ReportReconciler keeps, when the OpenReports CRDs are installed, one Report
// (openreports.io/v1alpha1, named audit.ReportName) in each namespace whose ECK operators a
// policy covers or whose own annotation opts in: a result per operator, judged by the engine
// as `audit` judges it (audit.Reports). An opt-in on a workload alone makes no Report (the
// guard creates nothing in a namespace on the word of whoever may write a StatefulSet there:
// docs/design/20261201-confused-deputy.md). A namespace left with none loses its Report.
//
// It caches no Report: a cluster with Kyverno or another engine holds many, none of them the
// guard's business. Its own it writes by name, and lists from the API server by label.
type ReportReconciler struct {
	Client client.Client
	// APIReader lists the guard's Reports (label-selected) when a policy changes.
	APIReader client.Reader
	Lookup    cluster.Lookup
	Defaults  policy.Defaults
}

// ReportsServed reports whether the OpenReports Report CRD is installed.
func ReportsServed(mapper meta.RESTMapper) bool {
	_, err := mapper.RESTMapping(orv1alpha1.SchemeGroupVersion.WithKind("Report").GroupKind(), orv1alpha1.SchemeGroupVersion.Version)
	return err == nil
}

// SetupWithManager registers the controller, keyed by namespace: an ECK operator workload (its
// status annotation changes with every verdict the OperatorReconcilers reach, and its deletion
// can leave the namespace with nothing to report), a Namespace with operators (opt-in) or a
// policy brings back its namespace's Report.
func (r *ReportReconciler) SetupWithManager(mgr ctrl.Manager) error {
	operators := predicate.NewPredicateFuncs(func(o client.Object) bool {
		_, _, ok := eck.FromObject(o)
		_, annotated := o.GetAnnotations()[keys.AnnotationStatus]
		return ok || annotated
	})
	toReport := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		ns := o.GetNamespace()
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: audit.ReportName}}}
	})
	// A namespace event matters only where there are operators: not one Report request (and
	// one delete) for every namespace of the cluster at start.
	withOperators := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		if workloads, err := r.Lookup.Operators(ctx, o.GetName()); err != nil || len(workloads) == 0 {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetName(), Name: audit.ReportName}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("eck-metrics-guard-reports").
		Watches(&appsv1.StatefulSet{}, toReport, builder.WithPredicates(operators)).
		Watches(&appsv1.Deployment{}, toReport, builder.WithPredicates(operators)).
		Watches(namespaceMetadata(), withOperators)
	if PoliciesServed(mgr.GetRESTMapper()) {
		// A policy's change can start or stop covering any namespace: every namespace with an
		// operator or a Report of the guard's is looked at again.
		b = b.Watches(&v1alpha1.MetricsSecurityPolicy{}, handler.EnqueueRequestsFromMapFunc(r.everyNamespace),
			builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.Complete(r)
}

// everyNamespace maps anything to the Report of every namespace with an ECK operator or a
// Report of the guard's.
func (r *ReportReconciler) everyNamespace(ctx context.Context, _ client.Object) []reconcile.Request {
	seen := map[string]bool{}
	var reqs []reconcile.Request
	add := func(ns string) {
		if !seen[ns] {
			seen[ns] = true
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: audit.ReportName}})
		}
	}
	workloads, err := r.Lookup.Operators(ctx, "")
	if err != nil {
		logf.FromContext(ctx).Error(err, "failed to list operators")
	}
	for _, w := range workloads {
		add(w.Operator.Namespace)
	}
	var reports metav1.PartialObjectMetadataList
	reports.SetGroupVersionKind(orv1alpha1.SchemeGroupVersion.WithKind("ReportList"))
	if err := r.APIReader.List(ctx, &reports, client.MatchingLabels{keys.LabelManagedBy: keys.ManagedByValue}); err != nil {
		logf.FromContext(ctx).Error(err, "failed to list Reports")
	}
	for _, rep := range reports.Items {
		add(rep.Namespace)
	}
	return reqs
}

// Reconcile implements reconcile.Reconciler.
func (r *ReportReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	findings, err := audit.Operators(ctx, r.Lookup, req.Namespace, r.Defaults)
	if err != nil {
		return reconcile.Result{}, err
	}
	var reported []audit.Finding
	for _, f := range findings {
		if f.Policy != "" || f.Guarded && f.Entitled {
			reported = append(reported, f)
		}
	}
	if len(reported) == 0 {
		stale := &orv1alpha1.Report{}
		stale.Name, stale.Namespace = audit.ReportName, req.Namespace
		if err := r.Client.Delete(ctx, stale); err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			return reconcile.Result{}, fmt.Errorf("failed to delete Report %s/%s: %w", req.Namespace, audit.ReportName, err)
		}
		return reconcile.Result{}, nil
	}
	report := audit.Reports(reported)[0]
	u, err := mutate.Unstructured(report)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u}), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to apply Report %s/%s: %w", req.Namespace, audit.ReportName, err)
	}
	return reconcile.Result{}, nil
}
