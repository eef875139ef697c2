// Package policy decides whether an ECK operator is guarded and how: the metrics port,
// the certificate source and the cert dir. It returns a Plan or field errors that name
// the annotation and what is allowed; it changes nothing itself (package mutate does).
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eckconfig"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// DefaultMetricsHost is written when eck.yaml sets no metrics-host.
const DefaultMetricsHost = "0.0.0.0"

// Issuer kinds accepted by AnnotationIssuerKind.
const (
	IssuerKind        = "Issuer"
	ClusterIssuerKind = "ClusterIssuer"
)

// Defaults are what the guard uses when an operator's annotations say nothing: the
// command-line flags of the CLI and the server, under those of the covering
// MetricsSecurityPolicy (Input.Coverage).
type Defaults struct {
	// Port is the metrics port; 0 picks the first free port of PortSequence.
	Port int
	// CertDir is where the TLS Secret is mounted; "" means ECK's default.
	CertDir string
	// TLSSecret is the Secret to mount; "" means the Certificate's default name when an
	// issuer is set, or no Secret at all.
	TLSSecret string
	// Issuer and IssuerKind request a cert-manager Certificate; IssuerGroup is the issuer's
	// API group, "" for cert-manager.io.
	Issuer      string
	IssuerKind  string
	IssuerGroup string
	// Certificate is the validity of requested Certificates; zero is DefaultCertificate.
	Certificate Certificate
	// Monitor is the monitor for Prometheus written for each secured operator.
	Monitor Monitor
}

// Input is everything known about one operator when a decision is made. Operator and
// Template are nil when only its ConfigMap is known (the ConfigMap is usually created
// before the StatefulSet).
type Input struct {
	NamespaceAnnotations map[string]string
	Operator             *eck.Operator
	Template             *corev1.PodTemplateSpec
	WorkloadAnnotations  map[string]string

	ConfigMap *corev1.ConfigMap
	// ConfigKey is the key of eck.yaml in ConfigMap; "" means Operator's, or eck.yaml.
	ConfigKey string
	// ConfigMaps are the other ConfigMaps the operator's container reads (envFrom,
	// configMapKeyRef; eck.ConfigMapRefs), by name; nil for one that does not exist.
	ConfigMaps map[string]*corev1.ConfigMap

	Defaults Defaults
	// Coverage is the MetricsSecurityPolicy that covers the namespace; nil when none does.
	Coverage *Coverage
	// Admitting is the object under admission: an Enforce policy denies only what that
	// object holds (what its ConfigMap or workload holds is a warning). "" (the controller,
	// the CLI) puts every violation into Denied.
	Admitting Holder
}

// Holder is an object of an operator that can hold a setting a policy forbids.
type Holder string

// Holders.
const (
	HolderWorkload  Holder = "workload"
	HolderConfigMap Holder = "ConfigMap"
)

// Decision is the outcome for one operator. Errs (invalid settings) and Denied (what an
// Enforce policy forbids) mean the request must be denied; with Errs nothing is planned, but
// with Denied the Plan is there, and the controller secures the operator anyway. Plan is nil
// when nothing is to be done, and Skip says why.
type Decision struct {
	Guarded bool
	Plan    *Plan
	// Effective is what ECK reads from the operator's objects as they are (nil when only
	// the ConfigMap is known); mutations use it to reach the sources that win.
	Effective *eck.Effective
	Skip      string
	Warnings  []string
	Errs      field.ErrorList
	Denied    field.ErrorList
}

// deny records a violation of an Enforce policy: denied if the object under admission holds
// it, a warning if another object of the operator does.
func (d *Decision) deny(in Input, holder Holder, err *field.Error) {
	if in.Admitting != "" && in.Admitting != holder {
		d.Warnings = append(d.Warnings, fmt.Sprintf("%s: %s; secured anyway", holder, err.Error()))
		return
	}
	d.Denied = append(d.Denied, err)
}

