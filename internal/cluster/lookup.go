// Package cluster is how the webhook and the controller read the cluster: through the
// manager's cache only, trimmed to what the guard needs.
package cluster

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
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

// CachedLookup reads from a controller-runtime cache: Namespaces as metadata only,
// StatefulSets and Deployments trimmed by Transform, and the ConfigMaps of ConfigMapSelector.
type CachedLookup struct {
	Reader client.Reader
	// Live, if not nil, reads a ConfigMap the cache does not hold from the API server (one GET,
	// counted in eck_metrics_guard_configmap_reads_total{source="api"}): the ConfigMaps an ECK
	// operator reads that the guard has not labelled yet (an operator not guarded, or not
	// secured yet; its envFrom sources), and the ones that do not exist. Only admissions and
	// reconciles of ECK operators read ConfigMaps.
	Live client.Reader
	// Policies is false when the MetricsSecurityPolicy CRD is not installed: then no
	// namespace is covered by a policy.
	Policies bool
	// Selectors, if not nil, keeps the policies' namespace selectors converted.
	Selectors *policy.Selectors
}

var _ Lookup = CachedLookup{}

// configMapReads counts the ConfigMap reads of decisions, by where they were served from.
var configMapReads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "eck_metrics_guard_configmap_reads_total",
	Help: "ConfigMaps read for decisions, by source: the cache (labelled configs) or the API server (any other).",
}, []string{"source"})

func init() { metrics.Registry.MustRegister(configMapReads) }

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

// ConfigMap implements Lookup: from the cache, else from the API server (Live).
func (l CachedLookup) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	cm := &corev1.ConfigMap{}
	err := l.Reader.Get(ctx, key, cm)
	if err == nil {
		configMapReads.WithLabelValues("cache").Inc()
		return cm, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("failed to read ConfigMap %s/%s: %w", namespace, name, err)
	}
	if l.Live == nil {
		return nil, nil
	}
	configMapReads.WithLabelValues("api").Inc()
	cm = &corev1.ConfigMap{}
	if err := l.Live.Get(ctx, key, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("failed to read ConfigMap %s/%s: %w", namespace, name, err)
	}
	cm.ManagedFields = nil
	return cm, nil // whole: not trimmed
}

