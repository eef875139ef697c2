package controller

import (
	"context"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// These tests run OperatorReconciler.Reconcile against controller-runtime's fake client, which
// implements server-side apply (the companions) and JSON patches (the workload and ConfigMap)
// in memory. The end-to-end suites (test/e2e/controller) run the same against a real API
// server and cert-manager; these pin each branch of Reconcile, fast.

const ns = "elastic-system"

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cmv1.AddToScheme, monitoringv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// served is a RESTMapper that serves the kinds the reconciler discovers: cert-manager's
// Certificate and the Prometheus Operator's ServiceMonitor, when apis says so.
func served(apis bool) apimeta.RESTMapper {
	m := apimeta.NewDefaultRESTMapper(nil)
	if apis {
		m.Add(certificateGVK, apimeta.RESTScopeNamespace)
		m.Add(serviceMonitorGVK, apimeta.RESTScopeNamespace)
		m.Add(podMonitorGVK, apimeta.RESTScopeNamespace)
	}
	return m
}

type fixture struct {
	c        client.WithWatch
	r        *OperatorReconciler
	recorder *events.FakeRecorder
}

func newFixture(t *testing.T, apis bool, opts Options, objs ...client.Object) *fixture {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithRESTMapper(served(apis)).WithObjects(objs...).WithReturnManagedFields().Build()
	rec := events.NewFakeRecorder(100)
	return &fixture{c: c, recorder: rec, r: &OperatorReconciler{
		Kind: "StatefulSet", Client: c, APIReader: c, Lookup: cluster.CachedLookup{Reader: c}, Recorder: rec, Options: opts,
	}}
}

func (f *fixture) reconcile(t *testing.T, name string) reconcile.Result {
	t.Helper()
	res, err := f.r.Reconcile(context.Background(), reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return res
}

// events drains what the reconciler recorded so far.
func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func hasEvent(events []string, reason string) bool {
	for _, e := range events {
		if strings.Fields(e)[1] == reason {
			return true
		}
	}
	return false
}

func namespace(annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Annotations: annotations}}
}

var optedIn = map[string]string{keys.AnnotationSecure: "true"}

// operator is an ECK 3.5.0 StatefulSet as ECK's manifests write it, reading eck.yaml from
// ConfigMap elastic-operator, with the workload annotations given.
func operator(annotations map[string]string) *appsv1.StatefulSet {
	labels := map[string]string{"control-plane": "elastic-operator"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: ns, Annotations: annotations},
		Spec: appsv1.StatefulSetSpec{
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			ServiceName: "elastic-operator",
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "elastic-operator",
					Containers: []corev1.Container{{
						Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
						Args:         []string{"manager", "--config=/conf/eck.yaml"},
						Ports:        []corev1.ContainerPort{{ContainerPort: 9443, Name: "https-webhook", Protocol: corev1.ProtocolTCP}},
						VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
				},
			},
		},
	}
}

func config() *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: ns},
		Data:       map[string]string{"eck.yaml": "log-verbosity: 0\nmetrics-port: 0\ncontainer-registry: docker.elastic.co\noperator-namespace: elastic-system\n"},
	}
}

func tlsSecret(name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": []byte("crt"), "tls.key": []byte("key")}}
}

func (f *fixture) get(t *testing.T, obj client.Object, namespace, name string) client.Object {
	t.Helper()
	if err := f.c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		t.Fatalf("get %T %s/%s: %v", obj, namespace, name, err)
	}
	return obj
}

func (f *fixture) statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	return f.get(t, &appsv1.StatefulSet{}, ns, "elastic-operator").(*appsv1.StatefulSet)
}

func (f *fixture) configMap(t *testing.T) *corev1.ConfigMap {
	t.Helper()
	return f.get(t, &corev1.ConfigMap{}, ns, "elastic-operator").(*corev1.ConfigMap)
}

