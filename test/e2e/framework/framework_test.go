package framework_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// TestControlPlane checks the control plane itself: the version the binaries report, and that
// kube-controller-manager creates a StatefulSet's Pod and garbage-collects it again.
func TestControlPlane(t *testing.T) {
	start := time.Now()
	env := framework.Start(t, framework.Options{ControllerManager: true})
	t.Logf("control plane started in %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := env.Client

	want, err := framework.KubernetesVersion()
	if err != nil {
		t.Fatal(err)
	}
	info, err := env.Clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != want {
		t.Errorf("kube-apiserver /version = %s, want %s (stale bin/? delete it and run `make controlplane`)", info.GitVersion, want)
	}
	out, err := exec.Command(filepath.Join(env.BinDir, "kube-controller-manager"), "--version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "Kubernetes "+want {
		t.Errorf("kube-controller-manager --version = %q (%v), want %q", out, err, "Kubernetes "+want)
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "smoke"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}

	// The serviceaccount and root-ca-certificate-publisher controllers fill every Namespace.
	poll(ctx, t, "default ServiceAccount and kube-root-ca.crt in the Namespace", func() (bool, error) {
		var sa corev1.ServiceAccount
		var cm corev1.ConfigMap
		return exists(c.Get(ctx, types.NamespacedName{Namespace: "smoke", Name: "default"}, &sa)) &&
			exists(c.Get(ctx, types.NamespacedName{Namespace: "smoke", Name: "kube-root-ca.crt"}, &cm)), nil
	})

	labels := map[string]string{"app": "smoke"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "smoke", Name: "smoke"},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: "smoke",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "pause",
					Image: "registry.k8s.io/pause:3.10",
				}}},
			},
		},
	}
	if err := c.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the StatefulSet's Pod smoke-0", func() (bool, error) {
		var pod corev1.Pod
		err := c.Get(ctx, types.NamespacedName{Namespace: "smoke", Name: "smoke-0"}, &pod)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		owner := metav1.GetControllerOf(&pod)
		if owner == nil || owner.UID != sts.UID {
			t.Fatalf("Pod smoke-0 is not controlled by the StatefulSet: %+v", pod.OwnerReferences)
		}
		return true, nil
	})

	if err := c.Delete(ctx, sts, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "the garbage collection of Pod smoke-0", func() (bool, error) {
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace("smoke")); err != nil {
			return false, err
		}
		return len(pods.Items) == 0, nil
	})
	t.Logf("smoke test done in %s", time.Since(start).Round(time.Millisecond))
}

// TestMissingBinaries checks that a control plane that was not built is an error that says how
// to build it, not a skip.
func TestMissingBinaries(t *testing.T) {
	_, err := framework.New(t.Context(), framework.Options{BinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "run `make controlplane` first: ") {
		t.Fatalf("New with an empty BinDir: err = %v, want one asking to run `make controlplane`", err)
	}
}

func poll(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	start := time.Now()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return cond()
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	t.Logf("%s: after %s", what, time.Since(start).Round(time.Millisecond))
}

func exists(err error) bool { return err == nil }
