package framework

import (
	"context"
	"fmt"
	"os"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ECKClusterRBAC creates the cluster-scoped RBAC an ECK install manifest gives its operator:
// the ClusterRole elastic-operator and its ClusterRoleBinding, renamed <ns>:elastic-operator
// (so that namespaces cannot collide) and bound to the ServiceAccount in ns. The manifest's
// -view and -edit ClusterRoles are for users, and left out. It returns what it created.
func (e *Env) ECKClusterRBAC(ctx context.Context, manifest, ns string) ([]client.Object, error) {
	raw, err := os.ReadFile(manifest)
	if err != nil {
		return nil, err
	}
	var objs []client.Object
	for _, doc := range strings.Split(string(raw), "\n---") {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s: %w", manifest, err)
		}
		switch head.Kind {
		case "ClusterRole":
			role := &rbacv1.ClusterRole{}
			if err := yaml.Unmarshal([]byte(doc), role); err != nil {
				return nil, fmt.Errorf("%s: %w", manifest, err)
			}
			if role.Name != "elastic-operator" {
				continue
			}
			role.Name = ns + ":" + role.Name
			objs = append(objs, role)
		case "ClusterRoleBinding":
			binding := &rbacv1.ClusterRoleBinding{}
			if err := yaml.Unmarshal([]byte(doc), binding); err != nil {
				return nil, fmt.Errorf("%s: %w", manifest, err)
			}
			binding.Name = ns + ":" + binding.Name
			binding.RoleRef.Name = ns + ":" + binding.RoleRef.Name
			for i := range binding.Subjects {
				binding.Subjects[i].Namespace = ns
			}
			objs = append(objs, binding)
		}
	}
	if len(objs) != 2 {
		return nil, fmt.Errorf("%s: found %d of the operator's ClusterRole and ClusterRoleBinding, want 2", manifest, len(objs))
	}
	for _, obj := range objs {
		if err := e.Client.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	return objs, nil
}
