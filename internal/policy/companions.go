package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// Certificate is the validity of the cert-manager Certificates the guard requests.
type Certificate struct {
	Duration    time.Duration
	RenewBefore time.Duration
}

// DefaultCertificate is cert-manager's own default validity, written out so that the
// objects say what they get.
var DefaultCertificate = Certificate{Duration: 90 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour}

// Monitor kinds: the Prometheus Operator object the guard writes for a secured operator.
const (
	ServiceMonitorKind = "ServiceMonitor"
	PodMonitorKind     = "PodMonitor"
	// NoMonitor asks for none.
	NoMonitor = "none"
)

// MonitorKinds are the values of AnnotationMonitor and --monitor.
var MonitorKinds = []string{ServiceMonitorKind, PodMonitorKind, NoMonitor}

// DefaultTokenKey is the Secret key of the scrape token when none is named.
const DefaultTokenKey = "token"

// Monitor is the monitor for Prometheus the guard writes beside a secured operator. Maps
// may be shared: read only.
type Monitor struct {
	// Kind is ServiceMonitorKind, PodMonitorKind, or NoMonitor ("" is NoMonitor too).
	Kind string
	// Labels and Annotations are added to the monitor's own.
	Labels      map[string]string
	Annotations map[string]string
	// Interval and ScrapeTimeout are Prometheus durations; "" leaves Prometheus's default.
	Interval      string
	ScrapeTimeout string
	// TokenSecret, if set, is the Secret (in the operator's namespace) whose key TokenKey
	// holds the token scrapers send (authorization.credentials); "" means the scraper's own
	// ServiceAccount token file (bearerTokenFile), which PodMonitors cannot use.
	TokenSecret string
	TokenKey    string
}

// withCompanions is d with the covering policy's certificate and monitor settings on top,
// for a policy that secures. A lifetime merged from the policy and the flags that
// cert-manager would refuse (renewBefore not shorter than duration) gets renewBefore of a
// third of the duration, cert-manager's own default ratio.
func withCompanions(d Defaults, pd v1alpha1.PolicyDefaults) Defaults {
	if pd.ServiceMonitor != nil {
		d.Monitor.Kind = NoMonitor
		if *pd.ServiceMonitor {
			d.Monitor.Kind = ServiceMonitorKind
		}
	}
	if m := pd.Monitor; m != nil {
		if m.Kind != "" {
			d.Monitor.Kind = map[string]string{"None": NoMonitor}[m.Kind]
			if d.Monitor.Kind == "" {
				d.Monitor.Kind = m.Kind
			}
		}
		if len(m.Labels) > 0 {
			d.Monitor.Labels = m.Labels
		}
		if len(m.Annotations) > 0 {
			d.Monitor.Annotations = m.Annotations
		}
		if m.Interval != "" {
			d.Monitor.Interval = m.Interval
		}
		if m.ScrapeTimeout != "" {
			d.Monitor.ScrapeTimeout = m.ScrapeTimeout
		}
		if a := m.Authorization; a != nil {
			d.Monitor.TokenSecret, d.Monitor.TokenKey = a.Name, a.Key
		}
	}
	if cert := pd.Certificate; cert != nil {
		if cert.Duration != nil {
			d.Certificate.Duration = cert.Duration.Duration
		}
		if cert.RenewBefore != nil {
			d.Certificate.RenewBefore = cert.RenewBefore.Duration
		}
		if c := d.Certificate; c.Duration > 0 && c.RenewBefore >= c.Duration {
			d.Certificate.RenewBefore = c.Duration / 3
		}
	}
	return d
}

