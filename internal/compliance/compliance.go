// Package compliance checks an ECK operator against the end state of DESIGN.md, one
// finding per point that is not met. Tests of every front door use it, and so can reports.
package compliance

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/meta"
)

// Operator checks points 1 and 2 of the end state: eck.yaml turns secure metrics on, and
// the pod template declares the port and mounts a required TLS Secret where ECK reads it.
// It returns the metrics port and the findings; no findings means compliant.
func Operator(op *eck.Operator, tmpl *corev1.PodTemplateSpec, cm *corev1.ConfigMap) (int, []string) {
	var findings []string
	if cm == nil {
		return 0, []string{fmt.Sprintf("ConfigMap %s with eck.yaml not found", op.ConfigMapName)}
	}
	cfg, err := eckconfig.Parse(cm.Data[op.ConfigKey])
	if err != nil {
		return 0, []string{fmt.Sprintf("ConfigMap %s key %s: %v", cm.Name, op.ConfigKey, err)}
	}
	port, _, err := cfg.Int(eckconfig.KeyMetricsPort)
	if err != nil || port == 0 {
		findings = append(findings, "eck.yaml: metrics-port is not set")
	}
	if secure, _, err := cfg.Bool(eckconfig.KeyMetricsSecure); err != nil || !secure {
		findings = append(findings, "eck.yaml: metrics-secure is not true")
	}
	certDir := eckconfig.DefaultMetricsCertDir
	if v, ok := cfg.String(eckconfig.KeyMetricsCertDir); ok {
		certDir = path.Clean(v)
	}

	c := tmpl.Spec.Containers[op.ContainerIndex]
	findings = append(findings, overrides(c, port, certDir)...)
	declared := -1
	for _, p := range c.Ports {
		if p.Name == meta.PortName {
			declared = int(p.ContainerPort)
		}
	}
	if declared != port {
		findings = append(findings, fmt.Sprintf("container %s: port %q is %d, eck.yaml metrics-port is %d", c.Name, meta.PortName, declared, port))
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.Name == meta.VolumeName && path.Clean(m.MountPath) == certDir && m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		findings = append(findings, fmt.Sprintf("container %s: volume %s is not mounted read-only at %s", c.Name, meta.VolumeName, certDir))
	}
	secret := false
	for _, v := range tmpl.Spec.Volumes {
		if v.Name == meta.VolumeName && v.Secret != nil && v.Secret.SecretName != "" && (v.Secret.Optional == nil || !*v.Secret.Optional) {
			secret = true
		}
	}
	if !secret {
		findings = append(findings, fmt.Sprintf("volume %s is not a required Secret", meta.VolumeName))
	}
	return port, findings
}

// overrides finds environment variables and flags of the manager container that ECK reads
// ahead of eck.yaml and that turn secure metrics off, or move the port or the cert dir.
func overrides(c corev1.Container, port int, certDir string) []string {
	var findings []string
	check := func(where, key, value string) {
		switch key {
		case eckconfig.KeyMetricsSecure:
			if on, err := strconv.ParseBool(value); err != nil || !on {
				findings = append(findings, fmt.Sprintf("container %s: %s sets %s to %q, over eck.yaml", c.Name, where, key, value))
			}
		case eckconfig.KeyMetricsPort:
			if value != strconv.Itoa(port) {
				findings = append(findings, fmt.Sprintf("container %s: %s sets %s to %q, over eck.yaml's %d", c.Name, where, key, value, port))
			}
		case eckconfig.KeyMetricsCertDir:
			if path.Clean(value) != certDir {
				findings = append(findings, fmt.Sprintf("container %s: %s sets %s to %q, not %s where the certificate is", c.Name, where, key, value, certDir))
			}
		}
	}
	for _, key := range []string{eckconfig.KeyMetricsSecure, eckconfig.KeyMetricsPort, eckconfig.KeyMetricsCertDir} {
		name := strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
		for _, e := range c.Env {
			switch {
			case e.Name != name:
			case e.ValueFrom != nil:
				findings = append(findings, fmt.Sprintf("container %s: env %s takes %s from elsewhere (valueFrom), over eck.yaml", c.Name, name, key))
			default:
				check("env "+name, key, e.Value)
			}
		}
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(strings.TrimLeft(a, "-"), key+"="); ok && strings.HasPrefix(a, "-") {
				check("flag --"+key, key, v)
			}
		}
	}
	return findings
}

// Service checks point 4: a Service labelled for ServiceMonitors selects the operator's
// pods and reaches its metrics port.
func Service(op *eck.Operator, port int, services []corev1.Service) []string {
	for _, svc := range services {
		if svc.Labels[meta.LabelMetricsService] != "true" || svc.Labels[meta.LabelOperator] != op.Name {
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
			if p.TargetPort == intstr.FromString(meta.PortName) || p.TargetPort.IntValue() == port {
				return nil
			}
		}
		return []string{fmt.Sprintf("Service %s has no port reaching the metrics port", svc.Name)}
	}
	return []string{"no Service labelled " + meta.LabelMetricsService + " for the operator"}
}
