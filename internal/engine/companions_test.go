package engine

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// TestCompanions: the engine chooses the companions from what exists, for every front door.
func TestCompanions(t *testing.T) {
	chartService := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator-metrics", Namespace: "elastic-system"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"control-plane": "elastic-operator"},
			Ports: []corev1.ServicePort{{Name: "https", Port: 8081, TargetPort: intstr.FromString(keys.PortName)}}}}
	chartBinding := &rbacv1.ClusterRoleBinding{RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "elastic-operator-metrics-auth"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "elastic-operator", Namespace: "elastic-system"}}}
	chartRole := &rbacv1.ClusterRole{Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}}}}
	tests := map[string]struct {
		monitor     string
		have        Existing
		newService  bool
		labelled    bool
		binding     bool
		monitorKind string
	}{
		"nothing exists": {monitor: policy.ServiceMonitorKind, newService: true, binding: true, monitorKind: policy.ServiceMonitorKind},
		"the chart's Service and binding": {monitor: policy.ServiceMonitorKind, labelled: true, monitorKind: policy.ServiceMonitorKind,
			have: Existing{Services: []*corev1.Service{chartService}, Bindings: []*rbacv1.ClusterRoleBinding{chartBinding}, ClusterRoles: map[string]*rbacv1.ClusterRole{"elastic-operator-metrics-auth": chartRole}}},
		"a binding to a role that grants nothing": {monitor: policy.ServiceMonitorKind, newService: true, binding: true, monitorKind: policy.ServiceMonitorKind,
			have: Existing{Bindings: []*rbacv1.ClusterRoleBinding{chartBinding}}},
		"a ServiceMonitor of the user's selects the Service": {monitor: policy.ServiceMonitorKind, newService: true, binding: true,
			have: Existing{ServiceMonitors: []metav1.LabelSelector{{MatchLabels: map[string]string{keys.LabelMetricsService: "true"}}}}},
		"a PodMonitor of the user's selects the pods": {monitor: policy.ServiceMonitorKind, newService: true, binding: true,
			have: Existing{PodMonitors: []metav1.LabelSelector{{MatchLabels: map[string]string{"control-plane": "elastic-operator"}}}}},
		"an empty selector is not taken to select it": {monitor: policy.PodMonitorKind, newService: true, binding: true, monitorKind: policy.PodMonitorKind,
			have: Existing{PodMonitors: []metav1.LabelSelector{{}}}},
		"no monitor": {monitor: policy.NoMonitor, newService: true, binding: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sts, cms := operator()
			sts.Spec.Template.Labels = map[string]string{"control-plane": "elastic-operator"}
			sts.Spec.Template.Spec.ServiceAccountName = "elastic-operator"
			in := input(t, sts, cms)
			in.Defaults.Monitor = policy.Monitor{Kind: tc.monitor, TokenSecret: "scraper-token", TokenKey: "token"}
			res, err := Secure(in)
			if err != nil || res.Decision.Plan == nil {
				t.Fatalf("not planned: %v %+v", err, res.Decision)
			}
			c := res.Companions(tc.have)
			if c.NewService != tc.newService || c.Labelled != tc.labelled || (c.Binding != nil) != tc.binding {
				t.Errorf("new Service %v, labelled %v, binding %v; want %v, %v, %v", c.NewService, c.Labelled, c.Binding != nil, tc.newService, tc.labelled, tc.binding)
			}
			kind := ""
			if c.Monitor != nil {
				kind = c.Monitor.GetObjectKind().GroupVersionKind().Kind
			}
			if kind != tc.monitorKind {
				t.Errorf("monitor %q, want %q", kind, tc.monitorKind)
			}
			if c.Labelled && c.Service.Labels[keys.LabelMetricsService] == "" {
				t.Error("the chart's Service was not labelled")
			}
			if c.Labelled && tc.have.Services[0].Labels != nil {
				t.Error("the existing Service was changed in place")
			}
			if c.Certificate != nil {
				t.Error("a Certificate without an issuer")
			}
		})
	}
}

// TestNoCompanionsWithoutEntitlement: an opt-in on the workload alone secures the operator's
// own objects and makes no companion (no confused deputy), and says what the namespace's
// owner must do.
func TestNoCompanionsWithoutEntitlement(t *testing.T) {
	sts, cms := operator()
	sts.Annotations = map[string]string{keys.AnnotationSecure: "true"}
	in := input(t, sts, cms)
	in.NamespaceAnnotations = nil
	res, err := Secure(in)
	if err != nil || res.Decision.Plan == nil || !res.TemplateChanged {
		t.Fatalf("the operator's own objects were not secured: %v %+v", err, res.Decision)
	}
	if res.Entitled || res.NotEntitled == "" {
		t.Errorf("entitled %v, %q", res.Entitled, res.NotEntitled)
	}
	if c := res.Companions(Existing{}); c != nil {
		t.Errorf("companions without an entitled opt-in: %+v", c.New())
	}
}
