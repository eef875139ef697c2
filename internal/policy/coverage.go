package policy

import (
	"fmt"
	"regexp"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// Coverage is the MetricsSecurityPolicy that governs an operator's namespace: of the policies
// whose selector matches it, the one with the strongest mode (on a tie, the first by name).
type Coverage struct {
	Policy string
	Mode   v1alpha1.Mode
	// Defaults may share memory with the informer cache: read only.
	Defaults v1alpha1.PolicyDefaults
}

// Selectors converts each policy's namespace selector once per generation of the policy,
// for callers that choose a policy on every request (the webhook). The zero value is ready
// to use and safe for concurrent use; a nil *Selectors converts on every call.
type Selectors struct {
	mu    sync.Mutex
	byUID map[types.UID]compiledSelector
}

type compiledSelector struct {
	generation int64
	selector   labels.Selector
	err        error
}

// maxSelectors bounds the memory of Selectors: it starts over when more policies than
// this were seen (deleted policies leave their entry behind until then).
const maxSelectors = 1024

func (s *Selectors) of(p *v1alpha1.MetricsSecurityPolicy) (labels.Selector, error) {
	if s == nil || p.UID == "" {
		return Selector(p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.byUID[p.UID]; ok && c.generation == p.Generation {
		return c.selector, c.err
	}
	if s.byUID == nil || len(s.byUID) >= maxSelectors {
		s.byUID = map[types.UID]compiledSelector{}
	}
	sel, err := Selector(p)
	s.byUID[p.UID] = compiledSelector{generation: p.Generation, selector: sel, err: err}
	return sel, err
}

// Cover returns the Coverage of a namespace, or nil when no policy selects it. A policy with
// an invalid selector selects nothing (its status says why), and no policy covers kube-system
// or a namespace labelled metrics-guard.eck.dev/exclude. Each selector is converted once per
// policy generation (a nil *Selectors converts on every call).
func (s *Selectors) Cover(policies []v1alpha1.MetricsSecurityPolicy, namespace string, namespaceLabels map[string]string) *Coverage {
	if Excluded(namespace, namespaceLabels) {
		return nil
	}
	var best *v1alpha1.MetricsSecurityPolicy
	for i := range policies {
		p := &policies[i]
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		if sel, err := s.of(p); err != nil || !sel.Matches(labels.Set(namespaceLabels)) {
			continue
		}
		if best == nil || stronger(p, best) {
			best = p
		}
	}
	if best == nil {
		return nil
	}
	return &Coverage{Policy: best.Name, Mode: ModeOf(best), Defaults: best.Spec.Defaults}
}

func stronger(a, b *v1alpha1.MetricsSecurityPolicy) bool {
	sa, sb := ModeOf(a).Strength(), ModeOf(b).Strength()
	return sa > sb || (sa == sb && a.Name < b.Name)
}

// Excluded reports whether the guard stays out of a namespace.
func Excluded(namespace string, namespaceLabels map[string]string) bool {
	_, excluded := namespaceLabels[keys.LabelExclude]
	return excluded || namespace == keys.SystemNamespace
}

// ModeOf is a policy's mode; the API server defaults it to Audit, and so does this.
func ModeOf(p *v1alpha1.MetricsSecurityPolicy) v1alpha1.Mode {
	if p.Spec.Mode == "" {
		return v1alpha1.ModeAudit
	}
	return p.Spec.Mode
}

// Selector is a policy's namespace selector, or an error that names the field.
func Selector(p *v1alpha1.MetricsSecurityPolicy) (labels.Selector, error) {
	if p.Spec.NamespaceSelector == nil { // the API server requires it; a client may not
		return nil, field.Required(field.NewPath("spec", "namespaceSelector"), "{} selects every namespace")
	}
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.NamespaceSelector)
	if err != nil {
		return nil, field.Invalid(field.NewPath("spec", "namespaceSelector"), p.Spec.NamespaceSelector, err.Error())
	}
	return sel, nil
}

// withPolicy is the input's defaults with the covering policy's on top, when the policy
// secures (Mutate, Enforce): an Audit policy changes nothing, not even the settings of
// operators opted in by annotation.
func (in Input) withPolicy() Defaults {
	d := in.Defaults
	if !in.secures() {
		return d
	}
	pd := in.Coverage.Defaults
	if pd.MetricsPort != nil {
		d.Port = int(*pd.MetricsPort)
	}
	if pd.Issuer != nil {
		d.Issuer, d.IssuerKind, d.IssuerGroup = pd.Issuer.Name, pd.Issuer.Kind, pd.Issuer.Group
	}
	return withCompanions(d, pd)
}

// Enforced reports whether a policy in Enforce mode covers the input.
func (in Input) Enforced() bool {
	return in.Coverage != nil && in.Coverage.Mode == v1alpha1.ModeEnforce
}

// secures reports whether the covering policy secures operators that did not opt in.
func (in Input) secures() bool {
	return in.Coverage != nil && in.Coverage.Mode.Strength() >= v1alpha1.ModeMutate.Strength()
}

func (c *Coverage) String() string {
	return fmt.Sprintf("MetricsSecurityPolicy %s (%s)", c.Policy, c.Mode)
}

// normalized is the input as policies see it. A ConfigMap whose operator is not known yet is
// recognised by its content only: policies cover it only when it is labelled as ECK's own, so
// that a policy never rewrites an application's config.yaml that happens to hold a
// metrics-port key. The controller secures the rest once the operator exists.
func (in Input) normalized() Input {
	if in.Operator == nil && !eck.IsOperatorConfig(in.ConfigMap) {
		in.Coverage = nil
	}
	return in
}

// violation is something an Enforce policy forbids, and the object that holds it.
type violation struct {
	holder Holder
	err    *field.Error
}

// violations are what an Enforce policy forbids in the input's objects: an opt-out of the
// workload or its ConfigMap (a namespace's is overridden, not denied). Settings that weaken
// the endpoint are judged on the result of the mutation (engine.Admit), where the model
// sees which source wins.
func violations(in Input) []violation {
	if !in.Enforced() {
		return nil
	}
	var out []violation
	if _, optedOut, _, _ := optedIn(in); optedOut != "" && optedOut != "namespace" {
		out = append(out, violation{Holder(optedOut), optOutForbidden(in, optedOut)})
	}
	return out
}

// Held lists the violations of an Enforce policy held by the input's object under admission
// (all of them if Admitting is ""), whatever else Decide would find: an unsupported version,
// invalid settings. It is what a request inherits from the object as it was before.
func Held(in Input) field.ErrorList {
	in = in.normalized()
	var out field.ErrorList
	for _, v := range violations(in) {
		if in.Admitting == "" || in.Admitting == v.holder {
			out = append(out, v.err)
		}
	}
	return out
}

// SameViolation reports whether two violations are the same one, on objects that may differ
// elsewhere: the field path holds list indexes (env[3]) that move when an unrelated entry is
// added, so only the kind of error and its detail (which names the setting) are compared.
func SameViolation(a, b *field.Error) bool {
	return a.Type == b.Type && a.Detail == b.Detail
}

// optOutForbidden is the error for an opt-out that an Enforce policy denies.
func optOutForbidden(in Input, holder string) *field.Error {
	if holder == "workload" && in.Operator != nil {
		holder = in.Operator.Kind
	}
	return field.Forbidden(annotationPath(keys.AnnotationSecure),
		fmt.Sprintf("%s enforces secure metrics in namespace %s: the %s may not opt out with \"false\"", in.Coverage, in.namespace(), holder))
}

func (in Input) namespace() string {
	switch {
	case in.Operator != nil:
		return in.Operator.Namespace
	case in.ConfigMap != nil:
		return in.ConfigMap.Namespace
	}
	return ""
}

// documentSeparator is a YAML stream's "---" line.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// ParsePolicies reads MetricsSecurityPolicies from a YAML stream (documents of other kinds
// are an error), strictly: an unknown field is named, and so is a missing namespaceSelector
// or an unknown mode. What only the API server checks (the CRD's patterns and CEL rules) is
// not checked here; a policy applied to a cluster is.
func ParsePolicies(raw []byte) ([]v1alpha1.MetricsSecurityPolicy, error) {
	var out []v1alpha1.MetricsSecurityPolicy
	for i, doc := range documentSeparator.Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var p v1alpha1.MetricsSecurityPolicy
		if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		where := fmt.Sprintf("document %d (MetricsSecurityPolicy %s)", i, p.Name)
		if p.Kind != "MetricsSecurityPolicy" || p.APIVersion != v1alpha1.GroupVersion.String() {
			return nil, fmt.Errorf("document %d: %s %s is not a %s MetricsSecurityPolicy", i, p.APIVersion, p.Kind, v1alpha1.GroupVersion)
		}
		if p.Spec.NamespaceSelector == nil {
			return nil, fmt.Errorf("%s: %s", where, field.Required(field.NewPath("spec", "namespaceSelector"), "{} selects every namespace"))
		}
		if _, err := Selector(&p); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if m := p.Spec.Mode; m != "" && m != v1alpha1.ModeAudit && m != v1alpha1.ModeMutate && m != v1alpha1.ModeEnforce {
			return nil, fmt.Errorf("%s: %s", where, field.NotSupported(field.NewPath("spec", "mode"), m, []string{string(v1alpha1.ModeAudit), string(v1alpha1.ModeMutate), string(v1alpha1.ModeEnforce)}))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no MetricsSecurityPolicy in it")
	}
	return out, nil
}
