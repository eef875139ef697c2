// Package eck models what an Elastic (ECK) operator reads and serves, purely from its
// objects: it recognises the workload, resolves the settings ECK will read (flags, env,
// envFrom, the config file the kubelet materialises, defaults) with the source of each, and
// judges the metrics endpoint from them.
//
// Recognition never relies on object names: an ECK operator is a workload with a container
// from an image named eck-operator* (the one named "manager" first) that runs ECK's manager.
// What it cannot read it reports as unknown, and unknown is never secured.
package eck

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
)

// MinSecureVersion is the first ECK release that reads metrics-secure. Older operators
// ignore it, so the guard does not pretend to secure them.
var MinSecureVersion = version.MustParseGeneric("2.16.0")

// Operator is what the guard knows about one ECK operator workload.
type Operator struct {
	// Kind is StatefulSet or Deployment.
	Kind      string
	Namespace string
	Name      string

	// ContainerIndex is the index of the "manager" container in the pod template.
	ContainerIndex int

	// ConfigPath is the last --config, e.g. /conf/eck.yaml; "" when there is none.
	ConfigPath string
	// ConfigMapName and ConfigKey locate eck.yaml where the kubelet takes it from: the
	// ConfigMap (of a ConfigMap or projected volume) and its key (in data or binaryData).
	// ConfigMapName is empty when no ConfigMap provides the file.
	ConfigMapName string
	ConfigKey     string
	// Unknown says why the guard cannot tell what the container runs or where its config
	// comes from (then nothing it reports about the operator is secured).
	Unknown string

	// Version is the operator version from the image tag or the app.kubernetes.io/version
	// label; nil when neither says.
	Version *version.Version

	// Selector is the workload's spec.selector.matchLabels, which the metrics Service
	// must use as its selector.
	Selector map[string]string
	// ServiceAccount runs the operator; it needs system:auth-delegator in secure mode.
	ServiceAccount string
}

// SupportsSecureMetrics reports whether the operator reads metrics-secure, and why not.
func (o *Operator) SupportsSecureMetrics() (bool, string) {
	if o.Version == nil {
		return false, "its version is unknown (no image tag and no app.kubernetes.io/version label)"
	}
	if o.Version.LessThan(MinSecureVersion) {
		return false, fmt.Sprintf("ECK %s ignores metrics-secure, which exists since %s: upgrade the operator", o.Version, MinSecureVersion)
	}
	return true, ""
}

// FromStatefulSet recognises an ECK operator StatefulSet; ok is false for anything else.
func FromStatefulSet(sts *appsv1.StatefulSet) (op *Operator, ok bool) {
	return fromWorkload("StatefulSet", &sts.ObjectMeta, sts.Spec.Selector, &sts.Spec.Template)
}

// FromDeployment recognises an ECK operator Deployment (OLM installs); ok is false for
// anything else.
func FromDeployment(d *appsv1.Deployment) (op *Operator, ok bool) {
	return fromWorkload("Deployment", &d.ObjectMeta, d.Spec.Selector, &d.Spec.Template)
}

func fromWorkload(kind string, meta *metav1.ObjectMeta, selector *metav1.LabelSelector, tmpl *corev1.PodTemplateSpec) (*Operator, bool) {
	idx, e, ok := operatorContainer(tmpl)
	if !ok {
		return nil, false // the image, but not the operator: nothing is served
	}
	c := &tmpl.Spec.Containers[idx]
	image := c.Image
	if !IsOperatorImage(image) {
		for _, ic := range tmpl.Spec.InitContainers {
			if IsOperatorImage(ic.Image) {
				image = ic.Image
				break
			}
		}
	}
	op := &Operator{
		Kind:           kind,
		Namespace:      meta.Namespace,
		Name:           meta.Name,
		ContainerIndex: idx,
		ServiceAccount: tmpl.Spec.ServiceAccountName,
		Unknown:        e.CommandLine.Unknown,
	}
	if f := e.File; f != nil {
		op.ConfigPath, op.ConfigMapName, op.ConfigKey = f.Path, f.ConfigMap, f.Key
	}
	if op.ServiceAccount == "" {
		op.ServiceAccount = "default"
	}
	if selector != nil {
		op.Selector = selector.MatchLabels
	}
	op.Version = versionOf(image, meta.Labels, tmpl.Labels)
	return op, true
}

