package packaging

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/compliance"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// leaderElectionLease is the Lease the guard's replicas elect their controller with
// (cmd/eck-metrics-guard/app, LeaderElectionID).
const leaderElectionLease = "eck-metrics-guard.metrics-guard.eck.dev"

// TestHelmInstallSelfManaged installs the chart without cert-manager (certManager.enabled=false)
// for real, then runs the guard's own binary as the installed Deployment runs it: its
// container's args and environment, authenticated as the chart's ServiceAccount, so that the
// chart's RBAC, and nothing more, is what the guard has. It checks that the guard makes its
// certificate into the chart's Secret, fills the caBundle of the MutatingWebhookConfiguration
// Helm installed, wins the leader election, is never forbidden anything, and that the API
// server calls it over TLS it verifies: writes of an ECK operator in an opted-in namespace are
// mutated into the secured end state.
func TestHelmInstallSelfManaged(t *testing.T) {
	env := controlPlane(t)
	ctx := context.Background()
	const namespace = "guard-selfmanaged"

	// Built while the chart is installed; the build takes longest.
	built := make(chan struct{})
	var binary string
	var buildErr error
	go func() {
		defer close(built)
		start := time.Now()
		binary, buildErr = framework.BuildGuard(ctx, t.TempDir())
		t.Logf("eck-metrics-guard built in %s", time.Since(start).Round(100*time.Millisecond))
	}()

	// As the README installs it: the namespace first, excluded from the guard's own webhook.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: map[string]string{"metrics-guard.eck.dev/exclude": "true"}}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	r := installChart(t, env, "selfmanaged", namespace, "--set", "certManager.enabled=false")
	var (
		secretName  = r.fullname + "-webhook-tls"
		webhookHost = r.fullname + "-webhook." + namespace + ".svc"
		metricsHost = r.fullname + "-metrics." + namespace + ".svc"
	)
	deployment := &appsv1.Deployment{}
	r.get(t, deployment, r.fullname)
	pod := deployment.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("the Deployment has %d containers and %d init containers; this test runs one container", len(pod.Containers), len(pod.InitContainers))
	}
	container := pod.Containers[0]
	if len(container.Command) != 0 {
		t.Fatalf("the container sets command %v: the image's entrypoint is the binary, run here with the container's args only", container.Command)
	}
	if len(container.Args) == 0 || container.Args[0] != "webhook" {
		t.Fatalf("container args %v: want the webhook subcommand first", container.Args)
	}

	// The guard runs on this machine, not in a Pod: what a Pod gives it, and what must differ
	// outside a cluster, is stood in for here, and nothing else is changed.
	args := slices.Clone(container.Args)
	//  - The Secret volume, mounted by the kubelet at its mountPath: here a directory kept equal
	//    to the Secret (framework.MountSecret), in place of the mountPath in every argument.
	for _, m := range container.VolumeMounts {
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || pod.Volumes[i].Secret == nil {
			t.Fatalf("volume mount %s: only Secret volumes have a stand-in here", m.Name)
		}
		dir := t.TempDir()
		t.Cleanup(framework.MountSecret(env.Client, namespace, pod.Volumes[i].Secret.SecretName, dir))
		for j, a := range args {
			if name, value, ok := strings.Cut(a, "="); ok && (value == m.MountPath || strings.HasPrefix(value, strings.TrimSuffix(m.MountPath, "/")+"/")) {
				args[j] = name + "=" + dir + strings.TrimPrefix(value, m.MountPath)
			}
		}
	}
	//  - Ports: a Pod has a network namespace of its own, this test shares the machine's, so
	//    every listener gets a free port.
	ports := map[string]int{}
	for _, flag := range []string{"--webhook-port", "--metrics-bind-address", "--health-probe-bind-address"} {
		port, err := framework.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[flag] = port
	}
	originalWebhookPort := argValue(t, args, "--webhook-port")
	setArg(t, args, "--webhook-port", strconv.Itoa(ports["--webhook-port"]))
	setArg(t, args, "--metrics-bind-address", fmt.Sprintf(":%d", ports["--metrics-bind-address"]))
	setArg(t, args, "--health-probe-bind-address", fmt.Sprintf(":%d", ports["--health-probe-bind-address"]))
	//  - The API server reaches the webhook at https://localhost:<port> (below), not through
	//    the Service and cluster DNS, so the certificate must also name localhost.
	setArg(t, args, "--webhook-extra-dns-names", argValue(t, args, "--webhook-extra-dns-names")+",localhost")
	//  - In a Pod, client-go uses the ServiceAccount's projected token (in-cluster config):
	//    here a kubeconfig with a token of the same ServiceAccount from the TokenRequest API.
	if pod.ServiceAccountName != r.fullname {
		t.Fatalf("the Deployment runs as ServiceAccount %q, want the chart's %s", pod.ServiceAccountName, r.fullname)
	}
	kubeconfig, err := env.ServiceAccountKubeconfig(ctx, namespace, pod.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, "--kubeconfig="+kubeconfig)
	//  - In a Pod, controller-runtime reads the leader election namespace from the
	//    ServiceAccount mount; outside one it must be given.
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--leader-election-namespace=") }) {
		args = append(args, "--leader-election-namespace="+namespace)
	}
	//  - The environment: the container's, with the downward API's metadata.namespace and the
	//    container's memory limit (in bytes, as the kubelet gives it) resolved.
	var environ []string
	for _, e := range container.Env {
		switch {
		case e.ValueFrom == nil:
			environ = append(environ, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			environ = append(environ, e.Name+"="+namespace)
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			limit, ok := container.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				t.Fatalf("env %s: the container has no memory limit", e.Name)
			}
			environ = append(environ, fmt.Sprintf("%s=%d", e.Name, limit.Value()))
		default:
			t.Fatalf("env %s: no stand-in here for %+v", e.Name, e.ValueFrom)
		}
	}

	// In the cluster the API server calls the Service, which sends it to the container's
	// webhook port: check that route, then point the webhooks at the local port instead.
	checkServiceRoute(t, r, container, originalWebhookPort)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mwc := r.webhookConfiguration(t)
		for i := range mwc.Webhooks {
			cc := &mwc.Webhooks[i].ClientConfig
			if cc.Service == nil || cc.Service.Name != r.fullname+"-webhook" || cc.Service.Namespace != namespace {
				return fmt.Errorf("webhook %s calls %+v, not the release's Service", mwc.Webhooks[i].Name, cc.Service)
			}
			if len(cc.CABundle) != 0 {
				return fmt.Errorf("webhook %s has a caBundle before the guard ran: nothing would show the injection", mwc.Webhooks[i].Name)
			}
			cc.URL = ptr.To(fmt.Sprintf("https://localhost:%d%s", ports["--webhook-port"], ptr.Deref(cc.Service.Path, "/")))
			cc.Service = nil
		}
		return env.Client.Update(ctx, mwc)
	}); err != nil {
		t.Fatal(err)
	}

	<-built
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	start := time.Now()
	guard, err := env.StartProcess("eck-metrics-guard-"+r.name, binary, args, environ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guard.Stop(); err != nil {
			t.Error(err)
		} else if t.Failed() {
			t.Logf("last lines of %s:\n%s", guard.LogPath(), guard.Tail(40))
		}
	})

	// Ready as the kubelet's readiness probe sees it.
	probe := container.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil {
		t.Fatal("the Deployment has no HTTP readiness probe")
	}
	readyz := fmt.Sprintf("http://127.0.0.1:%d%s", ports["--health-probe-bind-address"], probe.HTTPGet.Path)
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if guard.Exited() {
			return false, fmt.Errorf("the guard exited:\n%s", guard.Tail(40))
		}
		res, err := http.Get(readyz)
		if err != nil {
			return false, nil
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("the guard is not ready at %s: %v\n%s", readyz, err, guard.Tail(40))
	}
	t.Logf("the guard is ready %s after it started", time.Since(start).Round(100*time.Millisecond))

	// Its certificate is in the chart's Secret, and its CA is exactly the caBundle of every
	// webhook of the configuration Helm installed.
	secret, bundle := r.waitCAInjected(t, secretName, 30*time.Second, nil)
	mwc := r.webhookConfiguration(t)
	for _, wh := range mwc.Webhooks {
		if string(wh.ClientConfig.CABundle) != string(secret.Data["ca.crt"]) {
			t.Errorf("webhook %s: the caBundle is not the Secret's ca.crt", wh.Name)
		}
	}
	verifyServing(t, secret, bundle, webhookHost, webhookHost+".cluster.local", metricsHost, "localhost")

	// The controller's leader election, with the chart's RBAC.
	framework.EventuallyWithin(t, "the guard to hold the leader election Lease", time.Minute, func() (bool, error) {
		lease := &coordinationv1.Lease{}
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaderElectionLease}, lease)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && ptr.Deref(lease.Spec.HolderIdentity, "") != "", err
	})

	// Admission through the API server: an ECK operator in an opted-in namespace. The
	// ConfigMap is created (and mutated); the StatefulSet is created with dryRun=All, so the
	// controller never acts on it and only the webhook can have changed it.
	opted := env.Namespace(t, "e2e-selfmanaged", map[string]string{keys.AnnotationSecure: "true", keys.AnnotationIssuer: "e2e-ca"}, nil)
	cm, sts := eckOperator(opted)
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, sts, client.DryRunAll); err != nil {
		t.Fatal(err)
	}
	op, ok := eck.FromStatefulSet(sts)
	if !ok {
		t.Fatal("the StatefulSet is no longer recognised as an ECK operator")
	}
	if _, findings := compliance.Operator(op, &sts.Spec.Template, cm); len(findings) > 0 {
		t.Errorf("the API server did not have the guard secure the operator (so it could not call it over verified TLS?): %v", findings)
	}

	// Nothing the guard asked for was forbidden: the chart's RBAC is enough.
	if log := guard.Log(); strings.Contains(log, "forbidden") {
		var lines []string
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "forbidden") {
				lines = append(lines, line)
			}
		}
		t.Errorf("the guard was forbidden requests with the chart's RBAC:\n%s", strings.Join(lines[:min(len(lines), 10)], "\n"))
	}
}

