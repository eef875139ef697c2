package packaging

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// injectCAAnnotation is cert-manager's cainjector annotation.
const injectCAAnnotation = "cert-manager.io/inject-ca-from"

// certDir is where the serving certificate is mounted (the guard's --webhook-cert-dir).
const certDir = "/tmp/k8s-webhook-server/serving-certs"

// install is one rendered install, with the typed objects that hold it together.
type install struct {
	*rendered
	Deployment *appsv1.Deployment
	Container  corev1.Container
}

// deploymentOf returns the one Deployment of r and its one container.
func deploymentOf(t *testing.T, r *rendered) install {
	t.Helper()
	deployments := r.ofKind("Deployment")
	if len(deployments) != 1 {
		t.Fatalf("%d Deployments rendered, want 1", len(deployments))
	}
	d := into[appsv1.Deployment](t, deployments[0])
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", d.Name, n)
	}
	return install{rendered: r, Deployment: d, Container: d.Spec.Template.Spec.Containers[0]}
}

// hasArg reports whether the container runs with the flag (e.g. "--leader-elect=true").
func (in install) hasArg(arg string) bool { return slices.Contains(in.Container.Args, arg) }

// argWithPrefix returns the argument that starts with prefix, or "".
func (in install) argWithPrefix(prefix string) string {
	for _, a := range in.Container.Args {
		if strings.HasPrefix(a, prefix) {
			return a
		}
	}
	return ""
}

// namespacesArg is the list of --namespaces (watchNamespaces), if any.
func (in install) namespacesArg() []string {
	if a := in.argWithPrefix("--namespaces="); a != "" {
		return strings.Split(strings.TrimPrefix(a, "--namespaces="), ",")
	}
	return nil
}

// certSecret is the Secret mounted at certDir.
func (in install) certSecret(t *testing.T) string {
	t.Helper()
	for _, m := range in.Container.VolumeMounts {
		if m.MountPath != certDir {
			continue
		}
		for _, v := range in.Deployment.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				if v.Secret.Optional != nil && *v.Secret.Optional {
					t.Errorf("the serving certificate Secret %s is optional: the webhook would start without it", v.Secret.SecretName)
				}
				return v.Secret.SecretName
			}
		}
	}
	t.Fatalf("nothing mounts a Secret at %s", certDir)
	return ""
}

