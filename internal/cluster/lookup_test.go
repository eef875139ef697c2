package cluster

import (
	"context"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

var managed = []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}

func objectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "elastic-system", Labels: map[string]string{"app": name}, UID: "u-" + types.UID(name),
		ResourceVersion: "42", Generation: 3, OwnerReferences: []metav1.OwnerReference{{Kind: "Foo", Name: "owner"}},
		Annotations: map[string]string{keys.AnnotationTLSSecret: "metrics-tls", LastApplied: `{"kind":"ConfigMap","data":{"big":"copy"}}`, "team": "a"}, ManagedFields: managed}
}

func podTemplate(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "eck"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "manager", Image: image, Args: []string{"manager", "--config=/conf/eck.yaml"},
				VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf"}},
			}},
			Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
		},
	}
}

const eckImage = "docker.elastic.co/eck/eck-operator:3.5.0"

func statefulSet(name, image string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: objectMeta(name),
		Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "eck"}}, ServiceName: name,
			Template: podTemplate(image)},
		Status: appsv1.StatefulSetStatus{Replicas: 1, ReadyReplicas: 1},
	}
}

func deployment(name, image string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: objectMeta(name),
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "eck"}}, Template: podTemplate(image)},
		Status:     appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1},
	}
}

func transform(t *testing.T, obj any) any {
	t.Helper()
	out, err := Transform(obj)
	if err != nil {
		t.Fatal(err)
	}
	if out != obj {
		t.Fatalf("Transform returned %p, not the object it was given (%p)", out, obj)
	}
	return out
}

// TestTransformWorkloads: an ECK operator's workload keeps its spec (the pod template the
// guard judges and patches) and metadata; any other workload keeps only a stub of its metadata
// (stubMeta). Status, managed fields and kubectl's last-applied copy go from both.
func TestTransformWorkloads(t *testing.T) {
	t.Run("ECK StatefulSet", func(t *testing.T) {
		sts := statefulSet("elastic-operator", eckImage)
		want := sts.DeepCopy()
		transform(t, sts)
		if !apiequality.Semantic.DeepEqual(sts.Spec, want.Spec) {
			t.Errorf("the spec of an ECK operator was changed: %+v", sts.Spec)
		}
		checkTrimmedMeta(t, &sts.ObjectMeta, &want.ObjectMeta)
		if !apiequality.Semantic.DeepEqual(sts.Status, appsv1.StatefulSetStatus{}) {
			t.Errorf("status kept: %+v", sts.Status)
		}
	})
	t.Run("other StatefulSet", func(t *testing.T) {
		sts := statefulSet("postgres", "postgres:17")
		want := sts.DeepCopy()
		transform(t, sts)
		if !apiequality.Semantic.DeepEqual(sts.Spec, appsv1.StatefulSetSpec{}) {
			t.Errorf("the spec of a workload that is no ECK operator was kept: %+v", sts.Spec)
		}
		checkStubMeta(t, &sts.ObjectMeta, &want.ObjectMeta)
		if !apiequality.Semantic.DeepEqual(sts.Status, appsv1.StatefulSetStatus{}) {
			t.Errorf("status kept: %+v", sts.Status)
		}
	})
	t.Run("ECK Deployment", func(t *testing.T) {
		d := deployment("elastic-operator", "registry.connect.redhat.com/elastic/eck-operator:3.5.0")
		want := d.DeepCopy()
		transform(t, d)
		if !apiequality.Semantic.DeepEqual(d.Spec, want.Spec) {
			t.Errorf("the spec of an ECK operator was changed: %+v", d.Spec)
		}
		checkTrimmedMeta(t, &d.ObjectMeta, &want.ObjectMeta)
		if !apiequality.Semantic.DeepEqual(d.Status, appsv1.DeploymentStatus{}) {
			t.Errorf("status kept: %+v", d.Status)
		}
	})
	t.Run("other Deployment", func(t *testing.T) {
		// The ECK image, running another subcommand than the manager: it serves no metrics.
		d := deployment("eck-version", eckImage)
		d.Spec.Template.Spec.Containers[0].Args = []string{"version"}
		want := d.DeepCopy()
		transform(t, d)
		if !apiequality.Semantic.DeepEqual(d.Spec, appsv1.DeploymentSpec{}) {
			t.Errorf("the spec of a workload that is no ECK operator was kept: %+v", d.Spec)
		}
		checkStubMeta(t, &d.ObjectMeta, &want.ObjectMeta)
		nginx := deployment("web", "nginx:1.27")
		transform(t, nginx)
		if !apiequality.Semantic.DeepEqual(nginx.Spec, appsv1.DeploymentSpec{}) {
			t.Errorf("the spec of another image's workload was kept: %+v", nginx.Spec)
		}
	})
	t.Run("ECK image the guard cannot read", func(t *testing.T) {
		// A launcher (sleep, sh -c) may start the manager: the guard keeps the template, to
		// report the operator as unknown rather than lose sight of it.
		d := deployment("eck-shell", eckImage)
		d.Spec.Template.Spec.Containers[0].Command, d.Spec.Template.Spec.Containers[0].Args = []string{"sh", "-c", "exec /elastic-operator manager"}, nil
		want := d.DeepCopy()
		transform(t, d)
		if !apiequality.Semantic.DeepEqual(d.Spec, want.Spec) {
			t.Errorf("the spec of an ECK operator the guard cannot read was dropped: %+v", d.Spec)
		}
	})
}

