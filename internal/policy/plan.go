package policy

import (
	"fmt"
	"hash/fnv"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// Ports the operator may serve metrics on. The operator runs as non-root, so it cannot
// bind below 1024.
const (
	MinPort = 1024
	MaxPort = 65535
)

// PortSequence is where the metrics port is chosen when none is asked for: 8081 (what
// ECK's Helm chart and docs use), else the first of 8082..8099 that nothing else uses.
var PortSequence = func() []int {
	ports := []int{}
	for p := 8081; p <= 8099; p++ {
		ports = append(ports, p)
	}
	return ports
}()

// defaultWebhookPort is ECK's webhook-port default; it is taken even when eck.yaml is silent.
const defaultWebhookPort = 9443

func newPlan(in Input, annotations map[string]string, cfg *eckconfig.Config) (*Plan, field.ErrorList) {
	used, errs := usedPorts(in, cfg)
	if len(errs) > 0 {
		return nil, errs
	}
	port, err := choosePort(in, annotations, cfg, used)
	if err != nil {
		return nil, field.ErrorList{err}
	}
	dir := certDir(in, annotations, cfg)
	if err := certDirClash(in, annotations, dir); err != nil {
		return nil, field.ErrorList{err}
	}
	plan := &Plan{
		Port:        port,
		Host:        DefaultMetricsHost,
		CertDir:     dir,
		SecretName:  existingSecret(in),
		ServiceName: ServiceName(operatorName(in)),
	}
	if err := plan.companions(in.Defaults, annotations, in.NamespaceAnnotations); err != nil {
		return nil, field.ErrorList{err}
	}
	// A Secret the user brought (the annotation, or a volume the guard did not make: neither
	// its default name nor --tls-secret's) is theirs: a default issuer (flag or policy) must
	// not have cert-manager overwrite it. Only an issuer annotation next to it asks for a
	// Certificate into it.
	own := plan.SecretName != "" && plan.SecretName != SecretName(operatorName(in)) && plan.SecretName != in.Defaults.TLSSecret
	if v, ok := annotations[keys.AnnotationTLSSecret]; ok {
		plan.SecretName, own = v, true
	} else if plan.SecretName == "" {
		plan.SecretName = in.Defaults.TLSSecret
	}
	issuer, kind, group := in.Defaults.Issuer, in.Defaults.IssuerKind, in.Defaults.IssuerGroup
	if own {
		issuer, kind, group = "", "", ""
	}
	if v, ok := annotations[keys.AnnotationIssuer]; ok {
		issuer, kind, group = v, annotations[keys.AnnotationIssuerKind], ""
	}
	if issuer != "" {
		if kind == "" {
			kind = IssuerKind
		}
		plan.Issuer = &IssuerRef{Name: issuer, Kind: kind, Group: group}
		if plan.SecretName == "" {
			plan.SecretName = SecretName(operatorName(in))
		}
	}
	return plan, nil
}

// operatorName is the name companion objects derive from: the workload's, or the
// ConfigMap's when only the ConfigMap is known (ECK names both alike).
func operatorName(in Input) string {
	if in.Operator != nil {
		return in.Operator.Name
	}
	if in.ConfigMap != nil {
		return in.ConfigMap.Name
	}
	return "elastic-operator"
}

// choosePort: the annotation (or flag) if it clashes with nothing; else a metrics-port
// eck.yaml already sets; else the first free port of PortSequence.
func choosePort(in Input, annotations map[string]string, cfg *eckconfig.Config, used map[int]string) (int, *field.Error) {
	requested, where := in.Defaults.Port, field.NewPath("metrics-port")
	if v, ok := annotations[keys.AnnotationMetricsPort]; ok {
		requested, _ = parsePort(v)
		where = annotationPath(keys.AnnotationMetricsPort)
	}
	if requested != 0 {
		if what, taken := used[requested]; taken {
			return 0, field.Invalid(where, requested, fmt.Sprintf("port %d is already used by %s; choose another port", requested, what))
		}
		return requested, nil
	}
	if cfg != nil {
		if p, ok, err := cfg.Int(eck.MetricsPort.Name); err == nil && ok && p >= MinPort && p <= MaxPort {
			if _, taken := used[p]; !taken {
				return p, nil
			}
		}
	}
	for _, p := range PortSequence {
		if _, taken := used[p]; !taken {
			return p, nil
		}
	}
	return 0, field.Invalid(where, 0, fmt.Sprintf("every port from %d to %d is in use: set %s", PortSequence[0], PortSequence[len(PortSequence)-1], keys.AnnotationMetricsPort))
}

func parsePort(v string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || p < MinPort || p > MaxPort {
		return 0, fmt.Errorf("must be a port number from %d to %d", MinPort, MaxPort)
	}
	return p, nil
}

// usedPorts maps each port the operator's pod already uses to a description of its user:
// every declared container and host port (but the metrics port the guard declared
// itself) and every *-port and *-address setting of eck.yaml but metrics-port.
func usedPorts(in Input, cfg *eckconfig.Config) (map[int]string, field.ErrorList) {
	used := map[int]string{}
	if in.Template != nil {
		for i, c := range in.Template.Spec.Containers {
			for _, p := range c.Ports {
				if in.Operator != nil && i == in.Operator.ContainerIndex && p.Name == keys.PortName {
					continue
				}
				what := fmt.Sprintf("container %q port %q", c.Name, p.Name)
				used[int(p.ContainerPort)] = what
				if p.HostPort != 0 {
					used[int(p.HostPort)] = what + " (hostPort)"
				}
			}
		}
	}
	if _, set := configString(cfg, eck.WebhookPort.Name); !set {
		if _, taken := used[defaultWebhookPort]; !taken {
			used[defaultWebhookPort] = "ECK's default webhook-port"
		}
	}
	if cfg == nil {
		return used, nil
	}
	for _, key := range cfg.Keys() {
		if key == eck.MetricsPort.Name || key == eck.MetricsHost.Name {
			continue
		}
		v, ok := cfg.String(key)
		if !ok {
			continue
		}
		what := fmt.Sprintf("eck.yaml %s: %s", key, v)
		switch {
		case strings.HasSuffix(key, "-port"):
			if p, err := strconv.Atoi(v); err == nil && p > 0 {
				used[p] = what
			}
		case strings.HasSuffix(key, "-address"):
			if _, ps, err := net.SplitHostPort(v); err == nil {
				if p, err := strconv.Atoi(ps); err == nil && p > 0 {
					used[p] = what
				}
			}
		}
	}
	return used, nil
}

// certDir: the annotation, else where the TLS volume is already mounted, else eck.yaml's
// metrics-cert-dir, else the flag, else ECK's default.
func certDir(in Input, annotations map[string]string, cfg *eckconfig.Config) string {
	if v, ok := annotations[keys.AnnotationCertDir]; ok {
		return v
	}
	if m := tlsMount(in); m != nil {
		return path.Clean(m.MountPath)
	}
	if cfg != nil {
		if v, ok := cfg.String(eck.MetricsCertDir.Name); ok && validateCertDir(v) == nil {
			return v
		}
	}
	if in.Defaults.CertDir != "" {
		return in.Defaults.CertDir
	}
	return eck.DefaultMetricsCertDir
}

// certDirClash refuses a cert dir where the kubelet could not mount the TLS Secret: the
// path of another mount of the container (the API server would refuse the pod template),
// a parent of one (the Secret would hide it), or a path inside a ConfigMap, Secret or
// projected volume, which the kubelet writes and a mount point cannot be made in.
func certDirClash(in Input, annotations map[string]string, dir string) *field.Error {
	if in.Operator == nil || in.Template == nil {
		return nil
	}
	where := field.NewPath("cert-dir")
	if _, ok := annotations[keys.AnnotationCertDir]; ok {
		where = annotationPath(keys.AnnotationCertDir)
	}
	kinds := map[string]string{}
	for _, v := range in.Template.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			kinds[v.Name] = "ConfigMap"
		case v.Secret != nil:
			kinds[v.Name] = "Secret"
		case v.Projected != nil:
			kinds[v.Name] = "projected"
		case v.DownwardAPI != nil:
			kinds[v.Name] = "downwardAPI"
		}
	}
	c := &in.Template.Spec.Containers[in.Operator.ContainerIndex]
	for _, m := range c.VolumeMounts {
		if m.Name == keys.VolumeName {
			continue
		}
		mp := path.Clean(m.MountPath)
		var why string
		switch {
		case mp == dir:
			why = fmt.Sprintf("volume %s is mounted there already", m.Name)
		case strings.HasPrefix(mp, dir+"/"):
			why = fmt.Sprintf("the certificate would hide volume %s, mounted at %s", m.Name, mp)
		case strings.HasPrefix(dir, mp+"/") && kinds[m.Name] != "":
			why = fmt.Sprintf("it is inside %s volume %s, mounted at %s, where no mount point can be made", kinds[m.Name], m.Name, mp)
		}
		if why != "" {
			return field.Invalid(where, dir, "cannot mount the metrics certificate there: "+why+"; choose a directory of its own")
		}
	}
	return nil
}

