package controller

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestModelMatchesRealECK is the differential test of the guard's model of what ECK reads:
// for shapes of pod templates and ConfigMaps (the ways flags, env, envFrom and the mounted
// config file reach ECK), the real ECK 3.5.0 binary runs as the kubelet would start it
// (framework.RunPod: volumes materialised at their paths in a mount namespace of its own,
// env and $(VAR) resolved by the test, not by the guard), and what it actually serves is
// compared with the model's verdict. A shape the model calls secured must serve TLS with
// the mounted certificate and refuse a request without a token; one it calls open must
// serve plain HTTP. Then each open shape is secured by the engine, and the result, run the
// same way, must be secured for real.
//
// What stands in for the kubelet: RunPod, which writes ConfigMap, Secret and projected
// volumes (items, subPath, binaryData) under a staging directory bound over /tmp, so every
// pod path here is under /tmp; the operator authenticates with its ServiceAccount's token.
func TestModelMatchesRealECK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tlsSecret, subject := selfSignedSecret(t, "tls")
	// A Secret the guard cannot read, which opens the endpoint as env or as the config file.
	insecure := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "insecure"}, Data: map[string][]byte{
		"METRICS_SECURE": []byte("false"), "eck.yaml": []byte("metrics-port: 0\nmetrics-secure: false\n")}}
	secrets := map[string]*corev1.Secret{tlsSecret.Name: tlsSecret, insecure.Name: insecure}

	type shape struct {
		name   string
		change func(c *corev1.Container, spec *corev1.PodSpec, cms map[string]*corev1.ConfigMap)
	}
	envFrom := func(name, prefix string) corev1.EnvFromSource {
		return corev1.EnvFromSource{Prefix: prefix, ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}}}
	}
	shapes := []shape{
		{name: "the end state"},
		{name: "env over the file", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.Env = []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "false"}}
		}},
		{name: "envFrom with a prefix", change: func(c *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			c.EnvFrom = []corev1.EnvFromSource{envFrom("insecure-env", "METRICS_")}
			cms["insecure-env"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "insecure-env"}, Data: map[string]string{"SECURE": "false"}}
		}},
		{name: "env over envFrom", change: func(c *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			c.EnvFrom = []corev1.EnvFromSource{envFrom("insecure-env", "")}
			c.Env = []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "true"}}
			cms["insecure-env"] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "insecure-env"}, Data: map[string]string{"METRICS_SECURE": "false"}}
		}},
		{name: "a flag in the command", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.Command = []string{"/elastic-operator", "manager", "--metrics-secure=false"}
			c.Args = c.Args[1:]
		}},
		{name: "a bare boolean flag before a word", change: func(c *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			cms["elastic-operator"].Data["eck.yaml"] = strings.Replace(cms["elastic-operator"].Data["eck.yaml"], "metrics-secure: true", "metrics-secure: false", 1)
			c.Args = append(c.Args, "--metrics-secure", "false")
		}},
		{name: "a variable in a flag", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.Env = []corev1.EnvVar{{Name: "SECURE", Value: "false"}}
			c.Args = append(c.Args, "--metrics-secure=$(SECURE)")
		}},
		{name: "the last --config", change: func(c *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			c.Args = append(c.Args, "--config", "/tmp/conf/other.yaml")
			cms["elastic-operator"].Data["other.yaml"] = strings.Replace(cms["elastic-operator"].Data["eck.yaml"], "metrics-secure: true", "metrics-secure: false", 1)
		}},
		{name: "items remap the key ECK reads", change: func(_ *corev1.Container, spec *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "eck.yaml", Path: "unused.yaml"}, {Key: "evil", Path: "eck.yaml"}}
			cms["elastic-operator"].Data["evil"] = strings.Replace(cms["elastic-operator"].Data["eck.yaml"], "metrics-secure: true", "metrics-secure: false", 1)
		}},
		{name: "subPath", change: func(c *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			c.VolumeMounts[0] = corev1.VolumeMount{Name: "conf", MountPath: "/tmp/conf/eck.yaml", SubPath: "open"}
			cms["elastic-operator"].Data["open"] = strings.Replace(cms["elastic-operator"].Data["eck.yaml"], "metrics-secure: true", "metrics-secure: false", 1)
		}},
		{name: "binaryData", change: func(_ *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			cm := cms["elastic-operator"]
			cm.BinaryData = map[string][]byte{"eck.yaml": []byte(strings.Replace(cm.Data["eck.yaml"], "metrics-secure: true", "metrics-secure: false", 1))}
			delete(cm.Data, "eck.yaml")
		}},
		{name: "keys are case-insensitive", change: func(_ *corev1.Container, _ *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
			cms["elastic-operator"].Data["eck.yaml"] = strings.Replace(cms["elastic-operator"].Data["eck.yaml"], "metrics-secure: true", "Metrics-Secure: false", 1)
		}},
		{name: "yes is false to ECK", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.Env = []corev1.EnvVar{{Name: "METRICS_SECURE", Value: "yes"}}
		}},
		{name: "no --config", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.Args = append(c.Args[:1:1], c.Args[2:]...)
		}},
		// Unknown to the guard (it does not read Secrets); secured by flags, which win.
		{name: "envFrom a Secret", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "insecure"}}}}
		}},
		{name: "valueFrom a Secret", change: func(c *corev1.Container, _ *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			c.Env = []corev1.EnvVar{{Name: "METRICS_SECURE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "insecure"}, Key: "METRICS_SECURE"}}}}
		}},
		{name: "the config file from a Secret", change: func(_ *corev1.Container, spec *corev1.PodSpec, _ map[string]*corev1.ConfigMap) {
			spec.Volumes[0].VolumeSource = corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "insecure"}}
		}},
	}

	// One operator at a time per port: each shape gets ports of its own.
	sem := make(chan struct{}, 2)
	for _, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			port, err := framework.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ns := operatorNamespace(ctx, t)
			tmpl, cms := modelPod(ns, port)
			if s.change != nil {
				s.change(&tmpl.Spec.Containers[0], &tmpl.Spec, cms)
			}
			in := modelInput(t, tmpl, cms, port)
			verdict := engine.Judge(in)
			served := runPod(ctx, t, ns, tmpl, cms, secrets, "model-"+strconv.Itoa(port))
			t.Logf("model: %s; ECK: %s", verdict, served)
			compare(t, verdict, served, subject)
			if verdict.Exposure == eck.ExposureUnknown && !served.Plain {
				t.Logf("(ECK served no plain HTTP here, but the model rightly does not claim to know)")
			}
			if verdict.Secured() {
				return
			}

			// What the guard makes of it, run for real.
			r, ferr := engine.Secure(in)
			if ferr != nil || r.Decision.Plan == nil {
				t.Fatalf("not secured: %v %s %v", ferr, r.Decision.Skip, r.Decision.Errs)
			}
			if !r.Verdict.Secured() {
				t.Fatalf("the engine's result is judged %s", r.Verdict)
			}
			if r.ConfigMap != nil {
				cms[r.ConfigMap.Name] = r.ConfigMap
			}
			after := runPod(ctx, t, ns, r.Template, cms, secrets, "model-"+strconv.Itoa(port)+"-secured")
			t.Logf("secured by the guard: ECK: %s", after)
			compare(t, r.Verdict, after, subject)
		})
	}
}

