package cluster

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Scoped is a Lookup limited to some namespaces (--namespaces): the cache holds the
// namespaced objects of those only, so a read of another namespace finds nothing instead of
// failing ("unknown namespace for the cache"). Namespaces themselves, and policies, are
// cluster-scoped and read as before.
type Scoped struct {
	Lookup
	Namespaces []string
}

func (s Scoped) in(namespace string) bool { return slices.Contains(s.Namespaces, namespace) }

// ConfigMap implements Lookup.
func (s Scoped) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	if !s.in(namespace) {
		return nil, nil
	}
	return s.Lookup.ConfigMap(ctx, namespace, name)
}

// Operators implements Lookup: "" is every watched namespace.
func (s Scoped) Operators(ctx context.Context, namespace string) ([]Workload, error) {
	if namespace != "" && !s.in(namespace) {
		return nil, nil
	}
	return s.Lookup.Operators(ctx, namespace)
}

// EntitledOnly is a Lookup for decisions that count only for operators the guard is entitled to
// complete (policy.Entitled: their namespace's opt-in, or a Mutate or Enforce policy), such as
// the auth-delegator binding's subjects: in any other namespace it reads no ConfigMap (nil),
// since the decision is dropped whatever the ConfigMap says. Otherwise every binding reconcile
// would read, from the API server, the config of every operator not opted in (the cache holds
// only the configs the guard labelled).
type EntitledOnly struct {
	Lookup
}

// ConfigMap implements Lookup.
func (e EntitledOnly) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	ns, err := e.Namespace(ctx, namespace)
	if err != nil {
		return nil, err
	}
	var in policy.Input
	ns.Into(&in)
	if ok, _ := policy.Entitled(in); !ok {
		return nil, nil
	}
	return e.Lookup.ConfigMap(ctx, namespace, name)
}
