package policy

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// OwnErrors are the invalid settings that the object under admission holds itself, of a
// decision's Errs: an annotation it carries (its value wins over the ConfigMap's and the
// namespace's), the data of a ConfigMap (eck.yaml), or the pod template of a workload.
// The others are held by another object (the namespace, which the webhook never sees
// written; the ConfigMap, seen from its workload) and must not block this object's writes.
func OwnErrors(errs field.ErrorList, annotations map[string]string, holder Holder) field.ErrorList {
	var own field.ErrorList
	for _, e := range errs {
		if key, ok := strings.CutPrefix(e.Field, "metadata.annotations["); ok {
			if _, held := annotations[strings.TrimSuffix(key, "]")]; held {
				own = append(own, e)
			}
			continue
		}
		switch {
		case holder == HolderConfigMap && strings.HasPrefix(e.Field, "data"),
			holder == HolderWorkload && strings.HasPrefix(e.Field, "spec."):
			own = append(own, e)
		}
	}
	return own
}