// operatorNamespace is a namespace of its own for one operator (ECK keeps state per
// namespace, such as its UUID ConfigMap, which two operators would fight over), with the
// ServiceAccount elastic-operator bound to cluster-admin: the operator under test, not its
// RBAC, is what these tests look at.
func operatorNamespace(ctx context.Context, t *testing.T) string {
	t.Helper()
	ns := env.Namespace(t, "e2e-model", nil, nil)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: ns}}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + ":elastic-operator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}},
	}
	if err := env.Client.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), crb) })
	// ECK exits at once if its RBAC is not there yet: wait until the binding is in effect.
	waitAllowed(t, "system:serviceaccount:"+ns+":elastic-operator", &authorizationv1.ResourceAttributes{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"}, nil)
	return ns
}

func runPod(ctx context.Context, t *testing.T, ns string, tmpl *corev1.PodTemplateSpec, cms map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret, log string) framework.Served {
	t.Helper()
	served, err := framework.RunPod(ctx, env, framework.PodOptions{
		Template: tmpl, ConfigMaps: cms, Secrets: secrets,
		Namespace: ns, ServiceAccount: "elastic-operator", LogName: log + ".log",
	})
	if err != nil {
		t.Fatal(err)
	}
	return served
}

// compare fails when ECK serves less than the model claims: secured must be TLS with the
// mounted certificate and token checks on the model's port; open must be plain HTTP.
func compare(t *testing.T, v eck.Verdict, s framework.Served, subject string) {
	t.Helper()
	switch v.Exposure {
	case eck.ExposureSecured:
		if !s.TLS || !s.Unauthorized || s.Plain || s.Port != v.Port || s.Certificate != subject {
			t.Errorf("the model says secured on port %d, ECK serves %s", v.Port, s)
		}
	case eck.ExposureOpen:
		if !s.Plain {
			t.Errorf("the model says open, ECK serves %s", s)
		}
	case eck.ExposureIncomplete:
		if s.Plain {
			t.Errorf("the model says incomplete (TLS), ECK serves %s", s)
		}
	}
}

// modelPod is an ECK 3.5.0 pod in the end state, with every path under /tmp (RunPod's
// root) and the flags an operator needs outside a cluster.
func modelPod(ns string, port int) (*corev1.PodTemplateSpec, map[string]*corev1.ConfigMap) {
	tmpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		ServiceAccountName: "elastic-operator",
		Containers: []corev1.Container{{
			Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
			Args: []string{"manager", "--config=/tmp/conf/eck.yaml", "--operator-namespace=" + ns,
				"--enable-leader-election=false", "--disable-telemetry", "--enable-webhook=false",
				"--manage-webhook-certs=false", "--metrics-host=127.0.0.1"},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "conf", MountPath: "/tmp/conf", ReadOnly: true},
				{Name: keys.VolumeName, MountPath: eck.DefaultMetricsCertDir, ReadOnly: true},
			},
		}},
		Volumes: []corev1.Volume{
			{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}}}},
			{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}},
		},
	}}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: ns},
		Data: map[string]string{"eck.yaml": "log-verbosity: 0\nmetrics-port: " + strconv.Itoa(port) + "\nmetrics-secure: true\n"}}
	return tmpl, map[string]*corev1.ConfigMap{"elastic-operator": cm}
}

