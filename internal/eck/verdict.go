package eck

import (
	"fmt"
	"net"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Exposure is what a scraper meets on an operator's metrics endpoint, by the effective
// settings.
type Exposure string

// Exposures, from the weakest.
const (
	// ExposureOpen: plain HTTP, no authentication, on a fixed or a random port.
	ExposureOpen Exposure = "open"
	// ExposureUnknown: the guard cannot tell what ECK reads; never compliant.
	ExposureUnknown Exposure = "unknown"
	// ExposureIncomplete: TLS with token checks, but not the end state: a random port, no
	// certificate mounted where ECK reads it, an address ECK cannot bind.
	ExposureIncomplete Exposure = "incomplete"
	// ExposureSecured: TLS with token checks, on a fixed port, with the mounted certificate.
	ExposureSecured Exposure = "secured"
	// ExposureNone: the workload runs the ECK image but not its manager: nothing is served.
	ExposureNone Exposure = "none"
)

// rank orders exposures for Enforce: a write may not lower it.
func (x Exposure) rank() int {
	switch x {
	case ExposureSecured, ExposureNone:
		return 3
	case ExposureIncomplete:
		return 2
	case ExposureUnknown:
		return 1
	}
	return 0
}

// Weaker reports whether x is less secure than y.
func (x Exposure) Weaker(y Exposure) bool { return x.rank() < y.rank() }

// Verdict is the judgement on one operator: its exposure, the port it serves on (0:
// random or unknown), and the reasons, each naming the source that wins.
type Verdict struct {
	Exposure Exposure
	Port     int
	CertDir  string
	Reasons  []string
}

// Secured reports whether the endpoint is proven in the end state.
func (v Verdict) Secured() bool { return v.Exposure == ExposureSecured }

func (v Verdict) String() string {
	if len(v.Reasons) == 0 {
		return string(v.Exposure)
	}
	return string(v.Exposure) + ": " + strings.Join(v.Reasons, "; ")
}

// Judge says how the operator in container i of tmpl serves its metrics, from what ECK
// reads (e), its version, and the TLS Secret mounted where ECK reads the certificate.
func Judge(op *Operator, tmpl *corev1.PodTemplateSpec, e *Effective) Verdict {
	if cl := e.CommandLine; cl.NotManager != "" {
		return Verdict{Exposure: ExposureNone, Reasons: []string{cl.NotManager}}
	}
	var unknown, open, incomplete []string
	if op.Version == nil {
		unknown = append(unknown, "the version is unknown (no image tag and no app.kubernetes.io/version label)")
	} else if op.Version.LessThan(MinSecureVersion) {
		open = append(open, fmt.Sprintf("ECK %s ignores metrics-secure, which exists since %s", op.Version, MinSecureVersion))
	}
	unknown = append(unknown, OtherManagers(tmpl, op.ContainerIndex)...)
	secure, port, dir, host := e.Value(MetricsSecure), e.Value(MetricsPort), e.Value(MetricsCertDir), e.Value(MetricsHost)
	v := Verdict{}
	for _, x := range []Value{secure, port, dir, host} {
		if x.Unknown != "" {
			unknown = append(unknown, x.Describe())
		}
	}
	if port.Unknown == "" {
		v.Port = port.Int()
		switch {
		case v.Port == 0:
			incomplete = append(incomplete, port.Describe()+": ECK picks a random port, which no Service reaches")
		case v.Port < 0 || v.Port > 65535:
			incomplete = append(incomplete, port.Describe()+": not a port, ECK cannot listen and exits")
			v.Port = 0
		}
	}
	if secure.Unknown == "" && !secure.Bool() {
		where := "a random port"
		if v.Port != 0 {
			where = fmt.Sprintf("port %d", v.Port)
		}
		if port.Unknown == "" {
			where += " (" + port.Describe() + ")"
		}
		open = append(open, fmt.Sprintf("%s: plain HTTP without authentication on %s", secure.Describe(), where))
	}
	if dir.Unknown == "" {
		v.CertDir = dir.String()
		if why := certificateMounted(tmpl, op.ContainerIndex, path.Clean(v.CertDir)); why != "" {
			incomplete = append(incomplete, fmt.Sprintf("%s (%s): %s, so ECK serves a self-signed certificate it makes in memory", why, dir.Describe(), "no scraper can verify it"))
		}
	}
	if host.Unknown == "" {
		if why := BindProblem(host.String()); why != "" {
			incomplete = append(incomplete, host.Describe()+": "+why)
		}
	}
	switch {
	case len(open) > 0:
		v.Exposure, v.Reasons = ExposureOpen, append(open, unknown...)
	case len(unknown) > 0:
		v.Exposure, v.Reasons = ExposureUnknown, unknown
	case len(incomplete) > 0:
		v.Exposure, v.Reasons = ExposureIncomplete, incomplete
	default:
		v.Exposure = ExposureSecured
	}
	return v
}

// BindProblem says why ECK cannot listen on host (it joins host and port with a colon, so
// an IPv6 address needs brackets), or "".
func BindProblem(host string) string {
	if strings.Count(host, ":") > 0 && !strings.HasPrefix(host, "[") {
		return fmt.Sprintf("ECK listens on %q, which is not an address: write an IPv6 address in brackets, [%s]", host+":<port>", host)
	}
	if h, ok := strings.CutPrefix(host, "["); ok {
		if ip := net.ParseIP(strings.TrimSuffix(h, "]")); ip == nil || !strings.HasSuffix(h, "]") {
			return fmt.Sprintf("%q is not a bracketed IPv6 address", host)
		}
	}
	return ""
}

// certificateMounted says what is wrong with the TLS Secret mounted at dir in the
// container, or "" when a required Secret volume with tls.crt and tls.key is mounted there
// and nothing shadows it.
func certificateMounted(tmpl *corev1.PodTemplateSpec, i int, dir string) string {
	c := &tmpl.Spec.Containers[i]
	var mount *corev1.VolumeMount
	for j := range c.VolumeMounts {
		m := &c.VolumeMounts[j]
		mp := path.Clean(m.MountPath)
		switch {
		case mp == dir && m.SubPath == "" && m.SubPathExpr == "" && mount == nil:
			mount = m
		case mp == dir || strings.HasPrefix(mp, dir+"/"):
			return fmt.Sprintf("volume %s is mounted at %s, over the certificate", m.Name, mp)
		}
	}
	if mount == nil {
		return "no Secret is mounted at " + dir
	}
	for _, vol := range tmpl.Spec.Volumes {
		if vol.Name != mount.Name {
			continue
		}
		s := vol.Secret
		switch {
		case s == nil:
			return fmt.Sprintf("volume %s mounted at %s is not a Secret", vol.Name, dir)
		case s.Optional != nil && *s.Optional:
			return fmt.Sprintf("Secret volume %s is optional, so the pod may start without the certificate", vol.Name)
		case s.Items != nil && (!keyAt(s.Items, "tls.crt") || !keyAt(s.Items, "tls.key")):
			return fmt.Sprintf("Secret volume %s does not put its tls.crt and tls.key keys at those names", vol.Name)
		}
		return ""
	}
	return fmt.Sprintf("the pod has no volume %s", mount.Name)
}

// keyAt reports whether items put key at the path of the same name.
func keyAt(items []corev1.KeyToPath, key string) bool {
	for _, it := range items {
		if path.Clean(it.Path) == key {
			return it.Key == key
		}
	}
	return false
}