// companions sets the plan's certificate validity and monitor: the annotations over the
// defaults (the policy's over the flags, already merged), setting by setting; the scrape
// token's only from the namespace's annotations (namespaceOnly).
func (p *Plan) companions(d Defaults, a, namespace map[string]string) *field.Error {
	p.Certificate = d.Certificate
	if p.Certificate == (Certificate{}) {
		p.Certificate = DefaultCertificate
	}
	m := d.Monitor
	kindFrom := field.NewPath("monitor")
	if v, ok := a[keys.AnnotationMonitor]; ok {
		m.Kind, kindFrom = v, annotationPath(keys.AnnotationMonitor)
	}
	if m.Kind == "" || m.Kind == NoMonitor {
		return nil
	}
	if v, ok := a[keys.AnnotationMonitorLabels]; ok {
		m.Labels, _ = parsePairs(v)
	}
	if v, ok := a[keys.AnnotationMonitorAnnotations]; ok {
		m.Annotations, _ = parsePairs(v)
	}
	if v, ok := a[keys.AnnotationScrapeInterval]; ok {
		m.Interval = v
	}
	if v, ok := a[keys.AnnotationScrapeTimeout]; ok {
		m.ScrapeTimeout = v
	}
	if v, ok := a[keys.AnnotationScrapeTokenSecret]; ok {
		m.TokenSecret, m.TokenKey = v, ""
	}
	if v, ok := a[keys.AnnotationScrapeTokenKey]; ok {
		m.TokenKey = v
	}
	if m.TokenSecret != "" && m.TokenKey == "" {
		m.TokenKey = DefaultTokenKey
	}
	if m.Kind == PodMonitorKind && m.TokenSecret == "" {
		return field.Required(kindFrom, fmt.Sprintf("a PodMonitor has no bearerTokenFile: set %s to a Secret with the token of a scraper allowed to get /metrics", keys.AnnotationScrapeTokenSecret))
	}
	if err := checkTimeout(m.Interval, m.ScrapeTimeout); err != "" {
		return field.Invalid(annotationPath(keys.AnnotationScrapeTimeout), m.ScrapeTimeout, err)
	}
	p.Monitor = &m
	return nil
}

// namespaceOnlyKeys choose a credential: the Secret whose token the Prometheus Operator reads
// and scrapers send to the pods the monitor selects. Whoever may write a StatefulSet chooses
// those pods (its selector), so on a workload or its ConfigMap the key would let a tenant have
// any Secret of the namespace sent to a pod of theirs. Only the namespace's owner (its
// annotation), a policy or the flags choose it.
var namespaceOnlyKeys = []string{keys.AnnotationScrapeTokenSecret, keys.AnnotationScrapeTokenKey}

// namespaceOnly refuses, on the workload and its ConfigMap, the keys only a Namespace may set.
func namespaceOnly(in Input) field.ErrorList {
	var errs field.ErrorList
	var cm map[string]string
	if in.ConfigMap != nil {
		cm = in.ConfigMap.Annotations
	}
	for _, a := range []map[string]string{in.WorkloadAnnotations, cm} {
		for _, k := range namespaceOnlyKeys {
			if _, ok := a[k]; ok {
				errs = append(errs, field.Forbidden(annotationPath(k), "may be set on the Namespace only (or in a MetricsSecurityPolicy's defaults.monitor.authorization): it chooses the Secret whose token is sent to the pods the workload selects"))
			}
		}
	}
	return errs
}