// operatorContainer is the container that runs ECK's manager from the ECK image (or may: one
// the guard cannot read): the one named manager first, else the first. A pod whose only such
// container is a sidecar init container is an operator too, with the first container of the
// image standing for it, and OtherManagers makes its verdict unknown.
func operatorContainer(tmpl *corev1.PodTemplateSpec) (int, *Effective, bool) {
	found, first := -1, -1
	var effective *Effective
	for i := range tmpl.Spec.Containers {
		c := &tmpl.Spec.Containers[i]
		if !IsOperatorImage(c.Image) {
			continue
		}
		if first < 0 {
			first = i
		}
		e := Resolve(tmpl, i, nil)
		if e.CommandLine.NotManager != "" {
			continue // a decoy: it serves nothing, and hides nothing either
		}
		if found < 0 || (c.Name == "manager" && tmpl.Spec.Containers[found].Name != "manager") {
			found, effective = i, e
		}
	}
	if found < 0 {
		if others := OtherManagers(tmpl, -1); len(others) > 0 {
			// Only a sidecar init container runs the manager: an operator, which the guard
			// cannot secure (it secures regular containers).
			idx := max(first, 0)
			e := Resolve(tmpl, idx, nil)
			e.CommandLine = &CommandLine{Terminator: -1, Unknown: others[0] + "; the guard secures the operator in a regular container only"}
			return idx, e, true
		}
	}
	return found, effective, found >= 0
}

// IsOperatorImage reports whether an image reference names the ECK operator: its basename
// starts with eck-operator, on any registry, with any tag or digest (-ubi, -fips variants).
func IsOperatorImage(image string) bool {
	return strings.HasPrefix(imageName(image), "eck-operator")
}

// imageName returns the last path element of an image reference without tag or digest.
func imageName(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	name := ref[strings.LastIndex(ref, "/")+1:]
	name, _, _ = strings.Cut(name, ":")
	return name
}

// imageTag returns the tag of an image reference, or "".
func imageTag(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	last := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, _ := strings.Cut(last, ":")
	return tag
}

func versionOf(image string, labelSets ...map[string]string) *version.Version {
	if v, err := version.ParseGeneric(strings.TrimPrefix(imageTag(image), "v")); err == nil {
		return v
	}
	for _, labels := range labelSets {
		if v := LabelVersion(labels); v != nil {
			return v
		}
	}
	return nil
}

// LabelVersion reads the app.kubernetes.io/version label that ECK's manifests and chart
// put on the operator's objects (its ConfigMap too); nil when absent or not a version.
func LabelVersion(labels map[string]string) *version.Version {
	v, err := version.ParseGeneric(strings.TrimPrefix(labels["app.kubernetes.io/version"], "v"))
	if err != nil {
		return nil
	}
	return v
}

// configMarkers are keys of eck.yaml; a ConfigMap value holding one of them at the start
// of a line is taken for an ECK config even when its key is not eck.yaml.
var configMarkers = []string{"operator-namespace:", "metrics-port:", "metrics-secure:", "metrics-host:", "metrics-cert-dir:", "enable-webhook:", "ca-cert-validity:", "log-verbosity:"}

// DefaultConfigKey is where ECK's manifests and Helm chart put the operator config.
const DefaultConfigKey = "eck.yaml"

// ConfigKeyOf returns the key of a ConfigMap that looks like an ECK operator config: the
// key eck.yaml (in data or binaryData), or a *.yaml key holding eck.yaml settings. The webhook configuration's
// matchConditions use the same test.
func ConfigKeyOf(cm *corev1.ConfigMap) (string, bool) {
	if _, ok := cm.Data[DefaultConfigKey]; ok {
		return DefaultConfigKey, true
	}
	if _, ok := cm.BinaryData[DefaultConfigKey]; ok {
		return DefaultConfigKey, true
	}
	for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
		if (strings.HasSuffix(key, ".yaml") || strings.HasSuffix(key, ".yml")) && LooksLikeConfig(cm.Data[key]) {
			return key, true
		}
	}
	return "", false
}

// LooksLikeConfig reports whether text holds eck.yaml settings: a line that starts with one
// of configMarkers. A workload may mount its eck.yaml from a key of any name (items).
func LooksLikeConfig(text string) bool {
	for _, m := range configMarkers {
		if strings.HasPrefix(text, m) || strings.Contains(text, "\n"+m) {
			return true
		}
	}
	return false
}

// IsOperatorConfig reports whether a ConfigMap is labelled as an ECK operator's own config, as
// Elastic's manifests (control-plane: elastic-operator) and Helm chart
// (app.kubernetes.io/name: elastic-operator, helm.sh/chart: eck-operator-*) label it, and
// holds eck.yaml. Unlike ConfigKeyOf, it does not guess from the content.
func IsOperatorConfig(cm *corev1.ConfigMap) bool {
	if cm == nil {
		return false
	}
	if _, ok := cm.Data[DefaultConfigKey]; !ok {
		return false
	}
	l := cm.Labels
	return l["control-plane"] == "elastic-operator" || l["app.kubernetes.io/name"] == "elastic-operator" ||
		strings.HasPrefix(l["helm.sh/chart"], "eck-operator-")
}

// FromObject recognises an ECK operator in a StatefulSet or a Deployment and returns its
// pod template too; ok is false for anything else.
func FromObject(obj any) (op *Operator, template *corev1.PodTemplateSpec, ok bool) {
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		op, ok = FromStatefulSet(o)
		return op, &o.Spec.Template, ok
	case *appsv1.Deployment:
		op, ok = FromDeployment(o)
		return op, &o.Spec.Template, ok
	}
	return nil, nil, false
}