// checkStubMeta: of a workload that is no ECK operator, what the controller needs to take a
// status back (name, namespace, resource version, deletion, the guard's annotations) stays.
func checkStubMeta(t *testing.T, got, was *metav1.ObjectMeta) {
	t.Helper()
	want := metav1.ObjectMeta{Name: was.Name, Namespace: was.Namespace, UID: was.UID, ResourceVersion: was.ResourceVersion,
		Generation: was.Generation, DeletionTimestamp: was.DeletionTimestamp}
	for k, v := range was.Annotations {
		if strings.HasPrefix(k, "metrics-guard.eck.dev/") {
			if want.Annotations == nil {
				want.Annotations = map[string]string{}
			}
			want.Annotations[k] = v
		}
	}
	if !apiequality.Semantic.DeepEqual(*got, want) {
		t.Errorf("stub metadata %+v, want %+v", got, want)
	}
}

// checkTrimmedMeta: the metadata stays (the annotations are settings), but managed fields and
// kubectl's last-applied copy.
func checkTrimmedMeta(t *testing.T, got, was *metav1.ObjectMeta) {
	t.Helper()
	if got.ManagedFields != nil {
		t.Errorf("managed fields kept: %+v", got.ManagedFields)
	}
	want := was.DeepCopy()
	want.ManagedFields = nil
	delete(want.Annotations, LastApplied)
	if _, trimmed := got.Annotations[eck.TrimmedAnnotation]; trimmed {
		// A ConfigMap whose data the cache did not keep whole says so, in the cache only.
		if want.Annotations == nil {
			want.Annotations = map[string]string{}
		}
		want.Annotations[eck.TrimmedAnnotation] = "true"
	}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Errorf("metadata changed: %+v, want %+v", got, want)
	}
}

// TestTransformConfigMaps: a ConfigMap that holds an eck.yaml (by its key, or a *.yaml key
// with ECK's settings) keeps all its data; any other keeps only the keys an envFrom could
// turn into a metrics variable (eck.EnvData), and no binaryData.
func TestTransformConfigMaps(t *testing.T) {
	tests := map[string]struct {
		data       map[string]string
		binaryData map[string][]byte
		wantData   map[string]string
		wantBinary map[string][]byte
	}{
		"eck.yaml": {
			data:     map[string]string{"eck.yaml": "metrics-port: 0\n", "other": "x"},
			wantData: map[string]string{"eck.yaml": "metrics-port: 0\n", "other": "x"},
		},
		"eck.yaml in binaryData": {
			binaryData: map[string][]byte{"eck.yaml": []byte("metrics-port: 0\n")},
			data:       map[string]string{"README": "x"},
			wantData:   map[string]string{"README": "x"},
			wantBinary: map[string][]byte{"eck.yaml": []byte("metrics-port: 0\n")},
		},
		"another *.yaml key with ECK settings": {
			data:     map[string]string{"operator.yaml": "log-verbosity: 0\nmetrics-secure: false\n", "notes.txt": "x"},
			wantData: map[string]string{"operator.yaml": "log-verbosity: 0\nmetrics-secure: false\n", "notes.txt": "x"},
		},
		"eck.yaml settings under a key of another name (mounted with items)": {
			data:       map[string]string{"operator-config": "log-verbosity: 0\nmetrics-port: 0\n", "notes.txt": "x"},
			binaryData: map[string][]byte{"blob": []byte{0}},
			wantData:   map[string]string{"operator-config": "log-verbosity: 0\nmetrics-port: 0\n"},
		},
		"env keys only": {
			data: map[string]string{
				"METRICS_SECURE": "false", "METRICS_PORT": "9090", "METRICS_HOST": "0.0.0.0", "METRICS_CERT_DIR": "/c",
				"SECURE":                 "false", // with an envFrom prefix METRICS_, this is METRICS_SECURE
				"PORT":                   "1",
				"application.properties": "a=b", "LOG_VERBOSITY": "1", "settings.yaml": "unrelated: true\n",
			},
			binaryData: map[string][]byte{"blob": []byte{0}},
			wantData: map[string]string{
				"METRICS_SECURE": "false", "METRICS_PORT": "9090", "METRICS_HOST": "0.0.0.0", "METRICS_CERT_DIR": "/c",
				"SECURE": "false", "PORT": "1",
			},
		},
		"nothing of interest": {
			data:       map[string]string{"application.properties": "a=b"},
			binaryData: map[string][]byte{"blob": []byte{0}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cm := &corev1.ConfigMap{ObjectMeta: objectMeta("cm"), Data: tc.data, BinaryData: tc.binaryData}
			was := cm.ObjectMeta.DeepCopy()
			transform(t, cm)
			if !apiequality.Semantic.DeepEqual(cm.Data, tc.wantData) {
				t.Errorf("data = %v, want %v", cm.Data, tc.wantData)
			}
			if !apiequality.Semantic.DeepEqual(cm.BinaryData, tc.wantBinary) {
				t.Errorf("binaryData = %v, want %v", cm.BinaryData, tc.wantBinary)
			}
			checkTrimmedMeta(t, &cm.ObjectMeta, was)
		})
	}
}