// promDuration is a Prometheus duration, as the Prometheus Operator's CRDs accept it.
var (
	promDuration = regexp.MustCompile(`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)
	durationPart = regexp.MustCompile(`([0-9]+)(ms|y|w|d|h|m|s)`)
	durationUnit = map[string]time.Duration{"y": 365 * 24 * time.Hour, "w": 7 * 24 * time.Hour, "d": 24 * time.Hour, "h": time.Hour, "m": time.Minute, "s": time.Second, "ms": time.Millisecond}
)

// parseDuration reads a Prometheus duration.
func parseDuration(v string) (time.Duration, bool) {
	if v == "" || !promDuration.MatchString(v) {
		return 0, false
	}
	var total time.Duration
	for _, part := range durationPart.FindAllStringSubmatch(v, -1) {
		n, err := strconv.ParseInt(part[1], 10, 64)
		if err != nil {
			return 0, false
		}
		total += time.Duration(n) * durationUnit[part[2]]
	}
	return total, true
}

// checkTimeout: Prometheus refuses a scrape timeout longer than the interval.
func checkTimeout(interval, timeout string) string {
	i, iok := parseDuration(interval)
	t, tok := parseDuration(timeout)
	if iok && tok && t > i {
		return fmt.Sprintf("must not be longer than the scrape interval %s (Prometheus refuses it)", interval)
	}
	return ""
}

// parsePairs reads "key=value,key=value".
func parsePairs(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not key=value", pair)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	return out, nil
}

// ownKey reports whether a label or annotation key is the guard's: a monitor must keep them.
func ownKey(k string) bool {
	return strings.HasPrefix(k, "metrics-guard.eck.dev/") || k == keys.LabelManagedBy
}

// validateMonitor checks the monitor settings of annotations (where they are set) or of
// flags (named by the paths given).
func validateMonitor(m Monitor, kindSet, labelsSet, annotationsSet, intervalSet, timeoutSet, secretSet, keySet bool, path func(string) *field.Path) field.ErrorList {
	var errs field.ErrorList
	if kindSet && !slices.Contains(MonitorKinds, m.Kind) {
		errs = append(errs, field.NotSupported(path(keys.AnnotationMonitor), m.Kind, MonitorKinds))
	}
	check := func(key string, set bool, pairs map[string]string, label bool) {
		if !set {
			return
		}
		for _, k := range slices.Sorted(maps.Keys(pairs)) {
			v := pairs[k]
			msgs := validation.IsQualifiedName(k)
			if label {
				msgs = append(msgs, validation.IsValidLabelValue(v)...)
			}
			if ownKey(k) {
				msgs = append(msgs, "is one of the guard's own keys")
			}
			for _, msg := range msgs {
				errs = append(errs, field.Invalid(path(key), k+"="+v, msg))
			}
		}
	}
	check(keys.AnnotationMonitorLabels, labelsSet, m.Labels, true)
	check(keys.AnnotationMonitorAnnotations, annotationsSet, m.Annotations, false)
	for _, d := range []struct {
		key, v string
		set    bool
	}{{keys.AnnotationScrapeInterval, m.Interval, intervalSet}, {keys.AnnotationScrapeTimeout, m.ScrapeTimeout, timeoutSet}} {
		if _, ok := parseDuration(d.v); d.set && !ok {
			errs = append(errs, field.Invalid(path(d.key), d.v, "must be a Prometheus duration such as 30s, 1m or 1h30m"))
		}
	}
	if secretSet {
		for _, msg := range validation.IsDNS1123Subdomain(m.TokenSecret) {
			errs = append(errs, field.Invalid(path(keys.AnnotationScrapeTokenSecret), m.TokenSecret, "must be the name of a Secret: "+msg))
		}
	}
	if keySet {
		for _, msg := range validation.IsConfigMapKey(m.TokenKey) {
			errs = append(errs, field.Invalid(path(keys.AnnotationScrapeTokenKey), m.TokenKey, "must be a Secret key: "+msg))
		}
	}
	return errs
}

// validateMonitorAnnotations checks the monitor annotations that are set.
func validateMonitorAnnotations(a map[string]string) field.ErrorList {
	var m Monitor
	var errs field.ErrorList
	has := func(k string) bool { _, ok := a[k]; return ok }
	m.Kind = a[keys.AnnotationMonitor]
	for key, into := range map[string]*map[string]string{keys.AnnotationMonitorLabels: &m.Labels, keys.AnnotationMonitorAnnotations: &m.Annotations} {
		if v, ok := a[key]; ok {
			pairs, err := parsePairs(v)
			if err != nil {
				errs = append(errs, field.Invalid(annotationPath(key), v, err.Error()+`: write "key=value,key=value"`))
				continue
			}
			*into = pairs
		}
	}
	m.Interval, m.ScrapeTimeout = a[keys.AnnotationScrapeInterval], a[keys.AnnotationScrapeTimeout]
	m.TokenSecret, m.TokenKey = a[keys.AnnotationScrapeTokenSecret], a[keys.AnnotationScrapeTokenKey]
	errs = append(errs, validateMonitor(m, has(keys.AnnotationMonitor), m.Labels != nil, m.Annotations != nil,
		has(keys.AnnotationScrapeInterval), has(keys.AnnotationScrapeTimeout), has(keys.AnnotationScrapeTokenSecret), has(keys.AnnotationScrapeTokenKey), annotationPath)...)
	return errs
}

// monitorFlags names the flags of the monitor settings, for ValidateDefaults.
var monitorFlags = map[string]string{
	keys.AnnotationMonitor:            "--monitor",
	keys.AnnotationMonitorLabels:      "--monitor-labels",
	keys.AnnotationMonitorAnnotations: "--monitor-annotations",
	keys.AnnotationScrapeInterval:     "--scrape-interval",
	keys.AnnotationScrapeTimeout:      "--scrape-timeout",
	keys.AnnotationScrapeTokenSecret:  "--scrape-token-secret",
	keys.AnnotationScrapeTokenKey:     "--scrape-token-key",
}

// validateMonitorFlags checks the monitor settings given as flags.
func validateMonitorFlags(m Monitor) field.ErrorList {
	errs := validateMonitor(m, m.Kind != "", true, true, m.Interval != "", m.ScrapeTimeout != "", m.TokenSecret != "", m.TokenKey != "",
		func(key string) *field.Path { return field.NewPath(monitorFlags[key]) })
	if m.Kind == PodMonitorKind && m.TokenSecret == "" {
		errs = append(errs, field.Required(field.NewPath("--scrape-token-secret"), "a PodMonitor has no bearerTokenFile: name a Secret with the scraper's token"))
	}
	if msg := checkTimeout(m.Interval, m.ScrapeTimeout); msg != "" {
		errs = append(errs, field.Invalid(field.NewPath("--scrape-timeout"), m.ScrapeTimeout, msg))
	}
	return errs
}