// checkConsistent checks what holds every install, chart or kustomize, together: selectors
// select the pods, Services target ports that exist, the webhooks call a rendered Service,
// the ServiceAccount, ClusterRoleBinding and ClusterRole agree, the serving certificate is
// the one mounted and the one whose CA is injected (or a caBundle is given), and the
// ServiceMonitor scrapes the metrics Service with a server name the certificate holds.
// A self-managed certificate is checked by checkSelfManaged.
func checkConsistent(t *testing.T, r *rendered, namespace string) install {
	t.Helper()
	in := deploymentOf(t, r)
	pod := in.Deployment.Spec.Template
	podLabels := labels.Set(pod.Labels)
	selects := func(what string, sel *metav1.LabelSelector) {
		t.Helper()
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			t.Errorf("%s: selector %v does not select the pods (%v): %v", what, sel, pod.Labels, err)
		}
	}
	selects("Deployment "+in.Deployment.Name, in.Deployment.Spec.Selector)

	containerPorts := map[string]int32{}
	for _, p := range in.Container.Ports {
		containerPorts[p.Name] = p.ContainerPort
	}
	for _, o := range r.Objects {
		// The one exception: watchNamespaces' Roles and RoleBindings, in those namespaces.
		watched := strings.HasSuffix(o.GetName(), "-watched") && (o.GetKind() == "Role" || o.GetKind() == "RoleBinding") && slices.Contains(in.namespacesArg(), o.GetNamespace())
		if o.GetNamespace() != "" && o.GetNamespace() != namespace && !watched {
			t.Errorf("%s is not in the namespace %s", objectKey(o), namespace)
		}
	}

	// Services: they select the pods and target named container ports.
	services := map[string]*corev1.Service{}
	for _, o := range r.ofKind("Service") {
		svc := into[corev1.Service](t, o)
		services[svc.Name] = svc
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("Service %s: selector %v does not select the pods (%v)", svc.Name, svc.Spec.Selector, pod.Labels)
		}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.Type != intstr.String {
				t.Errorf("Service %s: port %s targets a number, not a container port name", svc.Name, p.Name)
			} else if _, ok := containerPorts[p.TargetPort.StrVal]; !ok {
				t.Errorf("Service %s: targetPort %s is not a container port (%v)", svc.Name, p.TargetPort.StrVal, containerPorts)
			} else if p.TargetPort.StrVal == "metrics" {
				t.Errorf("Service %s: targetPort metrics sends the guard's own Service to its webhook (matchCondition targets-a-metrics-port)", svc.Name)
			}
		}
	}
	for _, o := range r.ofKind("PodDisruptionBudget") {
		selects("PodDisruptionBudget "+o.GetName(), into[policyv1.PodDisruptionBudget](t, o).Spec.Selector)
	}
	for _, c := range pod.Spec.TopologySpreadConstraints {
		selects("topologySpreadConstraint "+c.TopologyKey, c.LabelSelector)
	}
	for _, o := range r.ofKind("NetworkPolicy") {
		np := into[networkingv1.NetworkPolicy](t, o)
		selects("NetworkPolicy "+np.Name, &np.Spec.PodSelector)
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if _, ok := containerPorts[p.Port.String()]; !ok {
					t.Errorf("NetworkPolicy %s: port %s is not a container port", np.Name, p.Port.String())
				}
			}
		}
	}

	// RBAC: the pods run as the bound ServiceAccount, bound to the rendered ClusterRole; the
	// only other binding is the scrapers', to the metrics reader (get /metrics), never to it.
	sa := pod.Spec.ServiceAccountName
	var guardBindings []*rbacv1.ClusterRoleBinding
	for _, o := range r.ofKind("ClusterRoleBinding") {
		crb := into[rbacv1.ClusterRoleBinding](t, o)
		if crb.RoleRef.Kind != "ClusterRole" || r.find("ClusterRole", crb.RoleRef.Name) == nil {
			t.Errorf("ClusterRoleBinding %s binds %s %s, which is not rendered", crb.Name, crb.RoleRef.Kind, crb.RoleRef.Name)
		}
		if strings.HasSuffix(crb.RoleRef.Name, "-metrics-reader") || strings.HasSuffix(crb.RoleRef.Name, "-self-managed-cert") {
			continue
		}
		guardBindings = append(guardBindings, crb)
	}
	if len(guardBindings) != 1 {
		t.Fatalf("%d ClusterRoleBindings of the guard's ClusterRole rendered, want 1", len(guardBindings))
	}
	crb := guardBindings[0]
	want := rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: namespace}
	if len(crb.Subjects) != 1 || crb.Subjects[0] != want {
		t.Errorf("ClusterRoleBinding %s subjects %v, want [%v]", crb.Name, crb.Subjects, want)
	}

	// The webhooks call a rendered Service on a port that reaches the webhook server.
	mwcs := r.ofKind("MutatingWebhookConfiguration")
	if len(mwcs) != 1 {
		t.Fatalf("%d MutatingWebhookConfigurations rendered, want 1", len(mwcs))
	}
	mwc := into[admissionregistrationv1.MutatingWebhookConfiguration](t, mwcs[0])
	if len(mwc.Webhooks) == 0 {
		t.Fatal("the MutatingWebhookConfiguration has no webhooks")
	}
	for _, wh := range mwc.Webhooks {
		ref := wh.ClientConfig.Service
		if ref == nil {
			t.Errorf("webhook %s: no clientConfig.service", wh.Name)
			continue
		}
		svc := services[ref.Name]
		if svc == nil || ref.Namespace != namespace {
			t.Errorf("webhook %s calls Service %s/%s, which is not rendered", wh.Name, ref.Namespace, ref.Name)
			continue
		}
		port := int32(443)
		if ref.Port != nil {
			port = *ref.Port
		}
		found := false
		for _, p := range svc.Spec.Ports {
			if p.Port == port && p.TargetPort.StrVal == "webhook" {
				found = true
			}
		}
		if !found {
			t.Errorf("webhook %s: Service %s has no port %d to the container port webhook", wh.Name, svc.Name, port)
		}
	}
	if p, ok := containerPorts["webhook"]; !ok || !in.hasArg(fmt.Sprintf("--webhook-port=%d", p)) {
		t.Errorf("the container port webhook (%d) is not --webhook-port (args %v)", p, in.Container.Args)
	}
	if !in.hasArg("--webhook-cert-dir=" + certDir) {
		t.Errorf("the serving certificate is mounted at %s, not --webhook-cert-dir (args %v)", certDir, in.Container.Args)
	}

	// The serving certificate.
	secret := in.certSecret(t)
	certificates := r.ofKind("Certificate")
	switch len(certificates) {
	case 0:
		if _, ok := mwc.Annotations[injectCAAnnotation]; ok {
			t.Errorf("%s set without a Certificate", injectCAAnnotation)
		}
		if in.hasArg("--webhook-cert-mode=self-managed") {
			checkSelfManaged(t, r, in, mwc, secret, namespace)
			break
		}
		for _, wh := range mwc.Webhooks {
			if len(wh.ClientConfig.CABundle) == 0 {
				t.Errorf("webhook %s: no Certificate whose CA cert-manager injects, and no caBundle", wh.Name)
			}
		}
	case 1:
		crt := into[cmv1.Certificate](t, certificates[0])
		if crt.Spec.SecretName != secret {
			t.Errorf("Certificate %s writes the Secret %s, the pods mount %s", crt.Name, crt.Spec.SecretName, secret)
		}
		if got, want := mwc.Annotations[injectCAAnnotation], namespace+"/"+crt.Name; got != want {
			t.Errorf("%s: %q, want %q", injectCAAnnotation, got, want)
		}
		for _, wh := range mwc.Webhooks {
			if name := wh.ClientConfig.Service.Name + "." + namespace + ".svc"; !slices.Contains(crt.Spec.DNSNames, name) {
				t.Errorf("Certificate %s: DNS names %v lack %s, which the API server calls", crt.Name, crt.Spec.DNSNames, name)
			}
		}
		if ref := crt.Spec.IssuerRef; ref.Kind == "Issuer" && strings.HasSuffix(ref.Name, "-selfsigned") && r.find("Issuer", ref.Name) == nil {
			t.Errorf("Certificate %s: Issuer %s is not rendered", crt.Name, ref.Name)
		}
		if crt.Spec.PrivateKey == nil || crt.Spec.PrivateKey.RotationPolicy != cmv1.RotationPolicyAlways {
			t.Errorf("Certificate %s: the private key is not rotated on renewal", crt.Name)
		}
	default:
		t.Errorf("%d Certificates rendered, want at most 1", len(certificates))
	}

	// The guard's own ServiceMonitor scrapes its metrics Service over verified TLS.
	for _, o := range r.ofKind("ServiceMonitor") {
		sel, _, _ := unstructured.NestedMap(o.Object, "spec", "selector", "matchLabels")
		var metricsSvc *corev1.Service
		for _, svc := range services {
			if len(sel) > 0 && labels.SelectorFromSet(toStringMap(sel)).Matches(labels.Set(svc.Labels)) {
				if metricsSvc != nil {
					t.Errorf("ServiceMonitor %s selects more than one Service", o.GetName())
				}
				metricsSvc = svc
			}
		}
		if metricsSvc == nil {
			t.Errorf("ServiceMonitor %s selects no rendered Service", o.GetName())
			continue
		}
		endpoints, _, _ := unstructured.NestedSlice(o.Object, "spec", "endpoints")
		for _, e := range endpoints {
			ep := e.(map[string]any)
			if !slices.ContainsFunc(metricsSvc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep["port"] }) {
				t.Errorf("ServiceMonitor %s: port %v is not a port of Service %s", o.GetName(), ep["port"], metricsSvc.Name)
			}
			tls, _ := ep["tlsConfig"].(map[string]any)
			if ep["scheme"] != "https" || tls == nil || tls["insecureSkipVerify"] == true {
				t.Errorf("ServiceMonitor %s: not verified TLS: %v", o.GetName(), ep)
				continue
			}
			if want := metricsSvc.Name + "." + namespace + ".svc"; tls["serverName"] != want {
				t.Errorf("ServiceMonitor %s: serverName %v, want %s", o.GetName(), tls["serverName"], want)
			}
			if ca, _ := tls["ca"].(map[string]any); ca == nil || ca["secret"].(map[string]any)["name"] != secret {
				t.Errorf("ServiceMonitor %s: CA not from the serving certificate's Secret %s: %v", o.GetName(), secret, tls["ca"])
			}
			if len(certificates) == 1 {
				crt := into[cmv1.Certificate](t, certificates[0])
				if !slices.Contains(crt.Spec.DNSNames, tls["serverName"].(string)) {
					t.Errorf("ServiceMonitor %s: serverName %v is not in the Certificate's DNS names %v", o.GetName(), tls["serverName"], crt.Spec.DNSNames)
				}
			}
		}
	}
	return in
}

