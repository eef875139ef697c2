package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/audit"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestPolicyReports: with the OpenReports CRDs installed (from the pinned module of their
// types), the controller keeps one Report per namespace: a pass for an operator it secured, a
// fail for the open operator an Audit policy only reports on, with the policy and the
// verdict's source named; and none in a namespace the guard has nothing to do with.
func TestPolicyReports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	manifest := framework.ECKManifest(t, "operator-3.4.0.yaml")

	secured := env.Namespace(t, "e2e-report-secured", guarded, nil)
	caIssuer(t, secured)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, secured))

	audited := env.Namespace(t, "e2e-report-audit", nil, map[string]string{"e2e-report": "audit"})
	policy := &v1alpha1.MetricsSecurityPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-report-audit"}, Spec: v1alpha1.MetricsSecurityPolicySpec{
		Mode: v1alpha1.ModeAudit, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"e2e-report": "audit"}}}}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), policy) })
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, audited))

	untouched := env.Namespace(t, "e2e-report-none", nil, nil)
	env.MustKubectl(t, "apply", "-f", framework.Manifest(t, manifest, untouched))

	report := func(ns string, want func(*orv1alpha1.Report) bool) *orv1alpha1.Report {
		t.Helper()
		r := &orv1alpha1.Report{}
		framework.EventuallyWithin(t, "the Report of "+ns, 90*time.Second, func() (bool, error) {
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: audit.ReportName}, r)
			return err == nil && want(r), client.IgnoreNotFound(err)
		})
		return r
	}
	r := report(secured, func(r *orv1alpha1.Report) bool { return r.Summary.Pass == 1 })
	if res := r.Results[0]; res.Policy != audit.OptInPolicy || res.Rule != audit.Rule || res.Source != audit.Source ||
		len(res.Subjects) != 1 || res.Subjects[0].Kind != "StatefulSet" || res.Properties["exposure"] != "secured" {
		t.Errorf("secured operator's result: %+v", res)
	}

	r = report(audited, func(r *orv1alpha1.Report) bool { return r.Summary.Fail == 1 })
	res := r.Results[0]
	if res.Policy != policy.Name || res.Result != "fail" || res.Properties["exposure"] != "open" || !strings.Contains(res.Description, "metrics-secure") {
		t.Errorf("audited operator's result: %+v", res)
	}

	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: untouched, Name: audit.ReportName}, &orv1alpha1.Report{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Report in a namespace neither opted in nor covered: %v", err)
	}

	// The policy goes: the namespace has nothing the guard reports on, and loses its Report.
	if err := env.Client.Delete(ctx, policy); err != nil {
		t.Fatal(err)
	}
	framework.EventuallyWithin(t, "the audited namespace's Report to go", 90*time.Second, func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: audited, Name: audit.ReportName}, &orv1alpha1.Report{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}