// TestTransformOthers: a Namespace keeps its name, labels and the guard's annotations; every
// other object only loses its managed fields and kubectl's last-applied copy.
func TestTransformOthers(t *testing.T) {
	ns := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-system", Labels: map[string]string{"team": "search"}, ResourceVersion: "7",
			Annotations: map[string]string{keys.AnnotationSecure: "true", LastApplied: "{}", "owner": "search-team"}, ManagedFields: managed,
			Finalizers: []string{"x"}}}
	transform(t, ns)
	want := metav1.ObjectMeta{Name: "elastic-system", Labels: map[string]string{"team": "search"}, ResourceVersion: "7",
		Annotations: map[string]string{keys.AnnotationSecure: "true"}}
	if !apiequality.Semantic.DeepEqual(ns.ObjectMeta, want) {
		t.Errorf("Namespace metadata %+v, want %+v", ns.ObjectMeta, want)
	}
	// Another kind's metadata (a Certificate's: the owner references matter) stays.
	cert := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "cert-manager.io/v1", Kind: "Certificate"}, ObjectMeta: objectMeta("cert")}
	svc := &corev1.Service{ObjectMeta: objectMeta("svc"), Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "eck"}}}
	for _, obj := range []client.Object{cert, svc} {
		was := obj.DeepCopyObject().(client.Object)
		transform(t, obj)
		was.SetManagedFields(nil)
		delete(was.GetAnnotations(), LastApplied)
		if !apiequality.Semantic.DeepEqual(obj, was) {
			t.Errorf("%T changed beyond its managed fields and last-applied copy: %+v", obj, obj)
		}
	}
	// Not an object at all: returned as is.
	if out, err := Transform("x"); err != nil || out != "x" {
		t.Errorf("Transform(non-object) = %v, %v", out, err)
	}
}