// argValue is the value of --name=value in args; the test fails if it is not there.
func argValue(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	t.Fatalf("no %s=... in the container's args %v: the chart changed, and so must this test", name, args)
	return ""
}

// setArg replaces the value of --name=value in args, in place; the test fails if it is not
// there.
func setArg(t *testing.T, args []string, name, value string) {
	t.Helper()
	for i, a := range args {
		if strings.HasPrefix(a, name+"=") {
			args[i] = name + "=" + value
			return
		}
	}
	t.Fatalf("no %s=... in the container's args %v: the chart changed, and so must this test", name, args)
}

// checkServiceRoute checks that the release's webhook Service sends the port the webhooks
// call to the container port the guard serves on (--webhook-port).
func checkServiceRoute(t *testing.T, r *release, container corev1.Container, webhookPort string) {
	t.Helper()
	svc := &corev1.Service{}
	r.get(t, svc, r.fullname+"-webhook")
	for _, wh := range r.webhookConfiguration(t).Webhooks {
		port := ptr.Deref(wh.ClientConfig.Service.Port, 443)
		i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port })
		if i < 0 {
			t.Fatalf("webhook %s calls port %d of Service %s, which has no such port", wh.Name, port, svc.Name)
		}
		target := svc.Spec.Ports[i].TargetPort
		if target.Type == intstr.String {
			j := slices.IndexFunc(container.Ports, func(p corev1.ContainerPort) bool { return p.Name == target.StrVal })
			if j < 0 {
				t.Fatalf("Service %s targets port %s, which the container does not declare", svc.Name, target.StrVal)
			}
			target = intstr.FromInt32(container.Ports[j].ContainerPort)
		}
		if target.String() != webhookPort {
			t.Errorf("webhook %s: Service %s sends port %d to %s, the guard serves on --webhook-port=%s", wh.Name, svc.Name, port, target.String(), webhookPort)
		}
	}
}

// eckOperator is a minimal ECK operator as Elastic's manifests install it: the ConfigMap
// elastic-operator with eck.yaml, and the StatefulSet running `manager --config=/conf/eck.yaml`
// from it.
func eckOperator(namespace string) (*corev1.ConfigMap, *appsv1.StatefulSet) {
	labels := map[string]string{"control-plane": "elastic-operator"}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: namespace},
		Data:       map[string]string{"eck.yaml": "log-verbosity: 0\nmetrics-port: 0\ncontainer-registry: docker.elastic.co\n"},
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "elastic-operator", Namespace: namespace, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			ServiceName: "elastic-operator",
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: "elastic-operator",
					Containers: []corev1.Container{{
						Name:         "manager",
						Image:        "docker.elastic.co/eck/eck-operator:3.5.0",
						Args:         []string{"manager", "--config=/conf/eck.yaml"},
						VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf", ReadOnly: true}},
					}},
					Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "elastic-operator"}},
					}}},
				},
			},
		},
	}
	return cm, sts
}