// Refused is every reason to deny the request, or nil.
func (d Decision) Refused() field.ErrorList {
	if len(d.Errs)+len(d.Denied) == 0 {
		return nil
	}
	return append(slices.Clone(d.Errs), d.Denied...)
}

// Plan is the metrics end state of one guarded operator; package mutate applies it.
type Plan struct {
	Port int
	// Host is written to eck.yaml only when it sets no metrics-host.
	Host    string
	CertDir string
	// SecretName is the TLS Secret mounted at CertDir; "" when there is no certificate
	// source, and ECK then serves a self-signed certificate it makes in memory.
	SecretName string
	// Issuer is set when the controller must request a cert-manager Certificate.
	Issuer *IssuerRef
	// ServiceName is the metrics Service the guard creates when none exists.
	ServiceName string
	// Flags is set when no ConfigMap provides eck.yaml (no --config, or a file from a
	// volume the guard cannot edit): the settings are then given as flags, which win over
	// every other source.
	Flags bool
	// Certificate is the validity of the Certificate requested from Issuer.
	Certificate Certificate
	// Monitor is the monitor for Prometheus to write; nil for none.
	Monitor *Monitor
}

// IssuerRef names a cert-manager issuer.
type IssuerRef struct {
	Name string
	Kind string
	// Group is the issuer's API group; "" means cert-manager.io.
	Group string
}

// ConfigChanges are the eck.yaml edits the plan needs.
func (p *Plan) ConfigChanges() []eckconfig.Change {
	var changes []eckconfig.Change
	for _, a := range p.Settings() {
		if a.InFile {
			changes = append(changes, eckconfig.Change{Key: a.Setting.Name, Value: a.Value, IfAbsent: a.IfAbsent, Type: fileTypes[a.Setting.Type]})
		}
	}
	return changes
}

// fileTypes says eckconfig how ECK reads each type of setting.
var fileTypes = map[eck.Type]eckconfig.Type{eck.String: eckconfig.String, eck.Int: eckconfig.Int, eck.Bool: eckconfig.Bool}

// Assignment is a setting the plan makes effective, and its value.
type Assignment struct {
	Setting eck.Setting
	Value   string
	// InFile says eck.yaml gets it (IfAbsent: only when eck.yaml sets none); mutate also sets
	// it at every source ECK reads ahead of eck.yaml.
	InFile, IfAbsent bool
}

// Settings are what the plan makes effective, in the order eck.yaml gets them: the one list
// the eck.yaml edit and the pod-template mutation both follow.
func (p *Plan) Settings() []Assignment {
	return []Assignment{
		{Setting: eck.MetricsPort, Value: strconv.Itoa(p.Port), InFile: true},
		{Setting: eck.MetricsHost, Value: p.Host, InFile: true, IfAbsent: true},
		{Setting: eck.MetricsSecure, Value: "true", InFile: true},
		{Setting: eck.MetricsCertDir, Value: p.CertDir, InFile: p.CertDir != eck.DefaultMetricsCertDir},
	}
}

// ConfigMapGetter is how the model reads the input's ConfigMaps: the config file's, and the
// others the container reads.
func (in Input) ConfigMapGetter() eck.ConfigMaps {
	return func(name string) *corev1.ConfigMap {
		if in.ConfigMap != nil && in.ConfigMap.Name == name {
			return in.ConfigMap
		}
		return in.ConfigMaps[name]
	}
}

// Effective is what ECK reads from the input's objects, or nil when only the ConfigMap is
// known.
func (in Input) Effective() *eck.Effective {
	if in.Operator == nil || in.Template == nil || in.Operator.ContainerIndex >= len(in.Template.Spec.Containers) {
		return nil
	}
	return eck.Resolve(in.Template, in.Operator.ContainerIndex, in.ConfigMapGetter())
}

