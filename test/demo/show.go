package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/pmezard/go-difflib/difflib"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/controller"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
)

// show prints what the guard changed and created, object by object.
func show(ctx context.Context, c client.Client, before, after snapshot) error {
	ns, name := after.sts.Namespace, after.sts.Name
	heading("What the guard did to " + ns + "/" + name)

	// eck.yaml
	section("ConfigMap %s, key %s (unified diff; other keys, order and comments kept)", after.cm.Name, after.op.ConfigKey)
	a, b := before.cm.Data[after.op.ConfigKey], after.cm.Data[after.op.ConfigKey]
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(strings.TrimRight(a, "\n")), B: difflib.SplitLines(strings.TrimRight(b, "\n")),
		FromFile: "eck.yaml (as applied)", ToFile: "eck.yaml (secured)", Context: 10,
	})
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(diff, "\n"), "\n") {
		fmt.Printf("    %s\n", line)
	}

	// StatefulSet pod template.
	section("StatefulSet %s, pod template (+ added by the guard)", name)
	bc, ac := container(before), container(after)
	list("manager ports", names(bc.Ports, portString), names(ac.Ports, portString))
	list("volume mounts", names(bc.VolumeMounts, mountString), names(ac.VolumeMounts, mountString))
	list("volumes", names(before.sts.Spec.Template.Spec.Volumes, volumeString), names(after.sts.Spec.Template.Spec.Volumes, volumeString))
	list("annotations", annotations(before.sts.Spec.Template.Annotations), annotations(after.sts.Spec.Template.Annotations))
	fmt.Printf("      %-15s %s: %s\n", "status", keys.AnnotationStatus, after.sts.Annotations[keys.AnnotationStatus])

	// Certificate and Secret.
	var certs cmv1.CertificateList
	if err := c.List(ctx, &certs, client.InNamespace(ns), client.MatchingLabels{keys.LabelOperator: name}); err != nil {
		return err
	}
	for _, crt := range certs.Items {
		section("Certificate %s (issuer %s %s)", crt.Name, crt.Spec.IssuerRef.Kind, crt.Spec.IssuerRef.Name)
		for _, cond := range crt.Status.Conditions {
			if cond.Type == cmv1.CertificateConditionReady {
				fmt.Printf("      Ready=%s  %s: %s\n", cond.Status, cond.Reason, cond.Message)
			}
		}
		fmt.Printf("      dnsNames: %s\n", strings.Join(crt.Spec.DNSNames, ", "))
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: crt.Spec.SecretName}, &secret); err != nil {
			return err
		}
		section("Secret %s (keys only)", secret.Name)
		keys := make([]string, 0, len(secret.Data))
		for k := range secret.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Printf("      keys: %s\n", strings.Join(keys, ", "))
		if leaf, err := parseLeaf(secret.Data[corev1.TLSCertKey]); err != nil {
			fmt.Printf("      tls.crt: %v\n", err)
		} else {
			fmt.Printf("      tls.crt: DNS names %s; issued by %q; expires %s (in %s)\n",
				strings.Join(leaf.DNSNames, ", "), leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339), days(time.Until(leaf.NotAfter)))
			roots := x509.NewCertPool()
			if len(leaf.DNSNames) > 0 && roots.AppendCertsFromPEM(secret.Data["ca.crt"]) {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: leaf.DNSNames[0]}); err != nil {
					fmt.Printf("      ✗ does not verify against ca.crt for %s: %v\n", leaf.DNSNames[0], err)
				} else {
					fmt.Printf("      ✓ verifies against ca.crt for %s\n", leaf.DNSNames[0])
				}
			}
		}
	}

	// Pod.
	pod := after.pod
	section("Pod %s (created by kube-controller-manager; phase %s: this control plane has no kubelet)", pod.Name, pod.Status.Phase)
	fmt.Printf("      revision %s (was %s before the retrofit)\n", pod.Labels[appsv1.ControllerRevisionHashLabelKey], before.pod.Labels[appsv1.ControllerRevisionHashLabelKey])
	for _, ct := range pod.Spec.Containers {
		for _, m := range ct.VolumeMounts {
			if m.Name == keys.VolumeName {
				fmt.Printf("      container %s mounts %s\n", ct.Name, mountString(m))
			}
		}
	}
	fmt.Printf("      volume %s\n", volumeString(findVolume(pod.Spec.Volumes)))

	// Service.
	var services corev1.ServiceList
	if err := c.List(ctx, &services, client.InNamespace(ns), client.MatchingLabels{keys.LabelMetricsService: "true", keys.LabelOperator: name}); err != nil {
		return err
	}
	for _, svc := range services.Items {
		section("Service %s (what ServiceMonitors select)", svc.Name)
		for _, p := range svc.Spec.Ports {
			fmt.Printf("      port %s %d -> targetPort %s\n", p.Name, p.Port, p.TargetPort.String())
		}
		fmt.Printf("      selector: %s\n", kv(svc.Spec.Selector))
		fmt.Printf("      labels:   %s\n", kv(svc.Labels))
	}

	// The one auth-delegator ClusterRoleBinding of the guarded operators, which the
	// controller keeps (its ServiceAccount a subject once the namespace opted in).
	var crb rbacv1.ClusterRoleBinding
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: after.op.ServiceAccount, Namespace: ns}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		err := c.Get(ctx, client.ObjectKey{Name: controller.DefaultBindingName}, &crb)
		if err == nil && slices.Contains(crb.Subjects, subject) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ClusterRoleBinding %s does not bind %s/%s (%v): %v", controller.DefaultBindingName, ns, subject.Name, crb.Subjects, err)
		}
	}
	section("ClusterRoleBinding %s (lets ECK check scrapers' tokens)", crb.Name)
	for _, s := range crb.Subjects {
		fmt.Printf("      %s %s/%s -> %s %s\n", s.Kind, s.Namespace, s.Name, crb.RoleRef.Kind, crb.RoleRef.Name)
	}

	// ServiceMonitor (the CRD is installed).
	var sms monitoringv1.ServiceMonitorList
	if err := c.List(ctx, &sms, client.InNamespace(ns), client.MatchingLabels{keys.LabelOperator: name}); err == nil {
		for _, sm := range sms.Items {
			section("ServiceMonitor %s (the Prometheus Operator's CRD is installed)", sm.Name)
			for _, ep := range sm.Spec.Endpoints {
				line := fmt.Sprintf("      port %s, scheme %s", ep.Port, schemeString(ep.Scheme))
				if tc := ep.TLSConfig; tc != nil {
					line += ", serverName " + ptrString(tc.ServerName)
					if tc.CA.Secret != nil {
						line += fmt.Sprintf(", CA from Secret %s key %s", tc.CA.Secret.Name, tc.CA.Secret.Key)
					}
				}
				fmt.Println(line)
			}
		}
	}

	fmt.Println()
	printEvents(ctx, os.Stdout, c, after.sts)
	return nil
}

