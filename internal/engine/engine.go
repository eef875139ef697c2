// Package engine is the one per-operator step behind every front door (the webhook, the
// controller, inject/diff): decide (package policy), secure (package mutate), then judge
// the result from what ECK will read (package eck), and, under an Enforce policy, the
// change a write makes. The front doors only translate: they gather an Input, call Secure
// or Admit, and write what the Result holds.
package engine

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Result is what securing one operator gives.
type Result struct {
	Decision policy.Decision
	// Template and ConfigMap are the secured copies of the input's objects; nil when the
	// input has none or the decision planned nothing. Changed says which differ.
	Template         *corev1.PodTemplateSpec
	ConfigMap        *corev1.ConfigMap
	TemplateChanged  bool
	ConfigMapChanged bool
	// Verdict judges the operator as the result leaves it: the secured pod template with
	// the config file as the guard writes it. Judged is false when the operator's workload
	// is not known (a ConfigMap alone).
	Verdict eck.Verdict
	Judged  bool
	// Entitled says whether the opt-in entitles the guard to make the operator's companion
	// objects (policy.Entitled); NotEntitled, when it does not, what the namespace's owner
	// must do. Companions computes them.
	Entitled    bool
	NotEntitled string

	operator  *eck.Operator
	podLabels map[string]string
}

// Secure decides, secures and judges one operator. The error is an eck.yaml the guard
// cannot edit in place, about the input's ConfigMap (field data[key]).
func Secure(in policy.Input) (Result, *field.Error) {
	d := policy.Decide(in)
	r := Result{Decision: d, operator: in.Operator}
	if in.Template != nil {
		r.podLabels = in.Template.Labels
	}
	if len(d.Errs) > 0 {
		return r, nil
	}
	if d.Plan != nil {
		r.Entitled, r.NotEntitled = policy.Entitled(in)
	}
	tmpl, cm := in.Template, in.ConfigMap
	if p := d.Plan; p != nil {
		if in.Operator != nil && in.Template != nil {
			tmpl = in.Template.DeepCopy()
			r.Template, r.TemplateChanged = tmpl, mutate.PodTemplate(tmpl, in.Operator, p, d.Effective)
		}
		if !p.Flags && (in.ConfigMap == nil || !eck.Trimmed(in.ConfigMap)) {
			cm = configMapToEdit(in)
			changed, err := mutate.ConfigMap(cm, in.Key(), p)
			if err != nil {
				return r, field.Invalid(field.NewPath("data").Key(in.Key()), "(eck.yaml)", err.Error())
			}
			if in.Operator != nil {
				// Every later write of it reaches the webhook, whatever its content.
				changed = mutate.ConfigMapLabel(cm, in.Operator) || changed
			}
			if in.ConfigMap != nil {
				r.ConfigMap, r.ConfigMapChanged = cm, changed
			}
		}
	}
	if in.Operator != nil && tmpl != nil {
		after := in
		after.Template, after.ConfigMap = tmpl, cm
		r.Verdict, r.Judged = Judge(after), true
	}
	return r, nil
}

// configMapToEdit is a copy of the input's ConfigMap, or, when it is not there yet (the
// workload is written first, or the cache has not seen it), the one the guard will secure
// when it is: the verdict on a workload write judges what that write holds. A cache copy
// without all of its data (eck.Trimmed) is not edited: the verdict then says unknown, and
// the controller, which reads it from the API server, secures it.
func configMapToEdit(in policy.Input) *corev1.ConfigMap {
	if in.ConfigMap != nil {
		return in.ConfigMap.DeepCopy()
	}
	cm := &corev1.ConfigMap{}
	if in.Operator != nil {
		cm.Name, cm.Namespace = in.Operator.ConfigMapName, in.Operator.Namespace
	}
	return cm
}

// Judge says how the operator serves its metrics with the input's objects as they are.
func Judge(in policy.Input) eck.Verdict {
	if in.Operator.Unknown != "" {
		return eck.Verdict{Exposure: eck.ExposureUnknown, Reasons: []string{"the guard cannot tell what ECK reads: " + in.Operator.Unknown}}
	}
	return eck.Judge(in.Operator, in.Template, eck.Resolve(in.Template, in.Operator.ContainerIndex, in.ConfigMapGetter()))
}

// Admit is Secure for a write under admission. Under an Enforce policy it also judges the
// change: a write after which the endpoint, as the guard leaves it, is less secure than the
// stored object's would be (by the model), or, for a new object, open or unknown, is denied,
// naming the policy and the sources that win.
// old is the input with the object as stored before the write; nil for a create.
func Admit(in policy.Input, old *policy.Input) (Result, *field.Error) {
	r, err := Secure(in)
	if err != nil || !in.Enforced() || !r.Judged || len(r.Decision.Errs) > 0 {
		return r, err
	}
	after := r.Verdict.Exposure
	var weakened bool
	if old == nil || old.Operator == nil || old.Template == nil {
		weakened = after.Weaker(eck.ExposureIncomplete) // new, or new as an operator
	} else {
		// The object as stored, as the guard would leave it: the write is judged on what it
		// brings that the guard cannot fix, not on a ConfigMap the cache has not seen yet.
		before, _ := Secure(*old)
		weakened = after.Weaker(before.Verdict.Exposure)
	}
	if !weakened {
		return r, nil
	}
	msg := fmt.Sprintf("%s enforces secure metrics in namespace %s: after this write ECK's metrics endpoint would be %s", in.Coverage, in.Operator.Namespace, r.Verdict)
	where := field.NewPath("spec", "template", "spec", "containers").Index(in.Operator.ContainerIndex)
	if in.Admitting == policy.HolderConfigMap {
		where = field.NewPath("data").Key(in.Key())
	}
	r.Decision.Denied = append(r.Decision.Denied, field.Forbidden(where, msg))
	return r, nil
}

// NoLongerOperator is the denial, under an Enforce policy, of a write that turns an ECK
// operator workload (by the object as stored) into one the guard cannot recognise (another
// image, not the manager): it would leave the policy's sight with its endpoint unknown.
// nil when no Enforce policy covers it.
func NoLongerOperator(coverage *policy.Coverage, was *eck.Operator) *field.Error {
	if coverage == nil || coverage.Mode != v1alpha1.ModeEnforce {
		return nil
	}
	return field.Forbidden(field.NewPath("spec", "template", "spec", "containers"),
		fmt.Sprintf("%s enforces secure metrics in namespace %s: %s %s runs the ECK operator, and after this write the guard could not tell what it serves; keep ECK's image and manager command line", coverage, was.Namespace, was.Kind, was.Name))
}
