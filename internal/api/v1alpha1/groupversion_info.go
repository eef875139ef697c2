// Package v1alpha1 is the metrics-guard.eck.dev/v1alpha1 API: the MetricsSecurityPolicy with
// which a platform team makes the guard cover ECK operators by namespace, and enforce it.
//
// +kubebuilder:object:generate=true
// +groupName=metrics-guard.eck.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "metrics-guard.eck.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this API with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
