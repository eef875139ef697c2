package captures

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
)

// Lookup is the guard's cached lookup (cluster.CachedLookup) over the stored objects of
// State, trimmed by cluster.Transform and copied out on every read, as the manager's
// informer cache does: what a running guard's handler reads.
func Lookup() (cluster.Lookup, error) {
	objs, err := State()
	if err != nil {
		return nil, err
	}
	r := &Reader{}
	for _, o := range objs {
		if _, err := cluster.Transform(o); err != nil {
			return nil, err
		}
		r.objects = append(r.objects, o)
	}
	return cluster.CachedLookup{Reader: r}, nil
}

// Reader is a client.Reader over objects in memory that copies every object it returns.
type Reader struct {
	objects []client.Object
}

var _ client.Reader = &Reader{}

// Get implements client.Reader.
func (r *Reader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	for _, o := range r.objects {
		if o.GetName() != key.Name || o.GetNamespace() != key.Namespace {
			continue
		}
		switch into := obj.(type) {
		case *metav1.PartialObjectMetadata:
			if ns, ok := o.(*corev1.Namespace); ok {
				into.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
				ns.ObjectMeta.DeepCopyInto(&into.ObjectMeta)
				return nil
			}
		case *corev1.ConfigMap:
			if cm, ok := o.(*corev1.ConfigMap); ok {
				cm.DeepCopyInto(into)
				return nil
			}
		case *appsv1.StatefulSet:
			if sts, ok := o.(*appsv1.StatefulSet); ok {
				sts.DeepCopyInto(into)
				return nil
			}
		default:
			return fmt.Errorf("captures: cannot read a %T", obj)
		}
	}
	return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
}

// List implements client.Reader: only the namespace option is honoured.
func (r *Reader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	var o client.ListOptions
	o.ApplyOptions(opts)
	switch l := list.(type) {
	case *appsv1.StatefulSetList:
		for _, obj := range r.objects {
			if sts, ok := obj.(*appsv1.StatefulSet); ok && (o.Namespace == "" || sts.Namespace == o.Namespace) {
				l.Items = append(l.Items, *sts.DeepCopy())
			}
		}
	case *appsv1.DeploymentList, *v1alpha1.MetricsSecurityPolicyList:
	default:
		return fmt.Errorf("captures: cannot list %T", list)
	}
	return nil
}
