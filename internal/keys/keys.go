// Package keys holds every annotation and label key of eck-metrics-guard in one place.
//
// The annotation keys are the public contract with users (the README's Annotations section): they are
// documented in the README and must never be renamed.
package keys

// Annotations users set on a Namespace, an ECK operator StatefulSet (or Deployment) or its
// ConfigMap.
const (
	// AnnotationSecure opts an object in ("true") or out ("false"). On a Namespace it
	// guards every ECK operator in it; on a StatefulSet or its ConfigMap, that operator.
	AnnotationSecure = "metrics-guard.eck.dev/secure"

	// AnnotationTLSSecret names a Secret with tls.crt and tls.key that the operator serves
	// its metrics with. With AnnotationIssuer it is the secretName of the Certificate.
	AnnotationTLSSecret = "metrics-guard.eck.dev/tls-secret"

	// AnnotationIssuer names a cert-manager issuer; the controller then requests a
	// Certificate that backs the metrics TLS Secret.
	AnnotationIssuer = "metrics-guard.eck.dev/issuer"

	// AnnotationIssuerKind is "Issuer" (default) or "ClusterIssuer".
	AnnotationIssuerKind = "metrics-guard.eck.dev/issuer-kind"

	// AnnotationMetricsPort chooses the metrics port instead of the first free one.
	AnnotationMetricsPort = "metrics-guard.eck.dev/metrics-port"

	// AnnotationCertDir chooses where the TLS Secret is mounted (metrics-cert-dir).
	AnnotationCertDir = "metrics-guard.eck.dev/cert-dir"

	// AnnotationMonitor chooses the monitor for Prometheus the guard writes: ServiceMonitor,
	// PodMonitor or none.
	AnnotationMonitor = "metrics-guard.eck.dev/monitor"

	// AnnotationMonitorLabels and AnnotationMonitorAnnotations are extra labels and
	// annotations on the monitor ("key=value,key=value"), e.g. the release label of
	// kube-prometheus-stack's serviceMonitorSelector.
	AnnotationMonitorLabels      = "metrics-guard.eck.dev/monitor-labels"
	AnnotationMonitorAnnotations = "metrics-guard.eck.dev/monitor-annotations"

	// AnnotationScrapeInterval and AnnotationScrapeTimeout set the monitor's interval and
	// scrapeTimeout (Prometheus durations, e.g. 30s, 1m).
	AnnotationScrapeInterval = "metrics-guard.eck.dev/scrape-interval"
	AnnotationScrapeTimeout  = "metrics-guard.eck.dev/scrape-timeout"

	// AnnotationScrapeTokenSecret names a Secret in the operator's namespace whose key
	// AnnotationScrapeTokenKey (default "token") holds the bearer token scrapers send
	// (authorization.credentials), instead of the scraper's own ServiceAccount token file:
	// for Prometheus setups that forbid file access, and for PodMonitors.
	AnnotationScrapeTokenSecret = "metrics-guard.eck.dev/scrape-token-secret"
	AnnotationScrapeTokenKey    = "metrics-guard.eck.dev/scrape-token-key"
)

// Keys the guard writes itself.
const (
	// AnnotationMetricsHash is set on the operator's pod template. Its value is a digest of
	// the metrics settings, so that the pod restarts onto new settings and only then.
	AnnotationMetricsHash = "metrics-guard.eck.dev/metrics-hash"

	// AnnotationStatus is set on a guarded operator's StatefulSet by the controller: "secured",
	// or what it waits for ("waiting for certificate Secret <name>").
	AnnotationStatus = "metrics-guard.eck.dev/status"

	// LabelMetricsService marks the Service that exposes an operator's secure metrics, for
	// ServiceMonitors to select.
	LabelMetricsService = "metrics-guard.eck.dev/metrics-service"

	// LabelOperator names the guarded operator (its StatefulSet) on the objects made for it.
	LabelOperator = "metrics-guard.eck.dev/operator"

	// LabelConfigOf is set by the webhook and the controller on the ConfigMap a guarded
	// operator reads its config file from, with the workload's name: the webhook's
	// matchConditions then send every write of it (and of the object it replaces), whatever
	// its content looks like, and the cache keeps its data.
	LabelConfigOf = "metrics-guard.eck.dev/config-of"

	// LabelOperatorNamespace is the guarded operator's namespace, on cluster-scoped objects.
	LabelOperatorNamespace = "metrics-guard.eck.dev/operator-namespace"

	// LabelManagedBy is the standard managed-by label, set on every object the guard creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "eck-metrics-guard"

	// LabelExclude on a Namespace keeps the guard out of it: the webhook configuration
	// does not send its objects, and no MetricsSecurityPolicy covers it. The guard's own
	// namespace carries it.
	LabelExclude = "metrics-guard.eck.dev/exclude"

	// SystemNamespace is never covered by a policy, nor sent to the webhook.
	SystemNamespace = "kube-system"
)

// Names of what the guard adds to the operator's pod.
const (
	// PortName is the container port ECK's metrics Service targets.
	PortName = "metrics"
	// VolumeName is the Secret volume with the metrics TLS certificate (the name ECK's Helm
	// chart uses too, so an already secured install is recognised).
	VolumeName = "tls-certificate"
	// ServicePortName is the metrics Service's port name.
	ServicePortName = "https"
)
