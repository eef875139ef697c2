package engine

import (
	"slices"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Object is a companion: a typed API object with metadata.
type Object interface {
	runtime.Object
	metav1.Object
}

// Existing is what already stands around an operator, as its front door found it: in the
// cluster (the controller) or in the stream (inject). The Result's plan says what is worth
// looking up: the monitors only when it plans one.
type Existing struct {
	// Services are the Services of the operator's namespace.
	Services []*corev1.Service
	// Bindings are ClusterRoleBindings that may name the operator's ServiceAccount, and
	// ClusterRoles the ClusterRoles they refer to, by name.
	Bindings     []*rbacv1.ClusterRoleBinding
	ClusterRoles map[string]*rbacv1.ClusterRole
	// ServiceMonitors and PodMonitors are the selectors of the namespace's monitors that
	// the guard did not write (ECK's chart makes a ServiceMonitor in its secure mode).
	ServiceMonitors []metav1.LabelSelector
	PodMonitors     []metav1.LabelSelector
}

// Companions are the objects beside the operator's own that its secured metrics need.
type Companions struct {
	// Service exposes the metrics: one of Existing.Services, with the guard's labels
	// (Labelled says that they were missing), or a new one (NewService).
	Service    *corev1.Service
	NewService bool
	Labelled   bool
	// Binding lets the operator's ServiceAccount review scrapers' tokens; nil when one of
	// Existing.Bindings does already.
	Binding *rbacv1.ClusterRoleBinding
	// Certificate backs the TLS Secret; nil without an issuer.
	Certificate *cmv1.Certificate
	// Monitor tells Prometheus to scrape the metrics (a ServiceMonitor or a PodMonitor, as
	// the plan says); nil when the plan asks for none, or a monitor the guard did not write
	// scrapes them already.
	Monitor Object
}

// Companions are the objects secured metrics need beside the operator's own, given what
// exists. nil when nothing is planned, or when the opt-in does not entitle the guard to
// make them (Result.NotEntitled says what the namespace's owner must do).
func (r Result) Companions(have Existing) *Companions {
	p, op := r.Decision.Plan, r.operator
	if p == nil || op == nil || !r.Entitled {
		return nil
	}
	c := &Companions{}
	for _, svc := range have.Services {
		if svc.Name == p.ServiceName || !mutate.IsMetricsService(svc, op, p) {
			continue
		}
		c.Service = svc.DeepCopy()
		c.Labelled = mutate.Service(c.Service, op)
		break
	}
	if c.Service == nil {
		c.Service, c.NewService = mutate.MetricsService(op, p), true
	}
	if !have.DelegatesAuth(op) {
		c.Binding = mutate.AuthDelegatorBinding(op)
	}
	c.Certificate = mutate.Certificate(op, p, c.Service.Name)
	if p.Monitor == nil || selected(have.ServiceMonitors, c.Service.Labels) || selected(have.PodMonitors, r.podLabels) {
		return c
	}
	switch p.Monitor.Kind {
	case policy.ServiceMonitorKind:
		if sm := mutate.ServiceMonitor(op, p, c.Service); sm != nil {
			c.Monitor = sm
		}
	case policy.PodMonitorKind:
		if pm := mutate.PodMonitor(op, p, c.Service); pm != nil {
			c.Monitor = pm
		}
	}
	return c
}

// New is the companions to create, in the order to write them.
func (c *Companions) New() []Object {
	var out []Object
	if c.NewService {
		out = append(out, c.Service)
	}
	if c.Binding != nil {
		out = append(out, c.Binding)
	}
	if c.Certificate != nil {
		out = append(out, c.Certificate)
	}
	if c.Monitor != nil {
		out = append(out, c.Monitor)
	}
	return out
}

// DelegatesAuth reports whether one of the bindings lets the operator's ServiceAccount
// create TokenReviews and SubjectAccessReviews, as ECK's Helm chart does in secure mode.
func (have Existing) DelegatesAuth(op *eck.Operator) bool {
	for _, crb := range have.Bindings {
		if crb.RoleRef.Kind != "ClusterRole" || !slices.ContainsFunc(crb.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == op.ServiceAccount && s.Namespace == op.Namespace
		}) {
			continue
		}
		if crb.RoleRef.Name == mutate.AuthDelegatorRole {
			return true
		}
		if role := have.ClusterRoles[crb.RoleRef.Name]; role != nil && mutate.GrantsAuthDelegation(role.Rules) {
			return true
		}
	}
	return false
}

// selected reports whether one of the selectors (none of them empty) selects the labels.
func selected(selectors []metav1.LabelSelector, set map[string]string) bool {
	for i := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(&selectors[i])
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}