// printEvents prints the Events about the StatefulSet, oldest first.
func printEvents(ctx context.Context, w io.Writer, c client.Client, sts *appsv1.StatefulSet) {
	fmt.Fprintf(w, "  Events on StatefulSet %s\n", sts.Name)
	var events eventsv1.EventList
	if err := c.List(ctx, &events, client.InNamespace(sts.Namespace)); err != nil {
		fmt.Fprintf(w, "      (cannot list events: %v)\n", err)
		return
	}
	items := slices.DeleteFunc(events.Items, func(e eventsv1.Event) bool {
		return e.Regarding.Kind != "StatefulSet" || e.Regarding.Name != sts.Name
	})
	sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
	if len(items) == 0 {
		fmt.Fprintln(w, "      (none)")
	}
	for _, e := range items {
		from := e.ReportingController
		if from == "" {
			from = e.DeprecatedSource.Component
		}
		fmt.Fprintf(w, "      %-7s %-22s %s  [%s]\n", e.Type, e.Reason, e.Note, from)
	}
}

func eventTime(e eventsv1.Event) time.Time {
	if !e.EventTime.IsZero() {
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

func heading(s string) {
	fmt.Printf("== %s ==\n", s)
}

func section(format string, args ...any) {
	fmt.Printf("\n  %s\n", fmt.Sprintf(format, args...))
}

// list prints the after values, marking with + those that were not there before.
func list(label string, before, after []string) {
	if len(after) == 0 {
		fmt.Printf("      %-15s (none)\n", label)
	}
	for i, v := range after {
		mark := " "
		if !slices.Contains(before, v) {
			mark = "+"
		}
		if i > 0 {
			label = ""
		}
		fmt.Printf("      %-15s %s %s\n", label, mark, v)
	}
}

func names[T any](items []T, format func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, format(it))
	}
	return out
}

func container(s snapshot) corev1.Container {
	return s.sts.Spec.Template.Spec.Containers[s.op.ContainerIndex]
}

func portString(p corev1.ContainerPort) string {
	return fmt.Sprintf("%s %d/%s", p.Name, p.ContainerPort, p.Protocol)
}

func mountString(m corev1.VolumeMount) string {
	s := m.Name + " at " + m.MountPath
	if m.ReadOnly {
		s += " (read-only)"
	}
	return s
}

func volumeString(v corev1.Volume) string {
	switch {
	case v.Secret != nil:
		optional := "required"
		if v.Secret.Optional != nil && *v.Secret.Optional {
			optional = "optional"
		}
		return fmt.Sprintf("%s: Secret %s (%s)", v.Name, v.Secret.SecretName, optional)
	case v.ConfigMap != nil:
		return fmt.Sprintf("%s: ConfigMap %s", v.Name, v.ConfigMap.Name)
	}
	return v.Name
}

func findVolume(vols []corev1.Volume) corev1.Volume {
	for _, v := range vols {
		if v.Name == keys.VolumeName {
			return v
		}
	}
	return corev1.Volume{Name: keys.VolumeName + ": (missing)"}
}

// secretVolume is the Secret of the tls-certificate volume, if the pod has one.
func secretVolume(spec corev1.PodSpec) string {
	if v := findVolume(spec.Volumes); v.Secret != nil {
		return v.Secret.SecretName
	}
	return ""
}

func annotations(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+": "+v)
	}
	sort.Strings(out)
	return out
}

func kv(m map[string]string) string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func parseLeaf(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

func days(d time.Duration) string {
	return fmt.Sprintf("%dd", int(d.Hours()+12)/24)
}

func schemeString(s *monitoringv1.Scheme) string {
	if s == nil {
		return "http"
	}
	return string(*s)
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