// TestCachedLookup reads through a client as the cache would serve it (trimmed).
func TestCachedLookup(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elastic-system", Annotations: map[string]string{keys.AnnotationSecure: "true"}}},
		statefulSet("elastic-operator", eckImage), statefulSet("postgres", "postgres:17"),
		deployment("olm-operator", eckImage), deployment("web", "nginx:1.27"),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"}, Data: map[string]string{"eck.yaml": "metrics-port: 0\n"}},
		statefulSet("elsewhere", eckImage),
	}
	objs[len(objs)-1].SetNamespace("other")
	for _, o := range objs {
		if _, err := Transform(o); err != nil {
			t.Fatal(err)
		}
	}
	l := CachedLookup{Reader: fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()}
	ctx := context.Background()

	ns, err := l.Namespace(ctx, "elastic-system")
	if err != nil || ns.Annotations[keys.AnnotationSecure] != "true" || ns.Coverage != nil {
		t.Errorf("Namespace = %+v, %v", ns, err)
	}
	if ns, err := l.Namespace(ctx, "missing"); err != nil || ns.Annotations != nil {
		t.Errorf("a missing namespace = %+v, %v; want the zero Namespace", ns, err)
	}
	if cm, err := l.ConfigMap(ctx, "elastic-system", "missing"); cm != nil || err != nil {
		t.Errorf("a missing ConfigMap = %v, %v; want nil, nil", cm, err)
	}

	ws, err := l.Operators(ctx, "elastic-system")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.Operator.Kind+"/"+w.Operator.Name)
		if w.Template == nil || w.Annotations[keys.AnnotationTLSSecret] != "metrics-tls" {
			t.Errorf("%s/%s: template %v, annotations %v", w.Operator.Kind, w.Operator.Name, w.Template, w.Annotations)
		}
	}
	if len(got) != 2 || got[0] != "StatefulSet/elastic-operator" || got[1] != "Deployment/olm-operator" {
		t.Errorf("Operators = %v, want the ECK StatefulSet and Deployment of the namespace only", got)
	}

	in, err := Input(ctx, l, "elastic-system", ws[0], policy.Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Operator.Namespace != "elastic-system" || in.ConfigMap == nil || in.ConfigMap.Data["eck.yaml"] != "metrics-port: 0\n" ||
		in.NamespaceAnnotations[keys.AnnotationSecure] != "true" || in.WorkloadAnnotations[keys.AnnotationTLSSecret] != "metrics-tls" {
		t.Errorf("Input = %+v", in)
	}
}

// TestTransformKeepsWhatDecisionsRead: a decision made from the cache (trimmed by Transform)
// is the one made from the objects as stored, for every way an operator may take its
// eck.yaml: the ConfigMap key eck.yaml, another *.yaml key, or a key of any name mounted at
// eck.yaml with items. Otherwise the webhook and the controller (which read the cache) would
// plan on another config than inject, which reads the objects: here, metrics port 8081, which
// the config gives the webhook server, instead of the config's own 9090.
func TestTransformKeepsWhatDecisionsRead(t *testing.T) {
	const config = "metrics-port: 9090\nmetrics-host: 127.0.0.1\nwebhook-port: 8081\n"
	for name, key := range map[string]string{"eck.yaml": "eck.yaml", "another yaml key": "operator.yaml", "a key of any name": "operator-config"} {
		t.Run(name, func(t *testing.T) {
			sts := statefulSet("elastic-operator", eckImage)
			if key != "eck.yaml" {
				sts.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: key, Path: "eck.yaml"}}
			}
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"}, Data: map[string]string{key: config, "unrelated": "x"}}
			decide := func(cm *corev1.ConfigMap) engine.Result {
				op, ok := eck.FromStatefulSet(sts)
				if !ok || op.ConfigKey != key {
					t.Fatalf("operator %+v, want it to read key %s", op, key)
				}
				r, err := engine.Secure(policy.Input{Operator: op, Template: &sts.Spec.Template, WorkloadAnnotations: sts.Annotations, ConfigMap: cm,
					NamespaceAnnotations: map[string]string{keys.AnnotationSecure: "true"}})
				if err != nil || r.Decision.Plan == nil {
					t.Fatalf("not secured: %v, %+v", err, r.Decision)
				}
				return r
			}
			stored := decide(cm)
			cached := cm.DeepCopy()
			transform(t, cached)
			fromCache := decide(cached)
			if *fromCache.Decision.Plan != *stored.Decision.Plan {
				t.Errorf("the plan from the cache %+v differs from the plan from the stored objects %+v (cached data %v)", *fromCache.Decision.Plan, *stored.Decision.Plan, cached.Data)
			}
			if stored.Decision.Plan.Port != 9090 {
				t.Errorf("port %d, want the config's 9090", stored.Decision.Plan.Port)
			}
			if _, kept := cached.Data["unrelated"]; kept && key == "operator-config" {
				t.Errorf("kept a key no decision reads: %v", cached.Data)
			}
		})
	}
}

