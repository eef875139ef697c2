package cluster

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
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