func toStringMap(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// checkRestricted checks the pod security context the chart and config/ promise: the
// restricted Pod Security Standard, and a read-only root file system.
func checkRestricted(t *testing.T, in install) {
	t.Helper()
	pod := in.Deployment.Spec.Template.Spec
	c := in.Container
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext %+v: want runAsNonRoot, readOnlyRootFilesystem, no privilege escalation, drop ALL, seccomp RuntimeDefault", sc)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.StrVal != "health" {
			t.Errorf("%s probe %+v: want GET %s on the port health", name, p, path)
		}
	}
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("readiness", c.ReadinessProbe, "/readyz")
	for _, p := range c.Ports {
		if p.Name == "health" && !in.hasArg(fmt.Sprintf("--health-probe-bind-address=:%d", p.ContainerPort)) {
			t.Errorf("the container port health (%d) is not --health-probe-bind-address (args %v)", p.ContainerPort, c.Args)
		}
	}
}

// checkSelfManaged checks an install whose guard makes its own certificate
// (--webhook-cert-mode=self-managed): the Secret it fills is rendered, empty, and is the one
// mounted; the flags name the rendered webhook Service and configuration, and the metrics
// Service; the guard knows its namespace; a Role in that namespace, bound to the guard's
// ServiceAccount, lets it keep the Secret; the ClusterRole lets it update the caBundle.
func checkSelfManaged(t *testing.T, r *rendered, in install, mwc *admissionregistrationv1.MutatingWebhookConfiguration, secret, namespace string) {
	t.Helper()
	for _, wh := range mwc.Webhooks {
		if len(wh.ClientConfig.CABundle) != 0 {
			t.Errorf("webhook %s: a caBundle, which the self-managed certificate would overwrite", wh.Name)
		}
	}
	if s := r.find("Secret", secret); s == nil {
		t.Errorf("the mounted Secret %s is not rendered: the guard needs it to exist", secret)
	} else if obj := into[corev1.Secret](t, s); len(obj.Data)+len(obj.StringData) != 0 || obj.Type != corev1.SecretTypeOpaque {
		t.Errorf("Secret %s: type %s, %d keys; want it Opaque and empty", secret, obj.Type, len(obj.Data)+len(obj.StringData))
	}
	service := mwc.Webhooks[0].ClientConfig.Service.Name
	metrics := in.Deployment.Name + "-metrics." + namespace + ".svc"
	for _, arg := range []string{"--webhook-secret=" + secret, "--webhook-service=" + service, "--webhook-configuration=" + mwc.Name,
		"--webhook-extra-dns-names=" + metrics + "," + metrics + ".cluster.local"} {
		if !in.hasArg(arg) {
			t.Errorf("no %s in %v", arg, in.Container.Args)
		}
	}
	if !slices.ContainsFunc(in.Container.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) && in.argWithPrefix("--webhook-namespace=") == "" {
		t.Errorf("the guard does not know its namespace: no POD_NAMESPACE from metadata.namespace in %v", in.Container.Env)
	}

	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: in.Deployment.Spec.Template.Spec.ServiceAccountName, Namespace: namespace}
	allows := func(rules []rbacv1.PolicyRule, group, resource string, verbs ...string) bool {
		for _, verb := range verbs {
			if !slices.ContainsFunc(rules, func(rule rbacv1.PolicyRule) bool {
				return slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, verb) && len(rule.ResourceNames) == 0
			}) {
				return false
			}
		}
		return true
	}
	bound := false
	for _, o := range r.ofKind("RoleBinding") {
		rb := into[rbacv1.RoleBinding](t, o)
		if rb.RoleRef.Kind != "Role" || !slices.Contains(rb.Subjects, sa) {
			continue
		}
		if role := r.find("Role", rb.RoleRef.Name); role != nil && role.GetNamespace() == namespace &&
			allows(into[rbacv1.Role](t, role).Rules, "", "secrets", "get", "list", "watch", "update") {
			bound = true
		}
	}
	if !bound {
		t.Errorf("no Role bound to %v lets it get, list, watch and update Secrets in %s", sa, namespace)
	}
	// The webhook configuration: read (cert-controller's cache lists them all), and update of
	// this one by name, through a ClusterRole of this mode only; no other rule of the guard's
	// updates any webhook configuration.
	named := func(rules []rbacv1.PolicyRule) bool {
		return slices.ContainsFunc(rules, func(rule rbacv1.PolicyRule) bool {
			return slices.Contains(rule.APIGroups, "admissionregistration.k8s.io") && slices.Contains(rule.Resources, "mutatingwebhookconfigurations") &&
				slices.Equal(rule.Verbs, []string{"update"}) && slices.Equal(rule.ResourceNames, []string{mwc.Name})
		})
	}
	found := false
	for _, o := range r.ofKind("ClusterRoleBinding") {
		crb := into[rbacv1.ClusterRoleBinding](t, o)
		cr := r.find("ClusterRole", crb.RoleRef.Name)
		if cr == nil || !slices.Contains(crb.Subjects, sa) {
			continue
		}
		rules := into[rbacv1.ClusterRole](t, cr).Rules
		for _, rule := range rules {
			if slices.Contains(rule.Resources, "mutatingwebhookconfigurations") && slices.Contains(rule.Verbs, "update") && !slices.Equal(rule.ResourceNames, []string{mwc.Name}) {
				t.Errorf("ClusterRole %s lets the guard update webhook configurations %v, not only %s", cr.GetName(), rule.ResourceNames, mwc.Name)
			}
		}
		if allows(rules, "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", "list", "watch") && named(rules) {
			found = true
		}
	}
	if !found {
		t.Errorf("no ClusterRole bound to %v lets it get, list and watch mutatingwebhookconfigurations and update %s by name", sa, mwc.Name)
	}
}