// TestConfigMapsFromCacheOrAPI: the cache holds the ConfigMaps labelled as an operator's config
// (ConfigMapSelector); any other is read from the API server, whole (never marked trimmed), and
// a missing one is nil.
func TestConfigMapsFromCacheOrAPI(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	labelled := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system",
		Labels: map[string]string{keys.LabelConfigOf: "elastic-operator"}}, Data: map[string]string{"eck.yaml": "metrics-port: 8081\n"}}
	env := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "env", Namespace: "elastic-system"},
		Data: map[string]string{"METRICS_SECURE": "false", "application.properties": "a=b"}}
	if !ConfigMapSelector().Matches(labels.Set(labelled.Labels)) || ConfigMapSelector().Matches(labels.Set(env.Labels)) {
		t.Fatal("ConfigMapSelector selects the labelled ConfigMaps only")
	}
	cached := labelled.DeepCopy()
	if _, err := Transform(cached); err != nil {
		t.Fatal(err)
	}
	api := fake.NewClientBuilder().WithScheme(s).WithObjects(labelled.DeepCopy(), env.DeepCopy()).Build()
	l := CachedLookup{Reader: fake.NewClientBuilder().WithScheme(s).WithObjects(cached).Build(), Live: api}
	ctx := context.Background()
	reads := func(source string) float64 {
		var m dto.Metric
		if err := configMapReads.WithLabelValues(source).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	fromCache, fromAPI := reads("cache"), reads("api")

	if cm, err := l.ConfigMap(ctx, "elastic-system", "elastic-operator"); err != nil || cm == nil || cm.Data["eck.yaml"] != "metrics-port: 8081\n" {
		t.Errorf("the labelled ConfigMap = %v, %v", cm, err)
	}
	cm, err := l.ConfigMap(ctx, "elastic-system", "env")
	if err != nil || cm == nil || eck.Trimmed(cm) || cm.Data["application.properties"] != "a=b" {
		t.Errorf("a ConfigMap the cache does not hold = %+v, %v; want it whole from the API server", cm, err)
	}
	if cm, err := l.ConfigMap(ctx, "elastic-system", "missing"); cm != nil || err != nil {
		t.Errorf("a missing ConfigMap = %v, %v; want nil, nil", cm, err)
	}
	if got := reads("cache") - fromCache; got != 1 {
		t.Errorf("%v reads from the cache, want 1", got)
	}
	if got := reads("api") - fromAPI; got != 2 {
		t.Errorf("%v reads from the API server, want 2", got)
	}
}

// TestEntitledOnly: outside a namespace that entitles the guard, no ConfigMap is read.
func TestEntitledOnly(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cm := func(ns string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: ns}, Data: map[string]string{"eck.yaml": "x: 1\n"}}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "in", Annotations: map[string]string{keys.AnnotationSecure: "true"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "out"}}, cm("in"), cm("out")).Build()
	l := EntitledOnly{Lookup: CachedLookup{Reader: c}}
	ctx := context.Background()
	if got, err := l.ConfigMap(ctx, "in", "elastic-operator"); err != nil || got == nil {
		t.Errorf("entitled namespace: %v, %v", got, err)
	}
	if got, err := l.ConfigMap(ctx, "out", "elastic-operator"); err != nil || got != nil {
		t.Errorf("namespace not opted in: %v, %v; want nil", got, err)
	}
}

// countingLookup counts the ConfigMap reads of the Lookup it wraps.
type countingLookup struct {
	Lookup
	reads map[string]int
}

func (c countingLookup) ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, error) {
	c.reads[name]++
	return c.Lookup.ConfigMap(ctx, namespace, name)
}

// TestConfigMapInputUsesTheWrite: the webhook decides about a ConfigMap under admission with
// the write's copy, and does not read it again (from the API server, for one the cache does not
// hold yet), also where the operator reads it a second time (envFrom).
func TestConfigMapInputUsesTheWrite(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"},
		Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
				Args:         []string{"manager", "--config=/conf/eck.yaml"},
				EnvFrom:      []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf"}}}},
			Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}}},
		}}},
	}
	stored := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "elastic-system"}, Data: map[string]string{"eck.yaml": "metrics-port: 0\n"}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(sts, stored).Build()
	l := countingLookup{Lookup: CachedLookup{Reader: c}, reads: map[string]int{}}
	written := stored.DeepCopy()
	written.Data["eck.yaml"] = "metrics-port: 9000\n"
	in, ours, err := ConfigMapInput(context.Background(), l, "elastic-system", written, policy.Defaults{})
	if err != nil || !ours || in.Operator == nil {
		t.Fatalf("ConfigMapInput = %+v, %v, %v", in, ours, err)
	}
	if in.ConfigMap != written || in.ConfigMapGetter()("elastic-operator") != written || in.ConfigMaps["elastic-operator"] != nil && in.ConfigMaps["elastic-operator"] != written {
		t.Error("the decision reads another copy than the write's")
	}
	if l.reads["elastic-operator"] != 0 {
		t.Errorf("the admitted ConfigMap was read %d times", l.reads["elastic-operator"])
	}
}
