package audit

import (
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
)

// TestReports: one Report per namespace, in order; pass for secured (and none), warn for
// incomplete, fail for open and unknown (unknown is never compliant); the policy, or the
// opt-in annotation, and the verdict's reasons in each result.
func TestReports(t *testing.T) {
	findings := []Finding{
		{Namespace: "b", Name: "eck", Kind: "StatefulSet", Exposure: eck.ExposureSecured, Port: 8081, Guarded: true, Action: "guarded: in the end state"},
		{Namespace: "a", Name: "eck", Kind: "StatefulSet", Exposure: eck.ExposureUnknown, Reasons: []string{"METRICS_SECURE from Secret flags"}, Policy: "platform", Mode: "Audit", Action: "not opted in"},
		{Namespace: "a", Name: "olm", Kind: "Deployment", Exposure: eck.ExposureIncomplete, Guarded: true, Action: "guarded"},
		{Namespace: "a", Name: "old", Kind: "StatefulSet", Exposure: eck.ExposureOpen, Action: "left unchanged"},
		{Namespace: "b", Name: "idle", Kind: "StatefulSet", Exposure: eck.ExposureNone, Action: "nothing served"},
	}
	reports := Reports(findings)
	if len(reports) != 2 || reports[0].Namespace != "a" || reports[1].Namespace != "b" {
		t.Fatalf("reports %+v", reports)
	}
	a, b := reports[0], reports[1]
	if a.Summary.Fail != 2 || a.Summary.Warn != 1 || a.Summary.Pass != 0 || b.Summary.Pass != 2 {
		t.Errorf("summaries %+v, %+v", a.Summary, b.Summary)
	}
	unknown := a.Results[0]
	if unknown.Result != "fail" || unknown.Policy != "platform" || unknown.Rule != Rule || unknown.Source != Source ||
		unknown.Description != "unknown: METRICS_SECURE from Secret flags (not opted in)" || unknown.Subjects[0].Name != "eck" || unknown.Properties["exposure"] != "unknown" {
		t.Errorf("unknown operator's result %+v", unknown)
	}
	if secured := b.Results[0]; secured.Policy != OptInPolicy || secured.Properties["port"] != "8081" || secured.Result != "pass" {
		t.Errorf("secured operator's result %+v", secured)
	}
	if a.Name != ReportName || a.Labels["app.kubernetes.io/managed-by"] != "eck-metrics-guard" || a.Kind != "Report" {
		t.Errorf("report metadata %+v %+v", a.TypeMeta, a.ObjectMeta)
	}
}
