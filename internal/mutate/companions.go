package mutate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// AuthDelegatorRole is the built-in ClusterRole that lets ECK create the TokenReviews and
// SubjectAccessReviews secure metrics need.
const AuthDelegatorRole = "system:auth-delegator"

// ServiceAccountTokenFile is where a scraper pod finds its own token.
const ServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

func companionMeta(name string, op *eck.Operator) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: op.Namespace,
		Labels: map[string]string{
			keys.LabelManagedBy: keys.ManagedByValue,
			keys.LabelOperator:  op.Name,
		},
	}
}

// ServerName is the DNS name scrapers verify the metrics certificate against.
func ServerName(op *eck.Operator, service string) string {
	return fmt.Sprintf("%s.%s.svc", service, op.Namespace)
}

// MetricsService is the Service the guard creates when the operator has none: port https
// to the container port metrics, selecting the operator's pods.
func MetricsService(op *eck.Operator, plan *policy.Plan) *corev1.Service {
	m := companionMeta(plan.ServiceName, op)
	for k, v := range ServiceLabels(op) {
		m.Labels[k] = v
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			Selector: op.Selector,
			Ports: []corev1.ServicePort{{
				Name:       keys.ServicePortName,
				Port:       int32(plan.Port),
				Protocol:   corev1.ProtocolTCP,
				TargetPort: intstr.FromString(keys.PortName),
			}},
		},
	}
}

// AuthDelegatorBindingName is cluster-scoped, so it carries the operator's namespace.
func AuthDelegatorBindingName(op *eck.Operator) string {
	return fmt.Sprintf("%s:%s:%s", keys.ManagedByValue, op.Namespace, op.Name)
}

// AuthDelegatorBinding binds the operator's ServiceAccount to system:auth-delegator.
// Without it every scrape fails with 500 "Authentication failed".
func AuthDelegatorBinding(op *eck.Operator) *rbacv1.ClusterRoleBinding {
	m := companionMeta(AuthDelegatorBindingName(op), op)
	m.Namespace = ""
	m.Labels[keys.LabelOperatorNamespace] = op.Namespace
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: m,
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: AuthDelegatorRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: op.ServiceAccount, Namespace: op.Namespace}},
	}
}

// Certificate requests the metrics certificate from the plan's issuer, with the plan's
// validity; nil without an issuer. cert-manager writes tls.crt, tls.key and ca.crt into the
// Secret the pod mounts.
func Certificate(op *eck.Operator, plan *policy.Plan, service string) *cmv1.Certificate {
	if plan.Issuer == nil {
		return nil
	}
	return &cmv1.Certificate{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmv1.SchemeGroupVersion.String(), Kind: cmv1.CertificateKind},
		ObjectMeta: companionMeta(plan.ServiceName, op),
		Spec: cmv1.CertificateSpec{
			SecretName: plan.SecretName,
			DNSNames: []string{
				fmt.Sprintf("%s.%s.svc", service, op.Namespace),
				fmt.Sprintf("%s.%s.svc.cluster.local", service, op.Namespace),
			},
			Duration:    &metav1.Duration{Duration: plan.Certificate.Duration},
			RenewBefore: &metav1.Duration{Duration: plan.Certificate.RenewBefore},
			Usages:      []cmv1.KeyUsage{cmv1.UsageServerAuth, cmv1.UsageDigitalSignature, cmv1.UsageKeyEncipherment},
			PrivateKey:  &cmv1.CertificatePrivateKey{RotationPolicy: cmv1.RotationPolicyAlways},
			IssuerRef:   cmmeta.IssuerReference{Name: plan.Issuer.Name, Kind: plan.Issuer.Kind, Group: cmp.Or(plan.Issuer.Group, "cert-manager.io")},
		},
	}
}

// ServiceMonitor scrapes the metrics Service svc over verified TLS (CA from the Secret's
// ca.crt, no file paths) with the scraper's own ServiceAccount token, or the token in the
// plan's Secret. It is nil when the plan has no monitor or no TLS Secret (there is no CA to
// verify against), or svc has no metrics port.
func ServiceMonitor(op *eck.Operator, plan *policy.Plan, svc *corev1.Service) *monitoringv1.ServiceMonitor {
	port := metricsPortName(svc, plan)
	if plan.Monitor == nil || plan.SecretName == "" || port == "" {
		return nil
	}
	m := plan.Monitor
	http := scrapeHTTP(op, plan, svc.Name)
	endpoint := monitoringv1.Endpoint{
		Port:          port,
		Path:          "/metrics",
		Scheme:        ptr.To(monitoringv1.Scheme("https")),
		Interval:      monitoringv1.Duration(m.Interval),
		ScrapeTimeout: monitoringv1.Duration(m.ScrapeTimeout),
	}
	endpoint.TLSConfig = &monitoringv1.TLSConfig{SafeTLSConfig: *http.TLSConfig}
	endpoint.Authorization = http.Authorization
	if m.TokenSecret == "" {
		endpoint.BearerTokenFile = ServiceAccountTokenFile
	}
	return &monitoringv1.ServiceMonitor{
		TypeMeta:   metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: policy.ServiceMonitorKind},
		ObjectMeta: monitorMeta(op, plan),
		Spec: monitoringv1.ServiceMonitorSpec{
			Selector:          metav1.LabelSelector{MatchLabels: ServiceLabels(op)},
			NamespaceSelector: monitoringv1.NamespaceSelector{MatchNames: []string{op.Namespace}},
			Endpoints:         []monitoringv1.Endpoint{endpoint},
		},
	}
}

