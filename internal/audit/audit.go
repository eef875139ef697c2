// Package audit judges every ECK operator of a cluster, read-only, with the engine the
// guard runs: how its metrics endpoint is exposed today (by what ECK reads), and what the
// guard would do about it. The `audit` command is its front door.
package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Finding is the audit of one ECK operator.
type Finding struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Version   string `json:"version,omitempty"`
	// Exposure is the verdict on the endpoint as it is: secured, incomplete, unknown, open
	// or none; Port the port it serves on (0: random or unknown); Reasons name the sources
	// that win.
	Exposure eck.Exposure `json:"exposure"`
	Port     int          `json:"port,omitempty"`
	Reasons  []string     `json:"reasons,omitempty"`
	// Guarded says whether an opt-in or a policy asks the guard to secure it; Policy names
	// the MetricsSecurityPolicy that governs its namespace, Mode its mode.
	Guarded bool   `json:"guarded"`
	Policy  string `json:"policy,omitempty"`
	Mode    string `json:"mode,omitempty"`
	// Entitled says whether the opt-in is one the guard may make objects for beyond the
	// operator's own (the namespace's annotation, a Mutate or Enforce policy): see
	// policy.Entitled.
	Entitled bool `json:"entitled"`
	// Action is what the guard does, or would do once installed, and why.
	Action string `json:"action"`
}

// Compliant reports whether the endpoint is secured (an operator that serves nothing counts).
func (f Finding) Compliant() bool {
	return f.Exposure == eck.ExposureSecured || f.Exposure == eck.ExposureNone
}

// Report is the audit of a cluster.
type Report struct {
	// GuardInstalled says whether the guard's webhook configuration is registered.
	GuardInstalled bool      `json:"guardInstalled"`
	Operators      []Finding `json:"operators"`
}

// Compliant reports whether every operator's endpoint is secured.
func (r Report) Compliant() bool {
	return !slices.ContainsFunc(r.Operators, func(f Finding) bool { return !f.Compliant() })
}

// Operators audits every ECK operator workload that l finds in namespace ("" for every
// namespace), in namespace and name order. defaults are the guard's flags, as far as the
// caller knows them.
func Operators(ctx context.Context, l cluster.Lookup, namespace string, defaults policy.Defaults) ([]Finding, error) {
	workloads, err := l.Operators(ctx, namespace)
	if err != nil {
		return nil, err
	}
	out := make([]Finding, 0, len(workloads))
	for _, w := range workloads {
		f, err := operator(ctx, l, w, defaults)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out, nil
}

func operator(ctx context.Context, l cluster.Lookup, w cluster.Workload, defaults policy.Defaults) (Finding, error) {
	op := w.Operator
	in, err := cluster.Input(ctx, l, op.Namespace, w, defaults)
	if err != nil {
		return Finding{}, err
	}
	v := engine.Judge(in)
	f := Finding{Namespace: op.Namespace, Name: op.Name, Kind: op.Kind, Exposure: v.Exposure, Port: v.Port, Reasons: v.Reasons}
	if op.Version != nil {
		f.Version = op.Version.String()
	}
	if c := in.Coverage; c != nil {
		f.Policy, f.Mode = c.Policy, string(c.Mode)
	}
	f.Entitled, _ = policy.Entitled(in)
	res, ferr := engine.Secure(in)
	d := res.Decision
	switch {
	case ferr != nil:
		f.Action = "invalid settings: " + ferr.Error()
	case len(d.Errs) > 0:
		f.Action = "invalid settings: " + d.Errs.ToAggregate().Error()
	case d.Plan == nil:
		f.Guarded = d.Guarded
		f.Action = d.Skip
		if !d.Guarded && !f.Compliant() && op.Namespace != keys.SystemNamespace {
			f.Action += fmt.Sprintf(`; to secure it: annotate namespace %s with %s: "true", or cover it with a MetricsSecurityPolicy in Mutate or Enforce mode`, op.Namespace, keys.AnnotationSecure)
		}
	default:
		f.Guarded = true
		switch {
		case !res.Judged || !res.Verdict.Secured():
			f.Action = "guarded, but the guard would leave it " + res.Verdict.String()
		case !res.TemplateChanged && !res.ConfigMapChanged:
			f.Action = "guarded: in the end state"
		default:
			f.Action = fmt.Sprintf("guarded: the guard secures it (metrics on port %d over TLS with token authentication)", d.Plan.Port)
		}
		if !res.Entitled {
			f.Action += "; " + res.NotEntitled
		}
	}
	if op.Namespace == keys.SystemNamespace {
		f.Action += "; kube-system is never guarded"
	}
	return f, nil
}
