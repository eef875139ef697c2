package eck

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func statefulSet(image string, args []string, mutators ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "any-name", Namespace: "ops"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "eck"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "eck"}},
				Spec: corev1.PodSpec{
					ServiceAccountName: "eck-sa",
					Containers: []corev1.Container{{
						Name:         "manager",
						Image:        image,
						Args:         args,
						VolumeMounts: []corev1.VolumeMount{{Name: "conf", MountPath: "/conf"}},
					}},
					Volumes: []corev1.Volume{{Name: "conf", VolumeSource: corev1.VolumeSource{
						ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "my-config"}},
					}}},
				},
			},
		},
	}
	for _, m := range mutators {
		m(sts)
	}
	return sts
}

var managerArgs = []string{"manager", "--config=/conf/eck.yaml"}

func TestFromStatefulSet(t *testing.T) {
	tests := map[string]struct {
		sts         *appsv1.StatefulSet
		wantOK      bool
		wantVersion string
		wantCM      string
		wantKey     string
		wantUnknown string
	}{
		"released image":          {sts: statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", managerArgs), wantOK: true, wantVersion: "3.5.0", wantCM: "my-config", wantKey: "eck.yaml"},
		"ubi variant":             {sts: statefulSet("docker.elastic.co/eck/eck-operator-ubi:2.16.1", managerArgs), wantOK: true, wantVersion: "2.16.1", wantCM: "my-config", wantKey: "eck.yaml"},
		"fips variant, mirror":    {sts: statefulSet("registry.corp:5000/mirror/eck/eck-operator-fips:3.0.0", managerArgs), wantOK: true, wantVersion: "3.0.0", wantCM: "my-config", wantKey: "eck.yaml"},
		"tag and digest":          {sts: statefulSet("docker.elastic.co/eck/eck-operator:3.5.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", managerArgs), wantOK: true, wantVersion: "3.5.0", wantCM: "my-config", wantKey: "eck.yaml"},
		"digest only, label":      {sts: statefulSet("docker.elastic.co/eck/eck-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", managerArgs, withLabel("app.kubernetes.io/version", "2.16.0")), wantOK: true, wantVersion: "2.16.0", wantCM: "my-config", wantKey: "eck.yaml"},
		"no tag, no label":        {sts: statefulSet("eck-operator", managerArgs), wantOK: true, wantCM: "my-config", wantKey: "eck.yaml"},
		"config as two args":      {sts: statefulSet("eck/eck-operator:3.1.0", []string{"manager", "--config", "/conf/eck.yaml"}), wantOK: true, wantVersion: "3.1.0", wantCM: "my-config", wantKey: "eck.yaml"},
		"last config wins":        {sts: statefulSet("eck/eck-operator:3.1.0", []string{"manager", "--config=/elsewhere/x.yaml", "--config", "/conf/other.yaml"}), wantOK: true, wantVersion: "3.1.0", wantCM: "my-config", wantKey: "other.yaml"},
		"config elsewhere":        {sts: statefulSet("eck/eck-operator:3.1.0", []string{"manager", "--config=/etc/eck/eck.yaml"}), wantOK: true, wantVersion: "3.1.0"},
		"other image":             {sts: statefulSet("docker.io/library/nginx:1.27", managerArgs)},
		"look-alike image name":   {sts: statefulSet("quay.io/someone/my-eck-operator:3.5.0", managerArgs)},
		"registry named like eck": {sts: statefulSet("eck-operator.example.com/tools/busybox:1", managerArgs)},
		// ECK without a config file still serves metrics (open, by default): an operator.
		"no config flag":        {sts: statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", []string{"manager"}), wantOK: true, wantVersion: "3.5.0"},
		"relative config path":  {sts: statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", []string{"manager", "--config=conf/eck.yaml"}), wantOK: true, wantVersion: "3.5.0"},
		"container not manager": {sts: statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", managerArgs, func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Name = "operator" }), wantOK: true, wantVersion: "3.5.0", wantCM: "my-config", wantKey: "eck.yaml"},
		// What the guard cannot read is an operator it cannot tell anything about.
		"flags before the subcommand": {sts: statefulSet("docker.elastic.co/eck/eck-operator:3.5.0", []string{"--config=/conf/eck.yaml"}), wantOK: true, wantVersion: "3.5.0", wantUnknown: "before the manager subcommand"},
		"another program":             {sts: statefulSet("eck/eck-operator:3.1.0", []string{"--config=/conf/eck.yaml"}, withCommand("/manager")), wantOK: true, wantVersion: "3.1.0", wantUnknown: `runs "/manager"`},
		// The image, but provably not the operator: nothing is served.
		"another subcommand": {sts: statefulSet("eck/eck-operator:3.1.0", []string{"licensing-info"})},
		"help":               {sts: statefulSet("eck/eck-operator:3.1.0", []string{"manager", "--help"})},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			op, ok := FromStatefulSet(tc.sts)
			if ok != tc.wantOK {
				t.Fatalf("recognised = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			gotVersion := ""
			if op.Version != nil {
				gotVersion = op.Version.String()
			}
			if gotVersion != tc.wantVersion {
				t.Errorf("version = %q, want %q", gotVersion, tc.wantVersion)
			}
			if op.ConfigMapName != tc.wantCM || op.ConfigKey != tc.wantKey {
				t.Errorf("config = %q key %q, want %q key %q", op.ConfigMapName, op.ConfigKey, tc.wantCM, tc.wantKey)
			}
			if (tc.wantUnknown == "") != (op.Unknown == "") || !strings.Contains(op.Unknown, tc.wantUnknown) {
				t.Errorf("unknown = %q, want %q", op.Unknown, tc.wantUnknown)
			}
			if op.ServiceAccount != "eck-sa" || op.Selector["app"] != "eck" || op.Kind != "StatefulSet" {
				t.Errorf("unexpected operator %+v", op)
			}
		})
	}
}

func TestFromDeployment(t *testing.T) {
	sts := statefulSet("registry.connect.redhat.com/elastic/eck-operator:3.5.0", managerArgs)
	d := &appsv1.Deployment{ObjectMeta: sts.ObjectMeta, Spec: appsv1.DeploymentSpec{Selector: sts.Spec.Selector, Template: sts.Spec.Template}}
	d.Labels = map[string]string{"olm.owner": "elastic-cloud-eck.v3.5.0"}
	op, ok := FromDeployment(d)
	if !ok || op.Kind != "Deployment" {
		t.Fatalf("got %+v, %v; want an OLM Deployment operator", op, ok)
	}
}

func TestSupportsSecureMetrics(t *testing.T) {
	for image, want := range map[string]bool{
		"eck-operator:2.14.0":          false,
		"eck-operator:2.15.9":          false,
		"eck-operator:2.16.0":          true,
		"eck-operator:3.5.0":           true,
		"eck-operator:3.6.0-SNAPSHOT":  true,
		"eck-operator@sha256:abcd1234": false, // unknown version: not pretended to be secured
	} {
		op, ok := FromStatefulSet(statefulSet(image, managerArgs))
		if !ok {
			t.Fatalf("%s: not recognised", image)
		}
		if got, why := op.SupportsSecureMetrics(); got != want || (!got && why == "") {
			t.Errorf("%s: supports = %v (%q), want %v", image, got, why, want)
		}
	}
}

func withLabel(k, v string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Labels = map[string]string{k: v} }
}

func withCommand(cmd ...string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Command = cmd }
}
