package policy

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// TestOwnErrors: an invalid setting denies the write of the object that holds it, never of
// its neighbours (the namespace, the ConfigMap seen from its workload, or the reverse).
func TestOwnErrors(t *testing.T) {
	port := field.Invalid(annotationPath(keys.AnnotationMetricsPort), "abc", "must be a port")
	data := field.Invalid(field.NewPath("data").Key("eck.yaml"), "(eck.yaml)", "duplicate key")
	spec := field.Forbidden(field.NewPath("spec", "template", "spec", "containers").Index(0), "weaker")
	other := field.Invalid(field.NewPath("cert-dir"), "/conf", "a flag's")
	errs := field.ErrorList{port, data, spec, other}
	tests := map[string]struct {
		annotations map[string]string
		holder      Holder
		want        field.ErrorList
	}{
		"a workload holding the annotation": {map[string]string{keys.AnnotationMetricsPort: "abc"}, HolderWorkload, field.ErrorList{port, spec}},
		"a workload without it":             {nil, HolderWorkload, field.ErrorList{spec}},
		"a ConfigMap holding it":            {map[string]string{keys.AnnotationMetricsPort: "abc"}, HolderConfigMap, field.ErrorList{port, data}},
		"a ConfigMap without it":            {nil, HolderConfigMap, field.ErrorList{data}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := OwnErrors(errs, tc.annotations, tc.holder)
			if len(got) != len(tc.want) {
				t.Fatalf("own %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("own[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
