// Package mutate applies a policy.Plan to an ECK operator's objects. Every function here
// is pure and idempotent: it only adds or sets what the plan needs, upserting by name, and
// never removes a field the user wrote, so applying it twice equals applying it once.
package mutate

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// PodTemplate secures the operator's pod template: the metrics container port, the TLS
// Secret volume and its read-only mount, the settings ECK reads ahead of eck.yaml (e, what
// ECK reads from the template as it is), and the settings digest that restarts the pod when
// they change. It reports whether anything changed.
func PodTemplate(tmpl *corev1.PodTemplateSpec, op *eck.Operator, plan *policy.Plan, e *eck.Effective) bool {
	c := &tmpl.Spec.Containers[op.ContainerIndex]
	changed := upsertPort(c, plan.Port)
	if plan.SecretName != "" {
		changed = upsertSecretVolume(&tmpl.Spec, plan.SecretName) || changed
		changed = upsertMount(c, plan.CertDir) || changed
	}
	changed = overrideSources(c, plan, e) || changed

	hash := plan.Hash()
	current, annotated := tmpl.Annotations[keys.AnnotationMetricsHash]
	if (changed || annotated) && current != hash {
		if tmpl.Annotations == nil {
			tmpl.Annotations = map[string]string{}
		}
		tmpl.Annotations[keys.AnnotationMetricsHash] = hash
		changed = true
	}
	return changed
}

func upsertPort(c *corev1.Container, port int) bool {
	want := corev1.ContainerPort{Name: keys.PortName, ContainerPort: int32(port), Protocol: corev1.ProtocolTCP}
	for i := range c.Ports {
		p := &c.Ports[i]
		if p.Name != keys.PortName {
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
		if v.Name != keys.VolumeName {
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
		Name:         keys.VolumeName,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}},
	})
	return true
}

func upsertMount(c *corev1.Container, dir string) bool {
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.Name != keys.VolumeName {
			continue
		}
		if strings.TrimRight(m.MountPath, "/") == dir && m.ReadOnly {
			return false
		}
		m.MountPath, m.ReadOnly = dir, true
		return true
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: keys.VolumeName, MountPath: dir, ReadOnly: true})
	return true
}

// overrideSources makes each setting the plan needs effective at the source ECK takes it
// from, above eck.yaml (which ConfigMap edits): every flag that sets it is rewritten, and so
// is every env entry with a value. An env entry that takes its value from elsewhere cannot
// be rewritten, and a plan without a ConfigMap to edit (plan.Flags) has no file: then a flag,
// which wins over both, is added. An envFrom source that may set the variable is outranked
// by an explicit env entry, which is added.
func overrideSources(c *corev1.Container, plan *policy.Plan, e *eck.Effective) bool {
	changed := false
	for _, w := range plan.Settings() {
		s := w.Setting
		// ECK's default cert dir lies under TMPDIR: where the container sets one, eck.yaml
		// (which does not name the default) cannot bring it back, a flag does.
		v := e.Value(s)
		moved := s == eck.MetricsCertDir && !w.InFile && v.Unknown == "" && v.Kind == eck.FromDefault && path.Clean(v.String()) != w.Value
		if s == eck.MetricsCertDir && !w.InFile && !setAbove(e, s) && !moved {
			continue // nothing above eck.yaml moves it, and eck.yaml need not name the default
		}
		if w.IfAbsent && v.Unknown == "" {
			continue // the user's to choose; only a value nobody can know is pinned
		}
		flagged := false
		for _, use := range e.CommandLine.Flags {
			if use.Name != s.Name {
				continue
			}
			flagged = true
			if use.ValueUnknown == "" && sameSetting(s, use.Value, w.Value) {
				continue
			}
			word := e.CommandLine.Words[use.ValueWord]
			text := w.Value
			if use.ValueWord == use.NameWord {
				text = "--" + s.Name + "=" + w.Value
			}
			changed = setWord(c, word, text) || changed
		}
		needFlag := plan.Flags || moved
		entry := false
		for i := range c.Env {
			env := &c.Env[i]
			if env.Name != s.Env() {
				continue
			}
			entry = true
			switch {
			case env.ValueFrom != nil:
				needFlag = true
			case env.Value != w.Value && !sameSetting(s, env.Value, w.Value) || strings.Contains(env.Value, "$("):
				env.Value, changed = w.Value, true
			}
		}
		if !entry && e.EnvFromMaySet(s) {
			c.Env, changed = append(c.Env, corev1.EnvVar{Name: s.Env(), Value: w.Value}), true
		}
		if needFlag && !flagged {
			changed = addFlag(c, e.CommandLine, "--"+s.Name+"="+w.Value) || changed
		}
	}
	return changed
}

