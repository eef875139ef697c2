package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode is how a MetricsSecurityPolicy acts on the ECK operators it covers.
// +kubebuilder:validation:Enum=Audit;Mutate;Enforce
type Mode string

const (
	// ModeAudit changes nothing: admission warnings and the policy's status report the
	// operators whose metrics endpoint is not secured.
	ModeAudit Mode = "Audit"
	// ModeMutate secures every covered operator, as metrics-guard.eck.dev/secure: "true" on
	// its namespace would; an operator (or its ConfigMap) may still opt out with "false".
	ModeMutate Mode = "Mutate"
	// ModeEnforce secures every covered operator and denies opting out.
	ModeEnforce Mode = "Enforce"
)

// Strength orders modes: a namespace covered by several policies gets the strongest.
func (m Mode) Strength() int {
	switch m {
	case ModeAudit:
		return 1
	case ModeMutate:
		return 2
	case ModeEnforce:
		return 3
	}
	return 0
}

// MetricsSecurityPolicySpec says which namespaces a policy covers, how, and with which
// defaults.
type MetricsSecurityPolicySpec struct {
	// NamespaceSelector selects the namespaces whose ECK operators the policy covers. It is
	// required, so that covering every namespace is said out loud: {} selects them all (the
	// guard's exclusions still apply: kube-system and namespaces labelled
	// metrics-guard.eck.dev/exclude).
	// +required
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Mode is Audit (report only), Mutate (secure, opting out allowed) or Enforce (secure,
	// opting out denied).
	// +kubebuilder:default=Audit
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// Defaults apply to covered operators whose annotations (on the object, its ConfigMap or
	// its namespace) do not choose otherwise. They override the guard's command-line defaults.
	// +optional
	Defaults PolicyDefaults `json:"defaults,omitempty"`
}

// PolicyDefaults are the settings a policy in mode Mutate or Enforce gives the operators it
// covers (an Audit policy changes nothing).
// +kubebuilder:validation:XValidation:rule="!has(self.serviceMonitor) || !has(self.monitor) || !has(self.monitor.kind)",message="set monitor.kind or serviceMonitor, not both"
type PolicyDefaults struct {
	// Issuer is the cert-manager issuer of the Certificate that backs each operator's
	// metrics TLS Secret.
	// +optional
	Issuer *IssuerReference `json:"issuer,omitempty"`

	// MetricsPort is the port the operators serve metrics on; unset picks the first free
	// port from 8081 to 8099.
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=65535
	// +optional
	MetricsPort *int32 `json:"metricsPort,omitempty"`

	// Certificate tunes every Certificate the guard requests for a covered operator, from
	// Issuer or from an issuer its annotations choose.
	// +optional
	Certificate *CertificateDefaults `json:"certificate,omitempty"`

	// ServiceMonitor creates (true) or not (false) a ServiceMonitor for each operator when
	// the Prometheus Operator's CRDs are installed; unset follows the guard's
	// --service-monitor flag.
	// +optional
	ServiceMonitor *bool `json:"serviceMonitor,omitempty"`

	// Monitor is the monitor for Prometheus written for each covered operator: its kind,
	// labels a Prometheus selects it by, scrape settings and the scraper's credentials.
	// +optional
	Monitor *MonitorDefaults `json:"monitor,omitempty"`
}

// MonitorDefaults are the settings of the monitor the guard writes for an operator.
// +kubebuilder:validation:XValidation:rule="!has(self.kind) || self.kind != 'PodMonitor' || has(self.authorization)",message="a PodMonitor has no bearerTokenFile: set authorization to a Secret key with the scraper's token"
type MonitorDefaults struct {
	// Kind is ServiceMonitor (scrape through the metrics Service), PodMonitor (scrape the
	// pods; needs authorization) or None; unset follows the annotations and flags.
	// +kubebuilder:validation:Enum=ServiceMonitor;PodMonitor;None
	// +optional
	Kind string `json:"kind,omitempty"`

	// Labels are added to the monitor, e.g. release: <name> for kube-prometheus-stack.
	// Keys of the guard's own (metrics-guard.eck.dev/, app.kubernetes.io/managed-by) are refused.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations are added to the monitor.
	// +kubebuilder:validation:MaxProperties=32
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// Interval between scrapes (a Prometheus duration, e.g. 30s); unset is Prometheus's.
	// +kubebuilder:validation:Pattern=`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Interval string `json:"interval,omitempty"`

	// ScrapeTimeout of each scrape (a Prometheus duration), not longer than Interval.
	// +kubebuilder:validation:Pattern=`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`
	// +kubebuilder:validation:MaxLength=32
	// +optional
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`

	// Authorization is a Secret key, in each operator's namespace, with the bearer token
	// scrapers send (authorization.credentials) instead of their own ServiceAccount token
	// file: for Prometheus setups that forbid file access, and for PodMonitors.
	// +optional
	Authorization *SecretKeyReference `json:"authorization,omitempty"`
}

// SecretKeyReference is a key of a Secret in the operator's namespace.
type SecretKeyReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Key in the Secret; default token.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=token
	// +optional
	Key string `json:"key,omitempty"`
}

// IssuerReference names a cert-manager Issuer (in the operator's namespace) or ClusterIssuer,
// or an issuer of an external cert-manager issuer project (group and kind of its own).
// +kubebuilder:validation:XValidation:rule="self.group != 'cert-manager.io' || self.kind in ['Issuer', 'ClusterIssuer']",message="kind must be Issuer or ClusterIssuer for group cert-manager.io"
type IssuerReference struct {
	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Kind is Issuer or ClusterIssuer for cert-manager's own issuers; an external issuer's
	// kind otherwise (e.g. AWSPCAClusterIssuer).
	// +kubebuilder:validation:Pattern=`^[A-Z][A-Za-z0-9]*$`
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:default=Issuer
	// +optional
	Kind string `json:"kind,omitempty"`

	// Group is cert-manager.io for cert-manager's own issuers, or an external issuer's API
	// group (e.g. awspca.cert-manager.io).
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:default=cert-manager.io
	// +optional
	Group string `json:"group,omitempty"`
}

// CertificateDefaults are the validity settings of requested Certificates.
// +kubebuilder:validation:XValidation:rule="!has(self.duration) || !has(self.renewBefore) || duration(self.renewBefore) < duration(self.duration)",message="renewBefore must be shorter than duration"
type CertificateDefaults struct {
	// Duration is the certificate's validity, at least one hour (Go duration, e.g. 2160h).
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="must be at least 1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// RenewBefore is how long before expiry cert-manager renews it, at least five minutes
	// (Go duration, e.g. 360h).
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5m')",message="must be at least 5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
}

// MetricsSecurityPolicyStatus reports the operators a policy covers.
type MetricsSecurityPolicyStatus struct {
	// ObservedGeneration is the generation of the spec the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Covered is the number of ECK operators in the selected namespaces.
	// +optional
	Covered int32 `json:"covered"`

	// Compliant is how many of them serve their metrics in the end state.
	// +optional
	Compliant int32 `json:"compliant"`

	// Operators lists every covered ECK operator, sorted by namespace and name.
	// +listType=map
	// +listMapKey=namespace
	// +listMapKey=name
	// +listMapKey=kind
	// +optional
	Operators []OperatorStatus `json:"operators,omitempty"`

	// Conditions: Ready is True once the status describes the current spec.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// OperatorStatus is one covered ECK operator.
type OperatorStatus struct {
	// Namespace of the operator's workload.
	Namespace string `json:"namespace"`
	// Name of the operator's workload.
	Name string `json:"name"`
	// Kind of the workload: StatefulSet, or Deployment for OLM installs.
	Kind string `json:"kind"`
	// Version of ECK, when known.
	// +optional
	Version string `json:"version,omitempty"`
	// Compliant is true when the operator is in the end state.
	Compliant bool `json:"compliant"`
	// Policy is the MetricsSecurityPolicy that governs the operator: of those that select its
	// namespace, the one with the strongest mode (then the first by name). It may be another.
	// +optional
	Policy string `json:"policy,omitempty"`
	// Mode is the governing policy's mode.
	// +optional
	Mode Mode `json:"mode,omitempty"`
	// Reasons say what is missing, or why the operator is left alone.
	// +optional
	Reasons []string `json:"reasons,omitempty"`
}

// MetricsSecurityPolicy makes eck-metrics-guard cover every ECK operator in the namespaces it
// selects: audit them, secure them, or secure them and deny opting out.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=msp,categories=eck-metrics-guard
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Covered",type=integer,JSONPath=`.status.covered`
// +kubebuilder:printcolumn:name="Compliant",type=integer,JSONPath=`.status.compliant`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MetricsSecurityPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MetricsSecurityPolicySpec `json:"spec"`
	// +optional
	Status MetricsSecurityPolicyStatus `json:"status,omitempty"`
}

// MetricsSecurityPolicyList is a list of MetricsSecurityPolicy.
//
// +kubebuilder:object:root=true
type MetricsSecurityPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MetricsSecurityPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MetricsSecurityPolicy{}, &MetricsSecurityPolicyList{})
}
