package controller

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// conflictRetry is how soon a reconcile that lost a race runs again: long enough for the
// cache to receive the write that won it (a watch event, milliseconds away).
const conflictRetry = 100 * time.Millisecond

// Conflict reports whether err says the object changed since it was read: a 409 Conflict (an
// update of a stale copy), or the 422 the API server answers a JSON patch whose test of
// /metadata/resourceVersion failed (the controller's patches test the version they were
// computed from, since list indexes in them depend on it). Neither is a fault: the next
// reconcile reads the new version.
func Conflict(err error) bool {
	if err == nil {
		return false
	}
	if apierrors.IsConflict(err) {
		return true
	}
	// The API server answers a JSON patch it cannot apply (the test failed, or a path is not
	// there) with this generic 422 and no causes: its reason is dropped. A patch of the
	// controller starts with the resourceVersion test and was computed from the object of that
	// version, so only a newer object fails it. A validation error (422 too) names the object
	// and its causes.
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
		return false
	}
	st := status.Status()
	return st.Message == patchNotApplied && (st.Details == nil || (len(st.Details.Causes) == 0 && st.Details.Name == ""))
}

// patchNotApplied is the API server's message for a JSON patch it could not apply.
const patchNotApplied = "the server rejected our request due to an error in our request"

// conflicts counts the reconciles retried after a Conflict.
var conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "eck_metrics_guard_reconcile_conflicts_total",
	Help: "Reconciles that lost a race with another write (409, or a failed resourceVersion test) and were retried.",
}, []string{"controller"})

func init() { metrics.Registry.MustRegister(conflicts) }

// quietConflicts retries a reconcile that lost a race, after conflictRetry, without returning
// the error: controller-runtime logs every error of a reconcile as "Reconciler error" with a
// stack trace, and a lost race is normal under load (a retrofit of many operators: the
// webhook's and the controller's own writes). It is logged at debug level and counted. A
// reconcile cut short by the stop (its context canceled) is no error either.
type quietConflicts struct {
	name string
	reconcile.Reconciler
}

func (q quietConflicts) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := q.Reconciler.Reconcile(ctx, req)
	if err != nil && ctx.Err() != nil {
		// Cut short by the guard's stop: the next leader starts over; nothing to report.
		return reconcile.Result{}, nil
	}
	if Conflict(err) {
		conflicts.WithLabelValues(q.name).Inc()
		logf.FromContext(ctx).V(1).Info("retrying after a conflict", "reason", err.Error())
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}