// Hash is a digest of the settings the operator reads only at start. It is the value of
// the pod-template annotation, so the pod restarts when, and only when, they change.
func (p *Plan) Hash() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "port=%d\ncertDir=%s\nsecret=%s\nsecure=true\n", p.Port, p.CertDir, p.SecretName))
	return hex.EncodeToString(sum[:8])
}

// Decide is the single decision all front doors (webhook, controller, CLI) share.
func Decide(in Input) Decision {
	var d Decision
	in = in.normalized()
	in.Defaults = in.withPolicy()
	annotations := merged(in)
	guarded, optedOut, why, err := optedIn(in)
	if err != nil {
		d.Errs = append(d.Errs, err)
	}
	d.Errs = append(d.Errs, validateAnnotations(annotations)...)
	d.Errs = append(d.Errs, namespaceOnly(in)...)
	if len(d.Errs) > 0 {
		return d
	}
	switch {
	case guarded:
	case optedOut != "" && in.Enforced():
		if optedOut == "namespace" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s overrides %s: \"false\" on namespace %s", in.Coverage, keys.AnnotationSecure, in.namespace()))
		}
		guarded = true
	case optedOut == "" && in.secures():
		guarded = true
	}
	if !guarded {
		d.Skip = why
		if in.Coverage != nil && in.Operator != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s covers %s %s/%s, and its metrics endpoint is not secured: %s", in.Coverage, in.Operator.Kind, in.Operator.Namespace, in.Operator.Name, why))
		}
		return d
	}
	d.Guarded = true

	if in.Operator != nil {
		if ok, why := in.Operator.SupportsSecureMetrics(); !ok {
			d.Skip = "left unchanged: " + why
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s %s/%s: %s; its metrics endpoint stays unauthenticated", in.Operator.Kind, in.Operator.Namespace, in.Operator.Name, d.Skip))
			return d
		}
		if in.Operator.Unknown != "" {
			d.Skip = "left unchanged: the guard cannot tell what ECK reads: " + in.Operator.Unknown
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s %s/%s: %s; its metrics endpoint may be open", in.Operator.Kind, in.Operator.Namespace, in.Operator.Name, d.Skip))
			return d
		}
		d.Effective = in.Effective()
		if t := d.Effective.CommandLine.Terminator; t >= 0 && d.Effective.CommandLine.Words[t].Field == "command" {
			d.Skip = fmt.Sprintf("left unchanged: the container's command ends ECK's flags with \"--\" (%s), so no flag can be set", d.Effective.CommandLine.Words[t])
			d.Warnings = append(d.Warnings, d.Skip)
			return d
		}
	} else if in.ConfigMap != nil {
		if v := eck.LabelVersion(in.ConfigMap.Labels); v != nil && v.LessThan(eck.MinSecureVersion) {
			d.Skip = fmt.Sprintf("left unchanged: ECK %s ignores metrics-secure, which exists since %s", v, eck.MinSecureVersion)
			d.Warnings = append(d.Warnings, "ConfigMap "+in.ConfigMap.Name+": "+d.Skip)
			return d
		}
	}

	// What an Enforce policy forbids, on an operator it can secure (nothing is enforced on
	// the others). Whether a write weakens the endpoint is judged on the result, by the
	// engine.
	for _, v := range violations(in) {
		d.deny(in, v.holder, v.err)
	}

	cfg, err := parseConfig(in)
	if err != nil {
		d.Errs = append(d.Errs, err)
		return d
	}
	plan, errs := newPlan(in, annotations, cfg)
	if len(errs) > 0 {
		d.Errs = errs
		return d
	}
	plan.Flags = in.Operator != nil && in.Operator.ConfigMapName == ""
	if plan.Flags {
		d.Warnings = append(d.Warnings, fmt.Sprintf("no ConfigMap provides ECK's config file (%s): the metrics settings are set as flags", configFileOf(in.Operator)))
	}
	if host := d.effectiveHost(cfg); host != "" {
		if isLoopback(host) {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s is %s, so scrapers cannot reach the metrics through the Service; remove it or set 0.0.0.0", eck.MetricsHost.Name, host))
		} else if why := eck.BindProblem(host); why != "" {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s is %s: %s; the operator cannot serve its metrics", eck.MetricsHost.Name, host, why))
		}
	}
	if plan.SecretName == "" {
		d.Warnings = append(d.Warnings, fmt.Sprintf("no certificate source: set %s or %s; until then the operator serves metrics with a self-signed certificate that scrapers cannot verify", keys.AnnotationTLSSecret, keys.AnnotationIssuer))
	}
	d.Plan = plan
	return d
}

