package controller

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// TestConflict: a 409, and the 422 of a JSON patch whose resourceVersion test failed (as the
// API server answers it: a generic 422 without causes), are conflicts, also wrapped; other errors are not.
func TestConflict(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	testFailed := apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", schema.GroupResource{}, "",
		"testing value /metadata/resourceVersion failed: test failed", 0, false)
	// A validation error: the object itself is wrong.
	otherInvalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, "elastic-operator",
		field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), -1, "must be greater than or equal to 0")})
	for err, want := range map[error]bool{
		apierrors.NewConflict(gr, "elastic-operator", fmt.Errorf("the object has been modified")): true,
		testFailed: true,
		fmt.Errorf("failed to patch StatefulSet elastic-system/elastic-operator: %w", testFailed): true,
		otherInvalid: false,
		apierrors.NewNotFound(gr, "elastic-operator"): false,
		fmt.Errorf("boom"):                            false,
	} {
		if got := Conflict(err); got != want {
			t.Errorf("Conflict(%v) = %v, want %v", err, got, want)
		}
	}
	if Conflict(nil) {
		t.Error("Conflict(nil)")
	}
}

// TestQuietConflicts: a conflict is retried soon, without an error; any other error is
// returned as is.
func TestQuietConflicts(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "x", fmt.Errorf("modified"))
	q := quietConflicts{"test", reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
		return reconcile.Result{}, conflict
	})}
	res, err := q.Reconcile(context.Background(), reconcile.Request{})
	if err != nil || res.RequeueAfter != conflictRetry {
		t.Errorf("a conflict gave %+v, %v; want a retry after %s and no error", res, err, conflictRetry)
	}
	boom := fmt.Errorf("boom")
	q.Reconciler = reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, boom })
	if _, err := q.Reconcile(context.Background(), reconcile.Request{}); err != boom {
		t.Errorf("another error gave %v", err)
	}
}

// TestQuietAtStop: a reconcile whose context ends (the guard stops) returns no error.
func TestQuietAtStop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := quietConflicts{"test", reconcile.Func(func(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
		return reconcile.Result{}, fmt.Errorf("failed to list Services: %w", ctx.Err())
	})}
	if res, err := q.Reconcile(ctx, reconcile.Request{}); err != nil || res.RequeueAfter != 0 {
		t.Errorf("a reconcile cut short by the stop gave %+v, %v", res, err)
	}
}
