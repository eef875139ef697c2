package controller

import (
	"context"
	"errors"
	"strings"
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
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) {
		return false
	}
	details := status.Status().Details
	if details == nil {
		return false
	}
	for _, c := range details.Causes {
		if strings.Contains(c.Message, "/metadata/resourceVersion") && strings.Contains(c.Message, "test") {
			return true
		}
	}
	return false
}

// conflicts counts the reconciles retried after a Conflict.
var conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "eck_metrics_guard_reconcile_conflicts_total",
	Help: "Reconciles that lost a race with another write (409, or a failed resourceVersion test) and were retried.",
}, []string{"controller"})

func init() { metrics.Registry.MustRegister(conflicts) }

// quietConflicts retries a reconcile that lost a race, after conflictRetry, without returning
// the error: controller-runtime logs every error of a reconcile as "Reconciler error" with a
// stack trace, and a lost race is normal under load (a retrofit of many operators: the
// webhook's and the controller's own writes). It is logged at debug level and counted.
type quietConflicts struct {
	name string
	reconcile.Reconciler
}

func (q quietConflicts) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := q.Reconciler.Reconcile(ctx, req)
	if Conflict(err) {
		conflicts.WithLabelValues(q.name).Inc()
		logf.FromContext(ctx).V(1).Info("retrying after a conflict", "reason", err.Error())
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}