// setAbove reports whether a flag, an env entry or an envFrom source may set s.
func setAbove(e *eck.Effective, s eck.Setting) bool {
	if _, ok := e.CommandLine.Last(s.Name); ok {
		return true
	}
	v := e.Value(s)
	return v.Kind == eck.FromEnv || v.Kind == eck.FromEnvFrom || e.EnvFromMaySet(s) || v.Unknown != ""
}

// setWord writes text into the command line word w.
func setWord(c *corev1.Container, w eck.Word, text string) bool {
	list := &c.Args
	if w.Field == "command" {
		list = &c.Command
	}
	if w.Index < 0 || w.Index >= len(*list) || (*list)[w.Index] == text {
		return false
	}
	(*list)[w.Index] = text
	return true
}

// addFlag appends a flag to args, before a "--" that ends the flags. A "--" in the command
// leaves no place for one; policy refuses that command line before a plan is made.
func addFlag(c *corev1.Container, cl *eck.CommandLine, flag string) bool {
	at := len(c.Args)
	if t := cl.Terminator; t >= 0 {
		w := cl.Words[t]
		if w.Field != "args" {
			return false
		}
		at = w.Index
	}
	c.Args = slices.Insert(c.Args, at, flag)
	return true
}

// sameSetting compares values the way ECK reads them.
func sameSetting(s eck.Setting, a, b string) bool {
	switch s.Type {
	case eck.Bool:
		x, errX := strconv.ParseBool(a)
		y, errY := strconv.ParseBool(b)
		return errX == nil && errY == nil && x == y
	case eck.Int:
		return a == b
	}
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// ConfigMap edits eck.yaml in place, where the key lives (data, or binaryData), keeping
// every other key, the order and the comments.
func ConfigMap(cm *corev1.ConfigMap, key string, plan *policy.Plan) (bool, error) {
	text, present := cm.Data[key]
	b, binary := cm.BinaryData[key]
	if !present && binary {
		text = string(b)
	}
	out, changed, err := eckconfig.Apply(text, plan.ConfigChanges()...)
	if err != nil {
		return false, fmt.Errorf("ConfigMap %s/%s key %s: %w", cm.Namespace, cm.Name, key, err)
	}
	switch {
	case !changed && (present || binary):
		return false, nil
	case !present && binary:
		cm.BinaryData[key] = []byte(out)
		return true, nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[key] = out
	return true, nil
}

// ConfigMapLabel marks cm as the config of op (keys.LabelConfigOf), so that the webhook sees
// its every write. It reports whether it changed anything.
func ConfigMapLabel(cm *corev1.ConfigMap, op *eck.Operator) bool {
	if cm.Labels[keys.LabelConfigOf] == op.Name {
		return false
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[keys.LabelConfigOf] = op.Name
	return true
}

// ServiceLabels are the labels that let a ServiceMonitor select an operator's metrics
// Service.
func ServiceLabels(op *eck.Operator) map[string]string {
	return map[string]string{
		keys.LabelMetricsService: "true",
		keys.LabelOperator:       op.Name,
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
		if p.TargetPort == intstr.FromString(keys.PortName) || p.TargetPort == intstr.FromInt32(int32(plan.Port)) {
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