// Key is where eck.yaml lives in the input's ConfigMap.
func (in Input) Key() string {
	switch {
	case in.ConfigKey != "":
		return in.ConfigKey
	case in.Operator != nil:
		return in.Operator.ConfigKey
	}
	return "eck.yaml"
}

// configFileOf describes where an operator's config file comes from, for messages.
func configFileOf(op *eck.Operator) string {
	if op.ConfigPath == "" {
		return "no --config flag"
	}
	return "--config=" + op.ConfigPath
}

// effectiveHost is the metrics host ECK will bind, from the sources above eck.yaml, else
// from eck.yaml as it is; "" when unknown or unset.
func (d *Decision) effectiveHost(cfg *eckconfig.Config) string {
	if d.Effective != nil {
		if v := d.Effective.Value(eck.MetricsHost); v.Unknown == "" && v.Kind != eck.FromDefault && v.Kind != eck.FromFile {
			return v.String()
		}
	}
	host, _ := configString(cfg, eck.MetricsHost.Name)
	return host
}

// configText is the text of the input's eck.yaml, from data or binaryData.
func (in Input) configText(key string) (string, bool) {
	if text, ok := in.ConfigMap.Data[key]; ok {
		return text, true
	}
	b, ok := in.ConfigMap.BinaryData[key]
	return string(b), ok
}

func parseConfig(in Input) (*eckconfig.Config, *field.Error) {
	if in.ConfigMap == nil {
		return nil, nil
	}
	key := in.Key()
	text, ok := in.configText(key)
	if !ok {
		return nil, nil
	}
	cfg, err := eckconfig.Parse(text)
	if err != nil {
		return nil, field.Invalid(field.NewPath("data").Key(key), "(eck.yaml)",
			fmt.Sprintf("ConfigMap %s/%s: %v", in.ConfigMap.Namespace, in.ConfigMap.Name, err))
	}
	return cfg, nil
}

// merged returns the annotations that choose settings: the namespace's, overridden by the
// ConfigMap's, overridden by the workload's. A namespace can so choose the issuer of every
// operator in it.
func merged(in Input) map[string]string {
	out := map[string]string{}
	for k, v := range in.NamespaceAnnotations {
		out[k] = v
	}
	if in.ConfigMap != nil {
		for k, v := range in.ConfigMap.Annotations {
			out[k] = v
		}
	}
	for k, v := range in.WorkloadAnnotations {
		out[k] = v
	}
	return out
}

// optedIn: the workload's annotation wins over its ConfigMap's, which wins over the
// namespace's. When not guarded, it says why, and optedOut names the holder of a "false".
func optedIn(in Input) (guarded bool, optedOut, why string, err *field.Error) {
	var cm map[string]string
	if in.ConfigMap != nil {
		cm = in.ConfigMap.Annotations
	}
	for i, a := range []map[string]string{in.WorkloadAnnotations, cm, in.NamespaceAnnotations} {
		v, ok := a[keys.AnnotationSecure]
		if !ok {
			continue
		}
		holder := []string{"workload", "ConfigMap", "namespace"}[i]
		switch v {
		case "true":
			return true, "", "", nil
		case "false":
			return false, holder, fmt.Sprintf("opted out: the %s has %s: \"false\"", holder, keys.AnnotationSecure), nil
		}
		return false, "", "", field.NotSupported(annotationPath(keys.AnnotationSecure), v, []string{"true", "false"})
	}
	if in.Coverage != nil && !in.secures() {
		return false, "", fmt.Sprintf("not opted in: %s only audits, and neither the object nor its namespace has %s: \"true\"", in.Coverage, keys.AnnotationSecure), nil
	}
	return false, "", "not opted in: neither the object nor its namespace has " + keys.AnnotationSecure + `: "true"`, nil
}