// PodMonitor scrapes the operator's pods on their metrics port over verified TLS (the
// certificate names the metrics Service svc), with the token in the plan's Secret: a
// PodMonitor has no token file. nil when the plan has no PodMonitor or no TLS Secret.
func PodMonitor(op *eck.Operator, plan *policy.Plan, svc *corev1.Service) *monitoringv1.PodMonitor {
	if plan.Monitor == nil || plan.Monitor.TokenSecret == "" || plan.SecretName == "" {
		return nil
	}
	m := plan.Monitor
	endpoint := monitoringv1.PodMetricsEndpoint{
		Port:          ptr.To(keys.PortName),
		Path:          "/metrics",
		Scheme:        ptr.To(monitoringv1.Scheme("https")),
		Interval:      monitoringv1.Duration(m.Interval),
		ScrapeTimeout: monitoringv1.Duration(m.ScrapeTimeout),
	}
	endpoint.HTTPConfig = scrapeHTTP(op, plan, svc.Name)
	return &monitoringv1.PodMonitor{
		TypeMeta:   metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: policy.PodMonitorKind},
		ObjectMeta: monitorMeta(op, plan),
		Spec: monitoringv1.PodMonitorSpec{
			Selector:            metav1.LabelSelector{MatchLabels: op.Selector},
			NamespaceSelector:   monitoringv1.NamespaceSelector{MatchNames: []string{op.Namespace}},
			PodMetricsEndpoints: []monitoringv1.PodMetricsEndpoint{endpoint},
		},
	}
}

// scrapeHTTP is how a scraper reaches the metrics: TLS verified against the CA of the TLS
// Secret (never a file path, never insecureSkipVerify) for the Service's DNS name, and the
// token of the plan's Secret when it names one.
func scrapeHTTP(op *eck.Operator, plan *policy.Plan, service string) monitoringv1.HTTPConfig {
	serverName := ServerName(op, service)
	var http monitoringv1.HTTPConfig
	http.TLSConfig = &monitoringv1.SafeTLSConfig{
		ServerName: &serverName,
		CA: monitoringv1.SecretOrConfigMap{Secret: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: plan.SecretName},
			Key:                  "ca.crt",
		}},
	}
	if m := plan.Monitor; m.TokenSecret != "" {
		http.Authorization = &monitoringv1.SafeAuthorization{
			Type: "Bearer",
			Credentials: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: m.TokenSecret},
				Key:                  m.TokenKey,
			},
		}
	}
	return http
}

// monitorMeta is the monitor's metadata: the user's labels and annotations, then the
// guard's own labels, which they cannot replace (policy refuses such keys).
func monitorMeta(op *eck.Operator, plan *policy.Plan) metav1.ObjectMeta {
	m := companionMeta(plan.ServiceName, op)
	for k, v := range plan.Monitor.Labels {
		if _, own := m.Labels[k]; !own {
			m.Labels[k] = v
		}
	}
	if len(plan.Monitor.Annotations) > 0 {
		m.Annotations = maps.Clone(plan.Monitor.Annotations)
	}
	return m
}

// GrantsAuthDelegation reports whether rules allow creating TokenReviews and
// SubjectAccessReviews, what system:auth-delegator grants and secure metrics need.
func GrantsAuthDelegation(rules []rbacv1.PolicyRule) bool {
	allows := func(group, resource string) bool {
		for _, r := range rules {
			if (slices.Contains(r.APIGroups, group) || slices.Contains(r.APIGroups, "*")) &&
				(slices.Contains(r.Resources, resource) || slices.Contains(r.Resources, "*")) &&
				(slices.Contains(r.Verbs, "create") || slices.Contains(r.Verbs, "*")) {
				return true
			}
		}
		return false
	}
	return allows("authentication.k8s.io", "tokenreviews") && allows("authorization.k8s.io", "subjectaccessreviews")
}

// metricsPortName is the name of svc's port that reaches the operator's metrics.
func metricsPortName(svc *corev1.Service, plan *policy.Plan) string {
	for _, p := range svc.Spec.Ports {
		if p.TargetPort == intstr.FromString(keys.PortName) || p.TargetPort == intstr.FromInt32(int32(plan.Port)) {
			return p.Name
		}
	}
	return ""
}