func (f *fixture) exists(t *testing.T, obj client.Object, namespace, name string) bool {
	t.Helper()
	err := f.c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// checkEndState requires the operator, as stored, to be in the end state by the same checks
// the end-to-end suites make (package compliance): secured pod template and eck.yaml, the
// metrics Service.
func (f *fixture) checkEndState(t *testing.T, secret string) {
	t.Helper()
	sts, cm := f.statefulSet(t), f.configMap(t)
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		t.Fatal("the StatefulSet is no longer recognised as an ECK operator")
	}
	op.Namespace = ns
	port, findings := compliance.Operator(op, &sts.Spec.Template, cm)
	var services corev1.ServiceList
	if err := f.c.List(context.Background(), &services, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	findings = append(findings, compliance.Service(op, port, services.Items)...)
	for _, finding := range findings {
		t.Errorf("not in the end state: %s", finding)
	}
	if port != 8081 {
		t.Errorf("metrics port %d, want 8081", port)
	}
	if !strings.Contains(cm.Data["eck.yaml"], "metrics-port: 8081") || !strings.Contains(cm.Data["eck.yaml"], "metrics-secure: true") ||
		!strings.HasPrefix(cm.Data["eck.yaml"], "log-verbosity: 0\n") {
		t.Errorf("eck.yaml not secured in place:\n%s", cm.Data["eck.yaml"])
	}
	var mounted bool
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Name == keys.VolumeName && v.Secret != nil && v.Secret.SecretName == secret {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("the pod template does not mount Secret %s: %+v", secret, sts.Spec.Template.Spec.Volumes)
	}
	if sts.Spec.Template.Annotations[keys.AnnotationMetricsHash] == "" {
		t.Error("no metrics hash on the pod template: the pods would not restart with the new settings")
	}
}

// checkCompanions requires the metrics Service (owned by the StatefulSet) and the
// auth-delegator binding (labelled, not owned: it is cluster-scoped).
func (f *fixture) checkCompanions(t *testing.T) *corev1.Service {
	t.Helper()
	sts := f.statefulSet(t)
	svc := f.get(t, &corev1.Service{}, ns, "elastic-operator-metrics-guard").(*corev1.Service)
	if !metav1.IsControlledBy(svc, sts) {
		t.Errorf("the metrics Service is not owned by the StatefulSet: %+v", svc.OwnerReferences)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8081 || svc.Spec.Ports[0].TargetPort.StrVal != keys.PortName ||
		svc.Spec.Selector["control-plane"] != "elastic-operator" {
		t.Errorf("metrics Service spec = %+v", svc.Spec)
	}
	if !ownedBy(svc, FieldManager) {
		t.Errorf("Service %s is not applied by field manager %s: %+v", svc.Name, FieldManager, svc.GetManagedFields())
	}
	// The operator's ServiceAccount in the one auth-delegator binding (BindingReconciler).
	crb := f.binding(t)
	if crb.RoleRef.Name != mutate.AuthDelegatorRole || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "elastic-operator" || crb.Subjects[0].Namespace != ns {
		t.Errorf("auth-delegator binding = %+v %+v", crb.RoleRef, crb.Subjects)
	}
	if crb.Labels[keys.LabelManagedBy] != keys.ManagedByValue {
		t.Errorf("auth-delegator binding labels = %v", crb.Labels)
	}
	return svc
}

// binding runs the BindingReconciler and returns the one auth-delegator binding.
func (f *fixture) binding(t *testing.T) *rbacv1.ClusterRoleBinding {
	t.Helper()
	br := &BindingReconciler{Name: DefaultBindingName, Client: f.c, Lookup: cluster.CachedLookup{Reader: f.c}, Defaults: f.r.Options.Defaults}
	if _, err := br.Reconcile(context.Background(), reconcile.Request{}); err != nil {
		t.Fatalf("Reconcile the binding: %v", err)
	}
	crb := &rbacv1.ClusterRoleBinding{}
	if err := f.c.Get(context.Background(), types.NamespacedName{Name: DefaultBindingName}, crb); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	return crb
}

// certificateReady marks the Certificate Ready, as cert-manager does once its Secret is written.
func (f *fixture) certificateReady(t *testing.T, name string) {
	t.Helper()
	cert := &cmv1.Certificate{}
	f.get(t, cert, ns, name)
	cert.Status.Conditions = []cmv1.CertificateCondition{{Type: cmv1.CertificateConditionReady, Status: cmmeta.ConditionTrue}}
	if err := f.c.Update(context.Background(), cert); err != nil {
		t.Fatal(err)
	}
}

func ownedBy(obj client.Object, manager string) bool {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func status(sts *appsv1.StatefulSet) string { return sts.Annotations[keys.AnnotationStatus] }

// TestReconcileSecuresOptedInOperator: an operator of an opted-in namespace whose TLS Secret
// exists gets its eck.yaml and pod template secured, its companions, and the status
// "secured"; a second pass changes nothing.
func TestReconcileSecuresOptedInOperator(t *testing.T) {
	f := newFixture(t, true, Options{Defaults: policy.Defaults{Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}},
		namespace(optedIn), operator(map[string]string{keys.AnnotationTLSSecret: "metrics-tls"}), config(), tlsSecret("metrics-tls"))
	if res := f.reconcile(t, "elastic-operator"); res.RequeueAfter != 0 {
		t.Errorf("requeued after %s with the Secret there", res.RequeueAfter)
	}
	if got := status(f.statefulSet(t)); got != statusSecured {
		t.Errorf("status %q, want %q", got, statusSecured)
	}
	f.checkEndState(t, "metrics-tls")
	svc := f.checkCompanions(t)
	sm := &monitoringv1.ServiceMonitor{}
	f.get(t, sm, ns, "elastic-operator-metrics-guard")
	if !metav1.IsControlledBy(sm, f.statefulSet(t)) || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor = %+v, owners %+v", sm.Spec, sm.OwnerReferences)
	}
	if f.exists(t, &cmv1.Certificate{}, ns, "elastic-operator-metrics-guard") {
		t.Error("a Certificate was created for an operator that names its TLS Secret")
	}
	ev := f.events()
	for _, reason := range []string{"ConfigSecured", "PodTemplateSecured", "Secured"} {
		if !hasEvent(ev, reason) {
			t.Errorf("no %s event in %q", reason, ev)
		}
	}

	// Idempotent: nothing left to write.
	sts, cm := f.statefulSet(t), f.configMap(t)
	f.reconcile(t, "elastic-operator")
	if again := f.statefulSet(t); again.ResourceVersion != sts.ResourceVersion {
		t.Errorf("a second reconcile wrote the StatefulSet again (resourceVersion %s -> %s)", sts.ResourceVersion, again.ResourceVersion)
	}
	if again := f.configMap(t); again.ResourceVersion != cm.ResourceVersion {
		t.Errorf("a second reconcile wrote the ConfigMap again:\n%s", again.Data["eck.yaml"])
	}
	if ev := f.events(); hasEvent(ev, "PodTemplateSecured") || hasEvent(ev, "ConfigSecured") || hasEvent(ev, "Secured") {
		t.Errorf("a second reconcile reported changes: %q", ev)
	}
}

// TestReconcileWaitsForTheSecret: with an issuer, the operator is secured all the same (the
// pod waits for the Secret), but until cert-manager's Certificate is Ready (its Secret
// written) the status says what it waits for and the controller looks again; then it is
// "secured". The guard reads no Secret: the Certificate's condition tells.
func TestReconcileWaitsForTheSecret(t *testing.T) {
	issuer := map[string]string{keys.AnnotationIssuer: "corp-ca"}
	f := newFixture(t, true, Options{}, namespace(optedIn), operator(issuer), config())
	res := f.reconcile(t, "elastic-operator")
	if res.RequeueAfter != waitForSecret {
		t.Errorf("RequeueAfter = %s, want %s", res.RequeueAfter, waitForSecret)
	}
	secret := "elastic-operator-metrics-guard-tls"
	if got, want := status(f.statefulSet(t)), "waiting for certificate Secret "+secret; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	f.checkEndState(t, secret)
	f.checkCompanions(t)
	if ev := f.events(); !hasEvent(ev, "WaitingForCertificate") || hasEvent(ev, "Secured") {
		t.Errorf("events %q, want WaitingForCertificate and no Secured", ev)
	}

	f.certificateReady(t, "elastic-operator-metrics-guard")
	if res := f.reconcile(t, "elastic-operator"); res.RequeueAfter != 0 {
		t.Errorf("requeued after %s with the Certificate Ready", res.RequeueAfter)
	}
	if got := status(f.statefulSet(t)); got != statusSecured {
		t.Errorf("status %q once the Certificate is Ready, want %q", got, statusSecured)
	}
	if ev := f.events(); !hasEvent(ev, "Secured") {
		t.Errorf("no Secured event once the Certificate is Ready: %q", ev)
	}
}

// TestReconcileWithAnIssuer: an issuer gets a Certificate (owned by the StatefulSet) into the
// Secret the pod mounts, and the ServiceMonitor verifies against it; until cert-manager writes
// the Secret, the status waits for it. Without cert-manager's API nothing is created for it,
// and an Event says so.
func TestReconcileWithAnIssuer(t *testing.T) {
	issuer := map[string]string{keys.AnnotationIssuer: "corp-ca", keys.AnnotationIssuerKind: "ClusterIssuer"}
	f := newFixture(t, true, Options{Defaults: policy.Defaults{Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}}, namespace(optedIn), operator(issuer), config())
	f.reconcile(t, "elastic-operator")
	cert := &cmv1.Certificate{}
	f.get(t, cert, ns, "elastic-operator-metrics-guard")
	sts := f.statefulSet(t)
	if !metav1.IsControlledBy(cert, sts) || cert.Spec.IssuerRef.Name != "corp-ca" || cert.Spec.IssuerRef.Kind != "ClusterIssuer" ||
		cert.Spec.Duration == nil || cert.Spec.Duration.Duration != policy.DefaultCertificate.Duration {
		t.Errorf("Certificate = %+v, owners %+v", cert.Spec, cert.OwnerReferences)
	}
	secret := cert.Spec.SecretName
	if secret == "" {
		t.Fatal("the Certificate names no Secret")
	}
	if !ownedBy(cert, FieldManager) {
		t.Errorf("the Certificate is not applied by %s", FieldManager)
	}
	if want := "elastic-operator-metrics-guard.elastic-system.svc"; len(cert.Spec.DNSNames) == 0 || cert.Spec.DNSNames[0] != want {
		t.Errorf("DNS names %v, want %s first", cert.Spec.DNSNames, want)
	}
	if got, want := status(sts), "waiting for certificate Secret "+secret; got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	f.checkEndState(t, secret)
	f.checkCompanions(t)
	sm := &monitoringv1.ServiceMonitor{}
	f.get(t, sm, ns, "elastic-operator-metrics-guard")
	if tls := sm.Spec.Endpoints[0].TLSConfig; tls == nil || tls.CA.Secret == nil || tls.CA.Secret.Name != secret || tls.CA.Secret.Key != "ca.crt" {
		t.Errorf("the ServiceMonitor does not verify against %s's ca.crt: %+v", secret, sm.Spec.Endpoints[0].TLSConfig)
	}

	t.Run("cert-manager not installed", func(t *testing.T) {
		f := newFixture(t, false, Options{Defaults: policy.Defaults{Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}}, namespace(optedIn), operator(issuer), config())
		f.reconcile(t, "elastic-operator")
		if f.exists(t, &cmv1.Certificate{}, ns, "elastic-operator-metrics-guard") || f.exists(t, &monitoringv1.ServiceMonitor{}, ns, "elastic-operator-metrics-guard") {
			t.Error("created an object of an API that is not served")
		}
		if ev := f.events(); !hasEvent(ev, "APINotInstalled") {
			t.Errorf("no APINotInstalled event: %q", ev)
		}
		if got := status(f.statefulSet(t)); !strings.HasPrefix(got, "waiting for certificate Secret ") {
			t.Errorf("status %q", got)
		}
		f.checkCompanions(t)
	})
}

// TestReconcileCannotReadTheOperator: an operator started through a shell (sh -c) is one the
// guard cannot read: it is left as it is, with "not secured: unknown ..." and the reason.
func TestReconcileCannotReadTheOperator(t *testing.T) {
	sts := operator(map[string]string{keys.AnnotationTLSSecret: "metrics-tls"})
	c := &sts.Spec.Template.Spec.Containers[0]
	c.Command, c.Args = []string{"sh", "-c", "exec /elastic-operator manager --config=/conf/eck.yaml"}, nil
	f := newFixture(t, true, Options{}, namespace(optedIn), sts, config(), tlsSecret("metrics-tls"))
	f.reconcile(t, "elastic-operator")
	got := status(f.statefulSet(t))
	if !strings.HasPrefix(got, "not secured: ") || !strings.Contains(got, "unknown: the guard cannot tell what ECK reads") || !strings.Contains(got, `runs "sh"`) {
		t.Errorf("status %q, want not secured: unknown, naming the launcher", got)
	}
	if ev := f.events(); !hasEvent(ev, "Unsupported") {
		t.Errorf("no Unsupported event: %q", ev)
	}
	// Left as it is: the guard does not write what it could not judge.
	if after := f.statefulSet(t); len(after.Spec.Template.Spec.Volumes) != 1 || after.Spec.Template.Annotations[keys.AnnotationMetricsHash] != "" {
		t.Errorf("the pod template of an operator the guard cannot read was changed: %+v", after.Spec.Template)
	}
	if f.configMap(t).Data["eck.yaml"] != config().Data["eck.yaml"] {
		t.Error("the eck.yaml of an operator the guard cannot read was changed")
	}
}

// TestReconcileInvalidSettings: an annotation the guard refuses leaves the operator as it is,
// with the reason in the status and an Event.
func TestReconcileInvalidSettings(t *testing.T) {
	f := newFixture(t, true, Options{}, namespace(optedIn), operator(map[string]string{keys.AnnotationMetricsPort: "abc"}), config())
	before := f.statefulSet(t)
	f.reconcile(t, "elastic-operator")
	after := f.statefulSet(t)
	if got := status(after); !strings.HasPrefix(got, "not secured: invalid settings: ") || !strings.Contains(got, keys.AnnotationMetricsPort) {
		t.Errorf("status %q", got)
	}
	if len(after.Spec.Template.Spec.Volumes) != len(before.Spec.Template.Spec.Volumes) || f.configMap(t).Data["eck.yaml"] != config().Data["eck.yaml"] {
		t.Error("an operator with invalid settings was changed")
	}
	if f.exists(t, &corev1.Service{}, ns, "elastic-operator-metrics-guard") {
		t.Error("a companion was created for an operator with invalid settings")
	}
	if ev := f.events(); !hasEvent(ev, "InvalidSettings") {
		t.Errorf("no InvalidSettings event: %q", ev)
	}
}

// TestReconcileNotGuarded: an operator of a namespace that did not opt in is not touched and
// gets no status; one that was secured before says it is no longer guarded.
func TestReconcileNotGuarded(t *testing.T) {
	f := newFixture(t, true, Options{}, namespace(nil), operator(nil), config())
	before := f.statefulSet(t)
	f.reconcile(t, "elastic-operator")
	if after := f.statefulSet(t); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("an operator that is not opted in was written: %v", after.Annotations)
	}
	if f.configMap(t).Data["eck.yaml"] != config().Data["eck.yaml"] || f.exists(t, &corev1.Service{}, ns, "elastic-operator-metrics-guard") {
		t.Error("an operator that is not opted in was secured")
	}

	f = newFixture(t, true, Options{}, namespace(nil), operator(map[string]string{keys.AnnotationStatus: statusSecured}), config())
	f.reconcile(t, "elastic-operator")
	if got := status(f.statefulSet(t)); !strings.HasPrefix(got, "not guarded: ") {
		t.Errorf("status %q, want not guarded: ...", got)
	}
}

// TestReconcileDeletedOperator: the cluster-scoped binding of an operator that is gone is
// deleted (its namespaced companions go with their owner); other operators' are kept.
func TestReconcileDeletedOperator(t *testing.T) {
	f := newFixture(t, true, Options{}, namespace(optedIn), operator(map[string]string{keys.AnnotationTLSSecret: "metrics-tls"}), config(), tlsSecret("metrics-tls"))
	f.reconcile(t, "elastic-operator")
	if crb := f.binding(t); len(crb.Subjects) != 1 {
		t.Fatalf("subjects %v, want the operator's ServiceAccount", crb.Subjects)
	}
	if err := f.c.Delete(context.Background(), f.statefulSet(t)); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "elastic-operator")
	if crb := f.binding(t); len(crb.Subjects) != 0 {
		t.Errorf("the ServiceAccount of a deleted operator is still bound: %v", crb.Subjects)
	}
}