func annotationPath(key string) *field.Path {
	return field.NewPath("metadata", "annotations").Key(key)
}

func validateAnnotations(a map[string]string) field.ErrorList {
	var errs field.ErrorList
	if v, ok := a[keys.AnnotationMetricsPort]; ok {
		if _, err := parsePort(v); err != nil {
			errs = append(errs, field.Invalid(annotationPath(keys.AnnotationMetricsPort), v, err.Error()))
		}
	}
	for _, key := range []string{keys.AnnotationTLSSecret, keys.AnnotationIssuer} {
		if v, ok := a[key]; ok {
			for _, msg := range validation.IsDNS1123Subdomain(v) {
				errs = append(errs, field.Invalid(annotationPath(key), v, "must be the name of a "+map[string]string{keys.AnnotationTLSSecret: "Secret", keys.AnnotationIssuer: "cert-manager issuer"}[key]+": "+msg))
			}
		}
	}
	if v, ok := a[keys.AnnotationIssuerKind]; ok {
		if v != IssuerKind && v != ClusterIssuerKind {
			errs = append(errs, field.NotSupported(annotationPath(keys.AnnotationIssuerKind), v, []string{IssuerKind, ClusterIssuerKind}))
		} else if _, ok := a[keys.AnnotationIssuer]; !ok {
			errs = append(errs, field.Required(annotationPath(keys.AnnotationIssuer), keys.AnnotationIssuerKind+" needs "+keys.AnnotationIssuer))
		}
	}
	if v, ok := a[keys.AnnotationCertDir]; ok {
		if err := validateCertDir(v); err != nil {
			errs = append(errs, field.Invalid(annotationPath(keys.AnnotationCertDir), v, err.Error()))
		}
	}
	return append(errs, validateMonitorAnnotations(a)...)
}

// ValidateDefaults checks defaults given on a command line, naming the flag.
func ValidateDefaults(d Defaults) error {
	var problems []string
	if d.Port != 0 && (d.Port < MinPort || d.Port > MaxPort) {
		problems = append(problems, fmt.Sprintf("--metrics-port %d: must be between %d and %d", d.Port, MinPort, MaxPort))
	}
	if d.CertDir != "" {
		if err := validateCertDir(d.CertDir); err != nil {
			problems = append(problems, fmt.Sprintf("--cert-dir %q: %v", d.CertDir, err))
		}
	}
	if d.IssuerKind != "" && d.IssuerKind != IssuerKind && d.IssuerKind != ClusterIssuerKind {
		problems = append(problems, fmt.Sprintf("--issuer-kind %q: must be %s or %s", d.IssuerKind, IssuerKind, ClusterIssuerKind))
	}
	for flag, v := range map[string]string{"--tls-secret": d.TLSSecret, "--issuer": d.Issuer} {
		if v == "" {
			continue
		}
		if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
			problems = append(problems, fmt.Sprintf("%s %q: %s", flag, v, strings.Join(msgs, "; ")))
		}
	}
	for _, err := range validateMonitorFlags(d.Monitor) {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("invalid flags: %s", strings.Join(problems, ", "))
	}
	return nil
}

func configString(cfg *eckconfig.Config, key string) (string, bool) {
	if cfg == nil {
		return "", false
	}
	return cfg.String(key)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validateCertDir(dir string) error {
	if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
		return fmt.Errorf("must be a clean absolute path other than /")
	}
	return nil
}
