package mutate

import (
	"k8s.io/apimachinery/pkg/runtime"
)

// Unstructured is a new companion object as it is applied or written out: without the
// status and creationTimestamp Go types print for objects never stored, and without the
// empty objects of struct fields that lack omitempty.
func Unstructured(obj runtime.Object) (map[string]any, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(u, "status")
	if m, ok := u["metadata"].(map[string]any); ok {
		delete(m, "creationTimestamp")
	}
	pruneEmpty(u)
	return u, nil
}

func pruneEmpty(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			pruneEmpty(v)
			if len(v) == 0 {
				delete(m, k)
			}
		case []any:
			for _, item := range v {
				if im, ok := item.(map[string]any); ok {
					pruneEmpty(im)
				}
			}
		}
	}
}
