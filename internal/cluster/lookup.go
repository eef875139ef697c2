// Package cluster is how the webhook and the controller read the cluster: through the
// manager's cache only, trimmed to what the guard needs.
package cluster

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/meta"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// Workload is an ECK operator workload as the handlers need it.
type Workload struct {
	Operator    *eck.Operator
	Template    *corev1.PodTemplateSpec
	Annotations map[string]string
}

// Lookup is every read the webhook makes, and the controller's reads of the same things. The server implements it with cached reads
// only (see CachedLookup); tests may use anything.
type Lookup interface {
	// Namespace returns what decisions need of a namespace: its annotations and the
	// MetricsSecurityPolicy that covers it (zero when the namespace is unknown).
	Namespace(ctx context.Context, namespace string) (Namespace, error)
	// ConfigMap returns a ConfigMap, or nil when it does not exist.
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error)
	// Operators returns the ECK operator workloads of a namespace.
	Operators(ctx context.Context, namespace string) ([]Workload, error)
}

// Namespace is what a decision needs of a namespace.
type Namespace struct {
	Annotations map[string]string
	// Coverage is the MetricsSecurityPolicy that covers it; nil when none does.
	Coverage *policy.Coverage
}

// Into sets the namespace's part of a decision's input.
func (n Namespace) Into(in *policy.Input) {
	in.NamespaceAnnotations, in.Coverage = n.Annotations, n.Coverage
}

// CachedLookup reads from a controller-runtime cache: Namespaces as metadata only, and
// StatefulSets, Deployments and ConfigMaps trimmed by Transform.
type CachedLookup struct {
	Reader client.Reader
	// Policies is false when the MetricsSecurityPolicy CRD is not installed: then no
	// namespace is covered by a policy.
	Policies bool
	// Selectors, if not nil, keeps the policies' namespace selectors converted.
	Selectors *policy.Selectors
}

var _ Lookup = CachedLookup{}

// namespace returns a namespace's metadata, or nil when it does not exist.
func (l CachedLookup) namespace(ctx context.Context, name string) (*metav1.PartialObjectMetadata, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := l.Reader.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to read namespace %s: %w", name, err)
	}
	return ns, nil
}

// Namespace implements Lookup: one cached read of the namespace's metadata, and, when
// policies are on, one of the policies.
func (l CachedLookup) Namespace(ctx context.Context, namespace string) (Namespace, error) {
	ns, err := l.namespace(ctx, namespace)
	if ns == nil || err != nil {
		return Namespace{}, err
	}
	out := Namespace{Annotations: ns.Annotations}
	if !l.Policies {
		return out, nil
	}
	// Read-only, on every admission request: the policies' status lists can be long, so they
	// are not copied out of the cache.
	var policies v1alpha1.MetricsSecurityPolicyList
	if err := l.Reader.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return Namespace{}, fmt.Errorf("failed to list MetricsSecurityPolicies: %w", err)
	}
	out.Coverage = l.Selectors.Cover(policies.Items, namespace, ns.Labels)
	return out, nil
}

// ConfigMap implements Lookup.
func (l CachedLookup) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{}
	if err := l.Reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to read ConfigMap %s/%s: %w", namespace, name, err)
	}
	return cm, nil
}

// Operators implements Lookup.
func (l CachedLookup) Operators(ctx context.Context, namespace string) ([]Workload, error) {
	var out []Workload
	var stsList appsv1.StatefulSetList
	if err := l.Reader.List(ctx, &stsList, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("failed to list StatefulSets in %s: %w", namespace, err)
	}
	for i := range stsList.Items {
		sts := &stsList.Items[i]
		if op, ok := eck.FromStatefulSet(sts); ok {
			out = append(out, Workload{Operator: op, Template: &sts.Spec.Template, Annotations: sts.Annotations})
		}
	}
	var deployments appsv1.DeploymentList
	if err := l.Reader.List(ctx, &deployments, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("failed to list Deployments in %s: %w", namespace, err)
	}
	for i := range deployments.Items {
		d := &deployments.Items[i]
		if op, ok := eck.FromDeployment(d); ok {
			out = append(out, Workload{Operator: op, Template: &d.Spec.Template, Annotations: d.Annotations})
		}
	}
	return out, nil
}