// TestReconcileDeployment: an OLM install (a Deployment) is reconciled the same way, and its
// existing metrics Service is labelled instead of a new one created.
func TestReconcileDeployment(t *testing.T) {
	sts := operator(map[string]string{keys.AnnotationTLSSecret: "metrics-tls"})
	d := &appsv1.Deployment{
		ObjectMeta: sts.ObjectMeta,
		Spec:       appsv1.DeploymentSpec{Selector: sts.Spec.Selector, Template: sts.Spec.Template},
	}
	existing := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator-metrics", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"control-plane": "elastic-operator"},
			Ports: []corev1.ServicePort{{Name: "https", Port: 8081, TargetPort: intstr.FromString(keys.PortName)}}},
	}
	f := newFixture(t, true, Options{}, namespace(optedIn), d, config(), tlsSecret("metrics-tls"), existing)
	f.r.Kind = "Deployment"
	f.reconcile(t, "elastic-operator")
	got := f.get(t, &appsv1.Deployment{}, ns, "elastic-operator").(*appsv1.Deployment)
	if status := got.Annotations[keys.AnnotationStatus]; status != statusSecured {
		t.Errorf("status %q, want %q", status, statusSecured)
	}
	op, _ := eck.FromDeployment(got)
	op.Namespace = ns
	if _, findings := compliance.Operator(op, &got.Spec.Template, f.configMap(t)); len(findings) > 0 {
		t.Errorf("not in the end state: %v", findings)
	}
	svc := f.get(t, &corev1.Service{}, ns, "elastic-operator-metrics").(*corev1.Service)
	if svc.Labels[keys.LabelMetricsService] != "true" {
		t.Errorf("the existing metrics Service was not labelled: %v", svc.Labels)
	}
	if f.exists(t, &corev1.Service{}, ns, "elastic-operator-metrics-guard") {
		t.Error("a second metrics Service was created beside the existing one")
	}
}

