// Package compliance checks an ECK operator against the end state (the README's table), one
// finding per point that is not met, from the settings ECK will actually read. The policy
// status uses it, and so do the tests of every front door.
package compliance

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// Operator checks points 1 and 2 of the end state, with cm as the only ConfigMap there is
// (see Check). It returns the metrics port and the findings; no findings means compliant.
func Operator(op *eck.Operator, tmpl *corev1.PodTemplateSpec, cm *corev1.ConfigMap) (int, []string) {
	v, findings := Check(op, tmpl, func(name string) *corev1.ConfigMap {
		if cm != nil && cm.Name == name {
			return cm
		}
		return nil
	})
	return v.Port, findings
}

// Check judges points 1 and 2 of the end state from what ECK will read (eck.Judge): secure
// metrics on, a fixed port, the TLS Secret mounted where ECK reads the certificate, and the
// container port the metrics Service targets. Each finding names the source that wins.
func Check(op *eck.Operator, tmpl *corev1.PodTemplateSpec, configMaps eck.ConfigMaps) (eck.Verdict, []string) {
	if op.Unknown != "" {
		return eck.Verdict{Exposure: eck.ExposureUnknown}, []string{"unknown: the guard cannot tell what ECK reads: " + op.Unknown}
	}
	v := eck.Judge(op, tmpl, eck.Resolve(tmpl, op.ContainerIndex, configMaps))
	var findings []string
	for _, r := range v.Reasons {
		findings = append(findings, string(v.Exposure)+": "+r)
	}
	if v.Exposure == eck.ExposureNone {
		return v, findings
	}
	c := tmpl.Spec.Containers[op.ContainerIndex]
	declared := -1
	for _, p := range c.Ports {
		if p.Name == keys.PortName {
			declared = int(p.ContainerPort)
		}
	}
	if v.Port != 0 && declared != v.Port {
		findings = append(findings, fmt.Sprintf("container %s: port %q is %d, and ECK serves metrics on %d", c.Name, keys.PortName, declared, v.Port))
	}
	return v, findings
}

// Service checks point 4: a Service labelled for ServiceMonitors selects the operator's
// pods and reaches its metrics port.
func Service(op *eck.Operator, port int, services []corev1.Service) []string {
	for _, svc := range services {
		if svc.Labels[keys.LabelMetricsService] != "true" || svc.Labels[keys.LabelOperator] != op.Name {
			continue
		}
		if len(svc.Spec.Selector) == 0 {
			return []string{fmt.Sprintf("Service %s selects no pods", svc.Name)}
		}
		for k, v := range svc.Spec.Selector {
			if op.Selector[k] != v {
				return []string{fmt.Sprintf("Service %s does not select the operator's pods", svc.Name)}
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort == intstr.FromString(keys.PortName) || p.TargetPort.IntValue() == port {
				return nil
			}
		}
		return []string{fmt.Sprintf("Service %s has no port reaching the metrics port", svc.Name)}
	}
	return []string{"no Service labelled " + keys.LabelMetricsService + " for the operator"}
}