func tlsMount(in Input) *corev1.VolumeMount {
	if in.Operator == nil || in.Template == nil {
		return nil
	}
	c := &in.Template.Spec.Containers[in.Operator.ContainerIndex]
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == keys.VolumeName })
	if i < 0 {
		return nil
	}
	return &c.VolumeMounts[i]
}

// existingSecret is the Secret of an existing tls-certificate volume (an install already
// secured by ECK's Helm chart, or by the guard).
func existingSecret(in Input) string {
	if in.Template == nil {
		return ""
	}
	for _, v := range in.Template.Spec.Volumes {
		if v.Name == keys.VolumeName && v.Secret != nil {
			return v.Secret.SecretName
		}
	}
	return ""
}

// ServiceName is the metrics Service the guard creates for an operator. The suffix is one
// ECK's Helm chart never uses, so the names cannot collide with the chart's own objects.
func ServiceName(operator string) string { return dnsName(operator, "-metrics-guard") }

// SecretName is the default TLS Secret of a Certificate the guard requests.
func SecretName(operator string) string { return dnsName(operator, "-metrics-guard-tls") }

// dnsName joins name and suffix within the 63 characters of a DNS label, shortening the
// name with a digest when needed so that distinct names stay distinct.
func dnsName(name, suffix string) string {
	const maxLen = 63
	if len(name)+len(suffix) <= maxLen {
		return name + suffix
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	digest := fmt.Sprintf("%08x", h.Sum32())
	keep := maxLen - len(suffix) - len(digest) - 1
	return strings.TrimRight(name[:keep], "-.") + "-" + digest + suffix
}
