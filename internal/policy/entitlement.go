package policy

import (
	"fmt"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// Entitled reports whether the guard may create, for an operator it secures, the objects
// that whoever wrote the workload may not be allowed to create themselves: the cluster-scoped
// system:auth-delegator grant to the operator's ServiceAccount, and the metrics Service,
// Certificate and ServiceMonitor in its namespace (docs/design/20261201-confused-deputy.md).
//
// Only an opt-in made by someone allowed to make it entitles the guard: the namespace's
// metrics-guard.eck.dev/secure: "true" annotation (writing a Namespace is the namespace
// owner's or the cluster admin's right, not a tenant's), or a MetricsSecurityPolicy in Mutate
// or Enforce mode (cluster-scoped, the platform team's) that covers the namespace. An opt-in
// on the workload or its ConfigMap alone is anyone's who may write those: it secures the
// operator's own objects, and the message says what the namespace's owner must do for the
// rest. Entitled says nothing about whether the operator is guarded at all (Decide does).
func Entitled(in Input) (bool, string) {
	if in.NamespaceAnnotations[keys.AnnotationSecure] == "true" {
		return true, ""
	}
	if c := in.Coverage; c != nil && c.Mode.Strength() >= v1alpha1.ModeMutate.Strength() {
		return true, ""
	}
	ns := "its namespace"
	if in.Operator != nil && in.Operator.Namespace != "" {
		ns = "namespace " + in.Operator.Namespace
	}
	return false, fmt.Sprintf("opted in by the workload alone, which secures the operator's own objects only: "+
		"for the metrics Service, the Certificate, the ServiceMonitor and the system:auth-delegator binding "+
		"(without which every scrape fails), the owner of %s must annotate it %s=true, "+
		"or a MetricsSecurityPolicy in Mutate or Enforce mode must cover it", ns, keys.AnnotationSecure)
}
