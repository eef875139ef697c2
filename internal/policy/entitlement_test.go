package policy

import (
	"strings"
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

func TestEntitled(t *testing.T) {
	op := &eck.Operator{Namespace: "team-a", Name: "elastic-operator"}
	secure := map[string]string{keys.AnnotationSecure: "true"}
	for name, tc := range map[string]struct {
		in   Input
		want bool
	}{
		"namespace annotation":             {Input{Operator: op, NamespaceAnnotations: secure}, true},
		"Mutate policy":                    {Input{Operator: op, Coverage: &Coverage{Policy: "p", Mode: v1alpha1.ModeMutate}}, true},
		"Enforce policy":                   {Input{Operator: op, Coverage: &Coverage{Policy: "p", Mode: v1alpha1.ModeEnforce}}, true},
		"workload alone":                   {Input{Operator: op, WorkloadAnnotations: secure}, false},
		"workload under an Audit policy":   {Input{Operator: op, WorkloadAnnotations: secure, Coverage: &Coverage{Policy: "p", Mode: v1alpha1.ModeAudit}}, false},
		"namespace opted out, workload in": {Input{Operator: op, WorkloadAnnotations: secure, NamespaceAnnotations: map[string]string{keys.AnnotationSecure: "false"}}, false},
		"namespace annotation not true":    {Input{Operator: op, NamespaceAnnotations: map[string]string{keys.AnnotationSecure: "yes"}}, false},
	} {
		t.Run(name, func(t *testing.T) {
			got, why := Entitled(tc.in)
			if got != tc.want {
				t.Fatalf("Entitled = %v (%s), want %v", got, why, tc.want)
			}
			if !got && (!strings.Contains(why, "namespace team-a") || !strings.Contains(why, keys.AnnotationSecure+"=true")) {
				t.Errorf("the message does not say what the namespace's owner must do: %s", why)
			}
			if got && why != "" {
				t.Errorf("entitled with a message: %s", why)
			}
		})
	}
}