// modelInput is the engine's input for the pod: opted in, the Secret tls, the port chosen.
func modelInput(t *testing.T, tmpl *corev1.PodTemplateSpec, cms map[string]*corev1.ConfigMap, port int) policy.Input {
	t.Helper()
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: "e2e-model"}, Spec: appsv1.StatefulSetSpec{Template: *tmpl}}
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		t.Fatal("not recognised")
	}
	op.Namespace = "e2e-model"
	// The StatefulSet's template is a copy: judge and secure the caller's.
	in := policy.Input{
		NamespaceAnnotations: map[string]string{keys.AnnotationSecure: "true", keys.AnnotationMetricsPort: strconv.Itoa(port)},
		Operator:             op, Template: tmpl, ConfigMap: cms[op.ConfigMapName],
		ConfigMaps: map[string]*corev1.ConfigMap{},
		Defaults:   policy.Defaults{TLSSecret: "tls"},
	}
	for _, name := range eck.ConfigMapRefs(tmpl, op.ContainerIndex) {
		in.ConfigMaps[name] = cms[name]
	}
	return in
}

// selfSignedSecret is a TLS Secret with a self-signed certificate, and its subject.
func selfSignedSecret(t *testing.T, name string) (*corev1.Secret, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "eck-metrics-guard-model-test"},
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}}, tmpl.Subject.String()
}
