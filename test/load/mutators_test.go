package main

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

func TestEquivalentPolicy(t *testing.T) {
	plain := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "manager", Image: "docker.elastic.co/eck/eck-operator:3.5.0"}}}}}}
	if _, _, err := equivalentPolicy(plain, "ns", admissionregistrationv1.PatchTypeApplyConfiguration); err == nil {
		t.Fatal("a StatefulSet the guard did not change: want an error")
	}
	if got := templateChange(&plain.Spec.Template, &plain.Spec.Template); got != "* nothing\n" {
		t.Fatalf("templateChange of equal templates = %q", got)
	}
	guarded := plain.DeepCopy()
	tmpl := &guarded.Spec.Template
	tmpl.Annotations = map[string]string{keys.AnnotationMetricsHash: "abc"}
	c := &tmpl.Spec.Containers[0]
	c.Ports = []corev1.ContainerPort{{Name: keys.PortName, ContainerPort: 8081, Protocol: corev1.ProtocolTCP}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: keys.VolumeName, MountPath: "/certs", ReadOnly: true}}
	tmpl.Spec.Volumes = []corev1.Volume{{Name: keys.VolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}}
	pol, bind, err := equivalentPolicy(guarded, "ns", admissionregistrationv1.PatchTypeApplyConfiguration)
	if err != nil {
		t.Fatal(err)
	}
	expr := pol.Spec.Mutations[0].ApplyConfiguration.Expression
	for _, want := range []string{`"abc"`, `containerPort: 8081`, `mountPath: "/certs"`, `name: variables.eck`, `secretName: variables.secret`} {
		if !strings.Contains(expr, want) {
			t.Errorf("the ApplyConfiguration lacks %s:\n%s", want, expr)
		}
	}
	if bind.Spec.PolicyName != pol.Name || bind.Spec.MatchResources.NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "ns" {
		t.Errorf("binding %+v", bind.Spec)
	}
	pol, _, err = equivalentPolicy(guarded, "ns", admissionregistrationv1.PatchTypeJSONPatch)
	if err != nil {
		t.Fatal(err)
	}
	if p := pol.Spec.Mutations[0].JSONPatch; p == nil || !strings.Contains(p.Expression, `"/ports/-"`) {
		t.Errorf("the JSONPatch policy: %+v", pol.Spec.Mutations[0])
	}
	change := templateChange(&plain.Spec.Template, tmpl)
	for _, want := range []string{keys.AnnotationMetricsHash, "ports", "volumeMounts", "volumes"} {
		if !strings.Contains(change, want) {
			t.Errorf("templateChange lacks %s:\n%s", want, change)
		}
	}
}