// TestReconcileKeepsAUsersServiceMonitor: a ServiceMonitor of the user's that already selects
// the metrics Service (ECK's chart in its secure mode makes one) gets no second one beside it,
// as inject adds none; one that selects something else does not count.
func TestReconcileKeepsAUsersServiceMonitor(t *testing.T) {
	userSM := func(selector map[string]string) *monitoringv1.ServiceMonitor {
		return &monitoringv1.ServiceMonitor{
			ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: ns},
			Spec:       monitoringv1.ServiceMonitorSpec{Selector: metav1.LabelSelector{MatchLabels: selector}},
		}
	}
	existing := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator-metrics", Namespace: ns, Labels: map[string]string{"app.kubernetes.io/name": "elastic-operator"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"control-plane": "elastic-operator"},
			Ports: []corev1.ServicePort{{Name: "https", Port: 8081, TargetPort: intstr.FromString(keys.PortName)}}},
	}
	for name, tc := range map[string]struct {
		selector map[string]string
		added    bool
	}{
		"selects the metrics Service": {selector: map[string]string{"app.kubernetes.io/name": "elastic-operator"}, added: false},
		"selects another Service":     {selector: map[string]string{"app": "elasticsearch"}, added: true},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, true, Options{Defaults: policy.Defaults{Monitor: policy.Monitor{Kind: policy.ServiceMonitorKind}}}, namespace(optedIn), operator(map[string]string{keys.AnnotationTLSSecret: "metrics-tls"}),
				config(), tlsSecret("metrics-tls"), existing.DeepCopy(), userSM(tc.selector))
			f.reconcile(t, "elastic-operator")
			if added := f.exists(t, &monitoringv1.ServiceMonitor{}, ns, "elastic-operator-metrics-guard"); added != tc.added {
				t.Errorf("the guard's ServiceMonitor created: %v, want %v", added, tc.added)
			}
			if got := status(f.statefulSet(t)); got != statusSecured {
				t.Errorf("status %q, want %q", got, statusSecured)
			}
		})
	}
}

// TestReconcileNoLongerAnOperator: a workload the guard secured, then changed into one it
// cannot recognise (another image), does not keep its "secured".
func TestReconcileNoLongerAnOperator(t *testing.T) {
	f := newFixture(t, true, Options{}, namespace(optedIn), operator(map[string]string{keys.AnnotationTLSSecret: "metrics-tls"}), config(), tlsSecret("metrics-tls"))
	f.reconcile(t, "elastic-operator")
	if got := status(f.statefulSet(t)); got != statusSecured {
		t.Fatalf("status %q, want %q", got, statusSecured)
	}
	sts := f.statefulSet(t)
	sts.Spec.Template.Spec.Containers[0].Image = "docker.io/library/busybox:1.37"
	if err := f.c.Update(context.Background(), sts); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t, "elastic-operator")
	if got := status(f.statefulSet(t)); !strings.HasPrefix(got, "not guarded: no longer an ECK operator") {
		t.Errorf("status %q, want it to say the workload is no longer guarded", got)
	}
}
