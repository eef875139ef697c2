package audit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	orv1alpha1 "github.com/openreports/reports-api/apis/openreports.io/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// ReportName is the OpenReports Report the guard keeps in each namespace.
const ReportName = "eck-metrics-guard"

// Source and Rule name the guard, and its one check, in every result.
const (
	Source = "eck-metrics-guard"
	Rule   = "secure-metrics"
	// OptInPolicy is the policy of an operator that no MetricsSecurityPolicy governs.
	OptInPolicy = "metrics-guard.eck.dev/secure"
)

// Reports are the OpenReports Reports (openreports.io/v1alpha1), one per namespace, with a
// result per operator: pass when secured (or serving nothing), warn when incomplete (TLS and
// tokens, not the end state), fail when open or unknown, with the verdict's reasons and what
// the guard does as the message. Policy Reporter and Kyverno's UIs show them beside
// everything else.
func Reports(findings []Finding) []*orv1alpha1.Report {
	byNamespace := map[string]*orv1alpha1.Report{}
	for _, f := range findings {
		r := byNamespace[f.Namespace]
		if r == nil {
			r = &orv1alpha1.Report{
				TypeMeta: metav1.TypeMeta{APIVersion: orv1alpha1.SchemeGroupVersion.String(), Kind: "Report"},
				ObjectMeta: metav1.ObjectMeta{Name: ReportName, Namespace: f.Namespace,
					Labels: map[string]string{keys.LabelManagedBy: keys.ManagedByValue}},
				Source: Source,
			}
			byNamespace[f.Namespace] = r
		}
		res := result(f)
		r.Results = append(r.Results, res)
		switch res.Result {
		case "pass":
			r.Summary.Pass++
		case "warn":
			r.Summary.Warn++
		default:
			r.Summary.Fail++
		}
	}
	out := make([]*orv1alpha1.Report, 0, len(byNamespace))
	for _, r := range byNamespace {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *orv1alpha1.Report) int { return cmp.Compare(a.Namespace, b.Namespace) })
	return out
}

func result(f Finding) orv1alpha1.ReportResult {
	res := orv1alpha1.ReportResult{
		Source:   Source,
		Policy:   cmp.Or(f.Policy, OptInPolicy),
		Rule:     Rule,
		Category: "Metrics security",
		Subjects: []corev1.ObjectReference{{APIVersion: "apps/v1", Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}},
		Properties: map[string]string{
			"exposure": string(f.Exposure),
			"guarded":  fmt.Sprint(f.Guarded),
		},
	}
	if f.Version != "" {
		res.Properties["version"] = f.Version
	}
	if f.Port != 0 {
		res.Properties["port"] = fmt.Sprint(f.Port)
	}
	switch f.Exposure {
	case eck.ExposureSecured, eck.ExposureNone:
		res.Result, res.Severity = "pass", "info"
	case eck.ExposureIncomplete:
		res.Result, res.Severity = "warn", "medium"
	default: // open, unknown: unknown is never compliant
		res.Result, res.Severity = "fail", "high"
	}
	msg := string(f.Exposure)
	if len(f.Reasons) > 0 {
		msg += ": " + strings.Join(f.Reasons, "; ")
	}
	res.Description = msg + " (" + f.Action + ")"
	return res
}
