// Package mutate applies a policy.Plan to an ECK operator's objects. Every function here
// is pure and idempotent: it only adds or sets what the plan needs, upserting by name, and
// never removes a field the user wrote, so applying it twice equals applying it once.
package mutate

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/meta"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// PodTemplate secures the operator's pod template: the metrics container port, the TLS
// Secret volume and its read-only mount, settings ECK would read from the environment or
// flags ahead of eck.yaml, and the settings digest that restarts the pod when they change.
// It reports whether anything changed.
func PodTemplate(tmpl *corev1.PodTemplateSpec, op *eck.Operator, plan *policy.Plan) bool {
	c := &tmpl.Spec.Containers[op.ContainerIndex]
	changed := upsertPort(c, plan.Port)
	if plan.SecretName != "" {
		changed = upsertSecretVolume(&tmpl.Spec, plan.SecretName) || changed
		changed = upsertMount(c, plan.CertDir) || changed
	}
	changed = overrideEnv(c, plan) || changed
	changed = overrideArgs(c, plan) || changed

	hash := plan.Hash()
	current, annotated := tmpl.Annotations[meta.AnnotationMetricsHash]
	if (changed || annotated) && current != hash {
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[meta.AnnotationMetricsHash] = hash
		changed = true
	}
	return changed
}

func upsertPort(c *corev1.Container, port int) bool {
	want := corev1.ContainerPort{Name: meta.PortName, ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}
	for i := range c.Ports {
		p := &c.Ports[i]
		if p.Name != meta.PortName {
			continue
		}
		if p.ContainerPort == want.ContainerPort && (p.Protocol == want.Protocol || p.Protocol == "") {
			return false
		}
		p.ContainerPort, p.Protocol = want.ContainerPort, want.Protocol
		return true
	}
	c.Ports = append(c.Ports, want)
	return true
}

func upsertSecretVolume(spec *corev1.PodSpec, secret string) bool {
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		if v.Name != meta.VolumeName {
			continue
		}
		if v.Secret == nil {
			if v.VolumeSource != (corev1.VolumeSource{}) {
				return false // the user's own source (CSI, projected...): theirs to keep
			}
			v.Secret = &corev1.SecretVolumeSource{}
		}
		changed := false
		if v.Secret.SecretName != secret {
			v.Secret.SecretName, changed = secret, true
		}
		if v.Secret.Optional != nil && *v.Secret.Optional {
			// The certificate must be there when ECK starts: the pod waits for it.
			f := false
			v.Secret.Optional, changed = &f, true
		}
		return changed
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{
		Name:         meta.VolumeName,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}},
	})
	return true
}

func upsertMount(c *corev1.Container, dir string) bool {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.Name != meta.VolumeName {
			continue
		}
		if strings.TrimRight(m.MountPath, "/") == dir && m.ReadOnly {
			return false
		}
		m.MountPath, m.ReadOnly = dir, true
		return true
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: meta.VolumeName, MountPath: dir, ReadOnly: true})
	return true
}

// overrides are the metrics settings ECK also reads from environment variables and flags,
// which take precedence over eck.yaml. Values set there are set to the plan's too.
func overrides(plan *policy.Plan) map[string]string {
	return map[string]string{
		eckconfig.KeyMetricsPort:    strconv.Itoa(plan.Port),
		eckconfig.KeyMetricsSecure:  "true",
		eckconfig.KeyMetricsCertDir: plan.CertDir,
	}
}

func overrideEnv(c *corev1.Container, plan *policy.Plan) bool {
	changed := false
	for key, want := range overrides(plan) {
		name := strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
		for i := range c.Env {
			e := &c.Env[i]
			if e.Name == name && e.ValueFrom == nil && !sameSetting(key, e.Value, want) {
				e.Value, changed = want, true
			}
		}
	}
	return changed
}

func overrideArgs(c *corev1.Container, plan *policy.Plan) bool {
	changed := false
	for key, want := range overrides(plan) {
		for i, a := range c.Args {
			name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if ok && strings.HasPrefix(a, "-") && name == key && !sameSetting(key, value, want) {
				c.Args[i], changed = a[:len(a)-len(value)]+want, true
			}
		}
	}
	return changed
}

// sameSetting compares values the way ECK reads them.
func sameSetting(key, a, b string) bool {
	if key == eckconfig.KeyMetricsSecure {
		x, errX := strconv.ParseBool(a)
		y, errY := strconv.ParseBool(b)
		return errX == nil && errY == nil && x == y
	}
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// ConfigMap edits eck.yaml in place, keeping every other key, the order and the comments.
func ConfigMap(cm *corev1.ConfigMap, key string, plan *policy.Plan) (bool, error) {
	text := cm.Data[key]
	out, changed, err := eckconfig.Apply(text, plan.ConfigChanges()...)
	if err != nil {
		return false, fmt.Errorf("ConfigMap %s/%s key %s: %w", cm.Namespace, cm.Name, key, err)
	}
	if !changed {
		if _, present := cm.Data[key]; present {
			return false, nil
		}
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[key] = out
	return true, nil
}

// ServiceLabels are the labels that let a ServiceMonitor select an operator's metrics
// Service.
func ServiceLabels(op *eck.Operator) map[string]string {
	return map[string]string{
		meta.LabelMetricsService: "true",
		meta.LabelOperator:       op.Name,
	}
}

// IsMetricsService reports whether svc exposes op's metrics: it is the guard's own, or it
// selects the operator's pods and targets the metrics port.
func IsMetricsService(svc *corev1.Service, op *eck.Operator, plan *policy.Plan) bool {
	if svc.Namespace != op.Namespace {
		return false
	}
	if svc.Name == plan.ServiceName {
		return true
	}
	if len(svc.Spec.Selector) == 0 || !maps.Equal(svc.Spec.Selector, op.Selector) {
		return false
	}
	for _, p := range svc.Spec.Ports {
		if p.TargetPort == intstr.FromString(meta.PortName) || p.TargetPort == intstr.FromInt32(int32(plan.Port)) {
			return true
		}
	}
	return false
}

// Service labels an existing metrics Service; nothing else of it is changed.
func Service(svc *corev1.Service, op *eck.Operator) bool {
	changed := false
	for k, v := range ServiceLabels(op) {
		if svc.Labels[k] != v {
			if svc.Labels == nil {
				svc.Labels = map[string]string{}
			}
			svc.Labels[k], changed = v, true
		}
	}
	return changed
}