// ConfigMapInput gathers what policy needs to decide about a ConfigMap in namespace: that of
// the ECK operator that reads it, or, when no operator of the namespace does (the ConfigMap is
// usually written first), the ConfigMap alone if it holds an eck.yaml. ours is false when it is
// neither: no operator's config.
func ConfigMapInput(ctx context.Context, l Lookup, namespace string, cm *corev1.ConfigMap, defaults policy.Defaults) (in policy.Input, ours bool, err error) {
	workloads, err := l.Operators(ctx, namespace)
	if err != nil {
		return in, false, err
	}
	for _, w := range workloads {
		if w.Operator.ConfigMapName != cm.Name {
			continue
		}
		if in, err = Input(ctx, l, namespace, w, defaults); err != nil {
			return in, false, err
		}
		in.ConfigMap, in.ConfigKey = cm, w.Operator.ConfigKey
		return in, true, nil
	}
	key, ok := eck.ConfigKeyOf(cm)
	if !ok {
		return in, false, nil
	}
	in = policy.Input{ConfigMap: cm, ConfigKey: key, Defaults: defaults}
	ns, err := l.Namespace(ctx, namespace)
	if err != nil {
		return in, false, err
	}
	ns.Into(&in)
	return in, true, nil
}

// Transform keeps the cache small: it drops managed fields everywhere, the pod template
// of workloads that are not ECK operators, and the data of ConfigMaps that hold no
// eck.yaml but for the keys an envFrom could turn into a metrics variable (eck.EnvData)
// and those holding eck.yaml settings under another name (eck.LooksLikeConfig).
// Use it as the cache's DefaultTransform.
func Transform(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
	}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		if _, ok := eck.FromStatefulSet(o); !ok {
			o.Spec = appsv1.StatefulSetSpec{}
		}
		o.Status = appsv1.StatefulSetStatus{}
	case *appsv1.Deployment:
		if _, ok := eck.FromDeployment(o); !ok {
			o.Spec = appsv1.DeploymentSpec{}
		}
		o.Status = appsv1.DeploymentStatus{}
	case *corev1.ConfigMap:
		_, config := eck.ConfigKeyOf(o)
		if _, ok := o.Labels[meta.LabelConfigOf]; !ok && !config {
			kept := eck.EnvData(o.Data)
			for k, v := range o.Data {
				if eck.LooksLikeConfig(v) { // an eck.yaml a workload mounts from a key of another name
					if kept == nil {
						kept = map[string]string{}
					}
					kept[k] = v
				}
			}
			o.Data, o.BinaryData = kept, nil
			// A key missing from this copy may exist: the model says unknown, not absent.
			annotations := o.GetAnnotations()
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[eck.TrimmedAnnotation] = "true"
			o.SetAnnotations(annotations)
		}
	}
	return obj, nil
}

// Input gathers what policy needs to decide about a workload in namespace.
func Input(ctx context.Context, l Lookup, namespace string, w Workload, defaults policy.Defaults) (policy.Input, error) {
	w.Operator.Namespace = namespace
	in := policy.Input{Operator: w.Operator, Template: w.Template, WorkloadAnnotations: w.Annotations, Defaults: defaults}
	ns, err := l.Namespace(ctx, namespace)
	if err != nil {
		return in, err
	}
	ns.Into(&in)
	if w.Operator.ConfigMapName != "" {
		if in.ConfigMap, err = l.ConfigMap(ctx, namespace, w.Operator.ConfigMapName); err != nil {
			return in, err
		}
	}
	for _, name := range eck.ConfigMapRefs(w.Template, w.Operator.ContainerIndex) {
		if _, done := in.ConfigMaps[name]; done || name == w.Operator.ConfigMapName {
			continue
		}
		cm, err := l.ConfigMap(ctx, namespace, name)
		if err != nil {
			return in, err
		}
		if in.ConfigMaps == nil {
			in.ConfigMaps = map[string]*corev1.ConfigMap{}
		}
		in.ConfigMaps[name] = cm
	}
	return in, nil
}