// Operators implements Lookup. The lists are not deep-copied (most items are the stubs of other
// workloads, on every namespace event and binding reconcile): only the ECK operators found are
// copied out of the cache.
func (l CachedLookup) Operators(ctx context.Context, namespace string) ([]Workload, error) {
	var out []Workload
	var stsList appsv1.StatefulSetList
	if err := l.Reader.List(ctx, &stsList, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list StatefulSets in %s: %w", namespace, err)
	}
	for i := range stsList.Items {
		if _, ok := eck.FromStatefulSet(&stsList.Items[i]); !ok {
			continue
		}
		sts := stsList.Items[i].DeepCopy()
		op, _ := eck.FromStatefulSet(sts)
		out = append(out, Workload{Operator: op, Template: &sts.Spec.Template, Annotations: sts.Annotations})
	}
	var deployments appsv1.DeploymentList
	if err := l.Reader.List(ctx, &deployments, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("failed to list Deployments in %s: %w", namespace, err)
	}
	for i := range deployments.Items {
		if _, ok := eck.FromDeployment(&deployments.Items[i]); !ok {
			continue
		}
		d := deployments.Items[i].DeepCopy()
		op, _ := eck.FromDeployment(d)
		out = append(out, Workload{Operator: op, Template: &d.Spec.Template, Annotations: d.Annotations})
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
		if in, err = input(ctx, l, namespace, w, defaults, cm); err != nil {
			return in, false, err
		}
		in.ConfigKey = w.Operator.ConfigKey
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

// LastApplied is the annotation kubectl apply keeps a copy of the applied object in: often
// the biggest part of an object's metadata, and nothing the guard reads.
const LastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// guardPrefix starts every annotation and label key the guard reads or writes.
const guardPrefix = "metrics-guard.eck.dev/"

// ConfigMapSelector selects the ConfigMaps the cache holds: those labelled as a guarded
// operator's config (keys.LabelConfigOf), which the webhook and the controller label. Any other
// ConfigMap a decision needs is read from the API server when needed (CachedLookup.Live): a
// cluster's ConfigMaps are most of its objects, and none of the guard's business.
func ConfigMapSelector() labels.Selector {
	exists, err := labels.NewRequirement(keys.LabelConfigOf, selection.Exists, nil)
	if err != nil {
		panic(err)
	}
	return labels.NewSelector().Add(*exists)
}

// Transform keeps the cache small: it drops managed fields and kubectl's last-applied copy
// everywhere; keeps of a workload that is not an ECK operator only what the controller needs to
// take back a status it wrote (name, namespace, resource version, deletion, the guard's own
// annotations); keeps of a Namespace its labels (policies select by them) and the guard's
// annotations; drops the data of ConfigMaps that hold no eck.yaml but for the keys an envFrom
// could turn into a metrics variable (eck.EnvData) and those holding eck.yaml settings under
// another name (eck.LooksLikeConfig), and marks them trimmed (eck.TrimmedAnnotation: a key
// missing from such a copy is unknown, never absent). Use it as the cache's DefaultTransform.
//
// The informer still decodes every object it lists and watches before Transform sees it:
// filter on the server (ConfigMapSelector) where the API allows it.
func Transform(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
		if _, ok := o.GetAnnotations()[LastApplied]; ok {
			annotations := o.GetAnnotations()
			delete(annotations, LastApplied)
			o.SetAnnotations(annotations)
		}
	}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		if _, ok := eck.FromStatefulSet(o); !ok {
			*o = appsv1.StatefulSet{TypeMeta: o.TypeMeta, ObjectMeta: stub(&o.ObjectMeta)}
			break
		}
		o.Status = appsv1.StatefulSetStatus{}
	case *appsv1.Deployment:
		if _, ok := eck.FromDeployment(o); !ok {
			*o = appsv1.Deployment{TypeMeta: o.TypeMeta, ObjectMeta: stub(&o.ObjectMeta)}
			break
		}
		o.Status = appsv1.DeploymentStatus{}
	case *metav1.PartialObjectMetadata:
		if o.Kind == "Namespace" { // name, labels, the guard's annotations, the version
			o.ObjectMeta = metav1.ObjectMeta{Name: o.Name, Labels: o.Labels, Annotations: guardKeys(o.Annotations),
				ResourceVersion: o.ResourceVersion, DeletionTimestamp: o.DeletionTimestamp}
		}
	case *corev1.ConfigMap:
		_, config := eck.ConfigKeyOf(o)
		if _, ok := o.Labels[keys.LabelConfigOf]; !ok && !config {
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

// stub is the metadata kept of a workload that is not an ECK operator: enough to find it, to
// patch the status annotation the guard once wrote (the JSON patch tests the resource version),
// and to know it is being deleted. The labels, other annotations, owners and spec go.
func stub(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp, Annotations: guardKeys(m.Annotations)}
}

// guardKeys is the entries of m whose keys are the guard's, or nil.
func guardKeys(m map[string]string) map[string]string {
	var out map[string]string
	for k, v := range m {
		if strings.HasPrefix(k, guardPrefix) {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// Input gathers what policy needs to decide about a workload in namespace.
func Input(ctx context.Context, l Lookup, namespace string, w Workload, defaults policy.Defaults) (policy.Input, error) {
	return input(ctx, l, namespace, w, defaults, nil)
}

// input is Input with, if not nil, a ConfigMap under admission: the write's copy, not read
// again (from the cache, or from the API server for one the cache does not hold).
func input(ctx context.Context, l Lookup, namespace string, w Workload, defaults policy.Defaults, admitted *corev1.ConfigMap) (policy.Input, error) {
	read := func(name string) (*corev1.ConfigMap, error) {
		if admitted != nil && admitted.Name == name {
			return admitted, nil
		}
		return l.ConfigMap(ctx, namespace, name)
	}
	w.Operator.Namespace = namespace
	in := policy.Input{Operator: w.Operator, Template: w.Template, WorkloadAnnotations: w.Annotations, Defaults: defaults}
	ns, err := l.Namespace(ctx, namespace)
	if err != nil {
		return in, err
	}
	ns.Into(&in)
	if w.Operator.ConfigMapName != "" {
		if in.ConfigMap, err = read(w.Operator.ConfigMapName); err != nil {
			return in, err
		}
	}
	for _, name := range eck.ConfigMapRefs(w.Template, w.Operator.ContainerIndex) {
		if _, done := in.ConfigMaps[name]; done || name == w.Operator.ConfigMapName {
			continue
		}
		cm, err := read(name)
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
