package packaging

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testCABundle is a caBundle for the variants without cert-manager. The API server does not
// parse it; nothing calls the webhook in these tests.
var testCABundle = base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nbm90IGEgcmVhbCBDQQ==\n-----END CERTIFICATE-----\n"))

// chartVariant is the chart rendered with the defaults, or with one documented option (or a
// few that go together) changed, and what that must change in the output.
type chartVariant struct {
	name  string
	args  []string
	check func(t *testing.T, in install)
}

// chartVariants cover every option documented in values.yaml. Each is linted, rendered,
// checked (checkConsistent, checkRestricted and its own check) and applied to the API server.
func chartVariants() []chartVariant {
	return []chartVariant{
		{"defaults", nil, func(t *testing.T, in install) {
			if *in.Deployment.Spec.Replicas != 2 {
				t.Errorf("replicas %d, want 2", *in.Deployment.Spec.Replicas)
			}
			for _, arg := range []string{"--leader-elect=true", "--controller=true", "--service-monitor=true", "--metrics-bind-address=:8443",
				"--metrics-secure=true", "--health-probe-bind-address=:8081", "--webhook-port=9443", "--zap-encoder=json", "--zap-log-level=info"} {
				if !in.hasArg(arg) {
					t.Errorf("no %s in %v", arg, in.Container.Args)
				}
			}
			if in.Container.Args[0] != "webhook" {
				t.Errorf("the first argument is %q, want the subcommand webhook", in.Container.Args[0])
			}
			if got := in.argWithPrefix("--default-"); got != "" {
				t.Errorf("%s without defaults.* set", got)
			}
			if in.Container.Image != "ghcr.io/eck-metrics-guard/eck-metrics-guard:latest" {
				t.Errorf("image %s", in.Container.Image)
			}
			pdb := into[policyv1.PodDisruptionBudget](t, in.must(t, "PodDisruptionBudget", "eck-metrics-guard"))
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 {
				t.Errorf("PodDisruptionBudget minAvailable %v, want 1", pdb.Spec.MinAvailable)
			}
			if c := in.Deployment.Spec.Template.Spec.TopologySpreadConstraints; len(c) != 1 || c[0].TopologyKey != "kubernetes.io/hostname" {
				t.Errorf("topologySpreadConstraints %v, want one over kubernetes.io/hostname", c)
			}
			for _, wh := range webhooksOf(t, in.rendered) {
				if *wh.FailurePolicy != admissionregistrationv1.Ignore || *wh.TimeoutSeconds != 5 {
					t.Errorf("webhook %s: failurePolicy %s, timeoutSeconds %d; want Ignore, 5", wh.Name, *wh.FailurePolicy, *wh.TimeoutSeconds)
				}
			}
			in.must(t, "Issuer", "eck-metrics-guard-selfsigned")
			in.must(t, "Certificate", "eck-metrics-guard-serving-cert")
			in.must(t, "ServiceAccount", "eck-metrics-guard")
			in.must(t, "Service", "eck-metrics-guard-metrics")
			in.must(t, "ClusterRole", "eck-metrics-guard-metrics-reader")
			in.must(t, "CustomResourceDefinition", "metricssecuritypolicies.metrics-guard.eck.dev")
			for _, kind := range []string{"ServiceMonitor", "NetworkPolicy", "Secret"} {
				if n := len(in.ofKind(kind)); n != 0 {
					t.Errorf("%d %s rendered by default", n, kind)
				}
			}
			// Only leader election's Role (in the release namespace), and no self-managed
			// certificate's roles: no update of any webhook configuration with cert-manager.
			in.must(t, "Role", "eck-metrics-guard")
			in.must(t, "RoleBinding", "eck-metrics-guard")
			for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
				if o := in.find(kind, "eck-metrics-guard-self-managed-cert"); o != nil {
					t.Errorf("%s %s rendered with cert-manager", kind, o.GetName())
				}
			}
			if n := len(in.ofKind("Role")); n != 1 {
				t.Errorf("%d Roles rendered by default, want leader election's only", n)
			}
			if got := in.argWithPrefix("--webhook-cert-mode"); got != "" {
				t.Errorf("%s with cert-manager", got)
			}
		}},
		{"cert-manager off, self-managed certificate", []string{"--set", "certManager.enabled=false"}, func(t *testing.T, in install) {
			if n := len(in.ofKind("Certificate")) + len(in.ofKind("Issuer")); n != 0 {
				t.Errorf("%d cert-manager objects rendered", n)
			}
			if !in.hasArg("--webhook-cert-mode=self-managed") {
				t.Errorf("args %v", in.Container.Args)
			}
			// checkConsistent (checkSelfManaged) checks the Secret, the Role and the flags.
			in.must(t, "Secret", "eck-metrics-guard-webhook-tls")
			in.must(t, "Role", "eck-metrics-guard-self-managed-cert")
			in.must(t, "RoleBinding", "eck-metrics-guard-self-managed-cert")
			in.must(t, "ClusterRole", "eck-metrics-guard-self-managed-cert")
			in.must(t, "ClusterRoleBinding", "eck-metrics-guard-self-managed-cert")
		}},
		{"self-managed certificate, other names", []string{"--set", "certManager.enabled=false", "--set", "fullnameOverride=guard", "--set", "webhook.secretName=guard-certs",
			"--set", "serviceAccount.name=guard-sa"}, func(t *testing.T, in install) {
			for _, arg := range []string{"--webhook-secret=guard-certs", "--webhook-service=guard-webhook", "--webhook-configuration=guard"} {
				if !in.hasArg(arg) {
					t.Errorf("no %s in %v", arg, in.Container.Args)
				}
			}
			in.must(t, "Secret", "guard-certs")
			in.must(t, "Role", "guard-self-managed-cert")
			// Update of the release's webhook configuration only, and of its one binding.
			rules := into[rbacv1.ClusterRole](t, in.must(t, "ClusterRole", "guard-self-managed-cert")).Rules
			if n := len(rules); n != 2 || !slices.Equal(rules[1].ResourceNames, []string{"guard"}) || !slices.Equal(rules[1].Verbs, []string{"update"}) {
				t.Errorf("self-managed ClusterRole rules %+v, want update of guard only", rules)
			}
			if !in.hasArg("--auth-delegator-binding=guard:auth-delegator") {
				t.Errorf("args %v, want --auth-delegator-binding=guard:auth-delegator", in.Container.Args)
			}
			found := false
			for _, r := range into[rbacv1.ClusterRole](t, in.must(t, "ClusterRole", "guard")).Rules {
				if slices.Contains(r.Resources, "clusterrolebindings") && len(r.ResourceNames) > 0 {
					found = slices.Equal(r.ResourceNames, []string{"guard:auth-delegator"})
				}
			}
			if !found {
				t.Errorf("ClusterRole guard does not restrict clusterrolebindings to guard:auth-delegator")
			}
		}},
		{"cert-manager off, own Secret and caBundle", []string{"--set", "certManager.enabled=false", "--set", "webhook.caBundle=" + testCABundle, "--set", "webhook.secretName=my-webhook-tls"}, func(t *testing.T, in install) {
			if n := len(in.ofKind("Certificate")) + len(in.ofKind("Issuer")); n != 0 {
				t.Errorf("%d cert-manager objects rendered", n)
			}
			if s := in.certSecret(t); s != "my-webhook-tls" {
				t.Errorf("the pods mount %s, want my-webhook-tls", s)
			}
			if got := in.argWithPrefix("--webhook-cert-mode"); got != "" || len(in.ofKind("Secret"))+len(in.ofKind("Role"))-1 != 0 || in.find("ClusterRole", "eck-metrics-guard-self-managed-cert") != nil {
				t.Errorf("%s, %d Secrets, %d Roles: a caBundle of yours means your own certificate, as is", got, len(in.ofKind("Secret")), len(in.ofKind("Role")))
			}
			want, _ := base64.StdEncoding.DecodeString(testCABundle)
			for _, wh := range webhooksOf(t, in.rendered) {
				if !bytes.Equal(wh.ClientConfig.CABundle, want) {
					t.Errorf("webhook %s: caBundle %q", wh.Name, wh.ClientConfig.CABundle)
				}
			}
		}},
		{"namespace-scoped (watchNamespaces)", []string{"--set-json", `watchNamespaces=["team-a","team-b"]`}, func(t *testing.T, in install) {
			if !in.hasArg("--namespaces=team-a,team-b") {
				t.Errorf("args %v, want --namespaces=team-a,team-b", in.Container.Args)
			}
			namespaced := []string{"statefulsets", "deployments", "configmaps", "services", "events", "certificates", "servicemonitors", "podmonitors", "reports"}
			for _, r := range into[rbacv1.ClusterRole](t, in.must(t, "ClusterRole", "eck-metrics-guard")).Rules {
				for _, res := range r.Resources {
					if slices.Contains(namespaced, res) {
						t.Errorf("the ClusterRole still grants %v on %s cluster-wide", r.Verbs, res)
					}
				}
			}
			for _, ns := range []string{"team-a", "team-b"} {
				var role *rbacv1.Role
				for _, o := range in.ofKind("Role") {
					if o.GetName() == "eck-metrics-guard-watched" && o.GetNamespace() == ns {
						role = into[rbacv1.Role](t, o)
					}
				}
				if role == nil {
					t.Fatalf("no Role eck-metrics-guard-watched in %s", ns)
				}
				var got []string
				for _, r := range role.Rules {
					got = append(got, r.Resources...)
				}
				slices.Sort(got)
				got = slices.Compact(got) // a resource with a rule by name too (reports) counts once
				want := slices.Clone(namespaced)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("Role in %s covers %v, want %v", ns, got, want)
				}
				found := false
				for _, o := range in.ofKind("RoleBinding") {
					rb := into[rbacv1.RoleBinding](t, o)
					if o.GetNamespace() == ns && rb.RoleRef.Name == "eck-metrics-guard-watched" && len(rb.Subjects) == 1 && rb.Subjects[0].Name == in.Deployment.Spec.Template.Spec.ServiceAccountName {
						found = true
					}
				}
				if !found {
					t.Errorf("no RoleBinding of the guard to its Role in %s", ns)
				}
			}
			for _, wh := range webhooksOf(t, in.rendered) {
				if !slices.ContainsFunc(wh.NamespaceSelector.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool {
					return e.Key == "kubernetes.io/metadata.name" && e.Operator == metav1.LabelSelectorOpIn && slices.Equal(e.Values, []string{"team-a", "team-b"})
				}) {
					t.Errorf("webhook %s: namespaceSelector %+v does not limit it to the watched namespaces", wh.Name, wh.NamespaceSelector)
				}
			}
		}},
		{"cert-manager with an existing ClusterIssuer", []string{"--set", "certManager.issuerRef.name=my-ca", "--set", "certManager.issuerRef.kind=ClusterIssuer", "--set", "certManager.duration=720h", "--set", "certManager.renewBefore=240h"}, func(t *testing.T, in install) {
			if n := len(in.ofKind("Issuer")); n != 0 {
				t.Errorf("%d Issuers rendered with certManager.issuerRef", n)
			}
			crt := into[cmv1.Certificate](t, in.must(t, "Certificate", "eck-metrics-guard-serving-cert"))
			if ref := crt.Spec.IssuerRef; ref.Name != "my-ca" || ref.Kind != "ClusterIssuer" || ref.Group != "cert-manager.io" {
				t.Errorf("issuerRef %+v", ref)
			}
			if crt.Spec.Duration.Duration.Hours() != 720 || crt.Spec.RenewBefore.Duration.Hours() != 240 {
				t.Errorf("duration %v, renewBefore %v", crt.Spec.Duration, crt.Spec.RenewBefore)
			}
		}},
		{"ServiceMonitor for the guard", []string{"--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.labels.release=prometheus", "--set", "serviceMonitor.interval=1m"}, func(t *testing.T, in install) {
			sm := in.must(t, "ServiceMonitor", "eck-metrics-guard")
			if sm.GetLabels()["release"] != "prometheus" {
				t.Errorf("labels %v lack release=prometheus", sm.GetLabels())
			}
		}},
		{"NetworkPolicy", []string{"--set", "networkPolicy.enabled=true", "--set-json", `networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`}, func(t *testing.T, in install) {
			np := into[networkingv1.NetworkPolicy](t, in.must(t, "NetworkPolicy", "eck-metrics-guard"))
			if len(np.Spec.Ingress) != 3 {
				t.Fatalf("%d ingress rules, want webhook, metrics, health", len(np.Spec.Ingress))
			}
			if len(np.Spec.Ingress[0].From) != 0 || len(np.Spec.Ingress[1].From) != 1 {
				t.Errorf("the webhook must be open to the API server, the metrics to metricsFrom: %+v", np.Spec.Ingress)
			}
		}},
		{"scrapers bound to the metrics reader", []string{"--set-json", `metricsReader.serviceAccounts=[{"name":"prometheus-k8s","namespace":"monitoring"},{"name":"vmagent","namespace":"vm"}]`}, func(t *testing.T, in install) {
			crb := into[rbacv1.ClusterRoleBinding](t, in.must(t, "ClusterRoleBinding", "eck-metrics-guard-metrics-reader"))
			if crb.RoleRef.Name != "eck-metrics-guard-metrics-reader" || len(crb.Subjects) != 2 || crb.Subjects[1] != (rbacv1.Subject{Kind: "ServiceAccount", Name: "vmagent", Namespace: "vm"}) {
				t.Errorf("scraper binding: roleRef %s, subjects %+v", crb.RoleRef.Name, crb.Subjects)
			}
		}},
		{"no PodDisruptionBudget", []string{"--set", "podDisruptionBudget.enabled=false"}, func(t *testing.T, in install) {
			if n := len(in.ofKind("PodDisruptionBudget")); n != 0 {
				t.Errorf("%d PodDisruptionBudgets", n)
			}
		}},
		{"PodDisruptionBudget as a percentage", []string{"--set", "podDisruptionBudget.minAvailable=50%"}, func(t *testing.T, in install) {
			pdb := into[policyv1.PodDisruptionBudget](t, in.must(t, "PodDisruptionBudget", "eck-metrics-guard"))
			if pdb.Spec.MinAvailable.String() != "50%" {
				t.Errorf("minAvailable %v", pdb.Spec.MinAvailable)
			}
		}},
		{"one replica without leader election", []string{"--set", "replicas=1", "--set", "leaderElection.enabled=false", "--set", "podDisruptionBudget.enabled=false"}, func(t *testing.T, in install) {
			if *in.Deployment.Spec.Replicas != 1 || !in.hasArg("--leader-elect=false") {
				t.Errorf("replicas %d, args %v", *in.Deployment.Spec.Replicas, in.Container.Args)
			}
		}},
		{"webhook only, no controller", []string{"--set", "controller.enabled=false", "--set", "controller.serviceMonitor=false"}, func(t *testing.T, in install) {
			if !in.hasArg("--controller=false") || !in.hasArg("--service-monitor=false") {
				t.Errorf("args %v", in.Container.Args)
			}
		}},
		{"controller certificates", []string{"--set", "controller.certDuration=720h", "--set", "controller.certRenewBefore=240h"}, func(t *testing.T, in install) {
			if !in.hasArg("--cert-duration=720h") || !in.hasArg("--cert-renew-before=240h") {
				t.Errorf("args %v", in.Container.Args)
			}
		}},
		{"metrics off", []string{"--set", "metrics.enabled=false"}, func(t *testing.T, in install) {
			if !in.hasArg("--metrics-bind-address=0") || in.find("Service", "eck-metrics-guard-metrics") != nil {
				t.Errorf("args %v, metrics Service rendered: %v", in.Container.Args, in.find("Service", "eck-metrics-guard-metrics") != nil)
			}
			if slices.ContainsFunc(in.Container.Ports, func(p corev1.ContainerPort) bool { return p.Name == "guard-metrics" }) {
				t.Error("a metrics port without metrics")
			}
		}},
		{"metrics in plain HTTP", []string{"--set", "metrics.secure=false"}, func(t *testing.T, in install) {
			if !in.hasArg("--metrics-secure=false") || in.argWithPrefix("--metrics-cert-dir") != "" {
				t.Errorf("args %v", in.Container.Args)
			}
		}},
		{"no topology spread", []string{"--set", "topologySpread.enabled=false"}, func(t *testing.T, in install) {
			if c := in.Deployment.Spec.Template.Spec.TopologySpreadConstraints; len(c) != 0 {
				t.Errorf("topologySpreadConstraints %v", c)
			}
		}},
		{"spread over zones, required", []string{"--set", "topologySpread.topologyKey=topology.kubernetes.io/zone", "--set", "topologySpread.whenUnsatisfiable=DoNotSchedule", "--set", "topologySpread.maxSkew=2"}, func(t *testing.T, in install) {
			c := in.Deployment.Spec.Template.Spec.TopologySpreadConstraints
			if len(c) != 1 || c[0].TopologyKey != "topology.kubernetes.io/zone" || c[0].WhenUnsatisfiable != corev1.DoNotSchedule || c[0].MaxSkew != 2 {
				t.Errorf("topologySpreadConstraints %v", c)
			}
		}},
		{"failurePolicy Fail", []string{"--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=10"}, func(t *testing.T, in install) {
			for _, wh := range webhooksOf(t, in.rendered) {
				if *wh.FailurePolicy != admissionregistrationv1.Fail || *wh.TimeoutSeconds != 10 {
					t.Errorf("webhook %s: failurePolicy %s, timeoutSeconds %d", wh.Name, *wh.FailurePolicy, *wh.TimeoutSeconds)
				}
			}
		}},
		{"ports", []string{"--set", "webhook.port=10443", "--set", "metrics.port=9090", "--set", "health.port=9440"}, func(t *testing.T, in install) {
			for _, arg := range []string{"--webhook-port=10443", "--metrics-bind-address=:9090", "--health-probe-bind-address=:9440"} {
				if !in.hasArg(arg) {
					t.Errorf("no %s in %v", arg, in.Container.Args)
				}
			}
		}},
		{"defaults for operators", []string{"--set", "defaults.issuer=corp-ca", "--set", "defaults.issuerKind=ClusterIssuer", "--set", "defaults.metricsPort=9100"}, func(t *testing.T, in install) {
			for _, arg := range []string{"--default-issuer=corp-ca", "--default-issuer-kind=ClusterIssuer", "--default-metrics-port=9100"} {
				if !in.hasArg(arg) {
					t.Errorf("no %s in %v", arg, in.Container.Args)
				}
			}
		}},
		{"logging for humans", []string{"--set", "logging.format=console", "--set", "logging.level=debug"}, func(t *testing.T, in install) {
			if !in.hasArg("--zap-encoder=console") || !in.hasArg("--zap-log-level=debug") {
				t.Errorf("args %v", in.Container.Args)
			}
		}},
		{"image by digest", []string{"--set", "image.repository=registry.example.com/guard", "--set", "image.digest=sha256:" + strings.Repeat("ab", 32), "--set", "image.pullPolicy=Always", "--set-json", `imagePullSecrets=[{"name":"regcred"}]`}, func(t *testing.T, in install) {
			pod := in.Deployment.Spec.Template.Spec
			if in.Container.Image != "registry.example.com/guard@sha256:"+strings.Repeat("ab", 32) || in.Container.ImagePullPolicy != corev1.PullAlways ||
				len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "regcred" {
				t.Errorf("image %s, pullPolicy %s, imagePullSecrets %v", in.Container.Image, in.Container.ImagePullPolicy, pod.ImagePullSecrets)
			}
		}},
		{"existing ServiceAccount", []string{"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=guard"}, func(t *testing.T, in install) {
			if n := len(in.ofKind("ServiceAccount")); n != 0 || in.Deployment.Spec.Template.Spec.ServiceAccountName != "guard" {
				t.Errorf("%d ServiceAccounts, serviceAccountName %s", n, in.Deployment.Spec.Template.Spec.ServiceAccountName)
			}
		}},
		{"ServiceAccount name and annotations", []string{"--set", "serviceAccount.name=guard", "--set", "serviceAccount.annotations.example\\.com/role=guard"}, func(t *testing.T, in install) {
			sa := in.must(t, "ServiceAccount", "guard")
			if sa.GetAnnotations()["example.com/role"] != "guard" {
				t.Errorf("annotations %v", sa.GetAnnotations())
			}
		}},
		{"scheduling and pod metadata", []string{
			"--set", "nodeSelector.kubernetes\\.io/os=linux",
			"--set-json", `tolerations=[{"key":"dedicated","operator":"Equal","value":"infra","effect":"NoSchedule"}]`,
			"--set-json", `affinity={"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":{"matchExpressions":[{"key":"node-role.kubernetes.io/infra","operator":"Exists"}]}}]}}`,
			"--set", "priorityClassName=system-cluster-critical",
			"--set", "podAnnotations.example\\.com/a=b",
			"--set", "podLabels.team=platform",
			"--set-json", `resources={"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}`,
		}, func(t *testing.T, in install) {
			pod := in.Deployment.Spec.Template
			if pod.Spec.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Spec.Tolerations) != 1 || pod.Spec.Affinity == nil ||
				pod.Spec.PriorityClassName != "system-cluster-critical" || pod.Annotations["example.com/a"] != "b" || pod.Labels["team"] != "platform" {
				t.Errorf("pod template %+v", pod)
			}
			if in.Container.Resources.Limits.Memory().String() != "512Mi" || in.Container.Resources.Requests.Cpu().String() != "100m" {
				t.Errorf("resources %+v", in.Container.Resources)
			}
		}},
		{"names", []string{"--set", "fullnameOverride=guard"}, func(t *testing.T, in install) {
			for _, key := range []string{"Deployment/guard", "Service/guard-webhook", "Service/guard-metrics", "Certificate/guard-serving-cert",
				"MutatingWebhookConfiguration/guard", "ClusterRole/guard", "ClusterRole/guard-metrics-reader", "ClusterRoleBinding/guard"} {
				kind, name, _ := strings.Cut(key, "/")
				in.must(t, kind, name)
			}
		}},
	}
}

// webhooksOf returns the webhooks of the one MutatingWebhookConfiguration of r.
func webhooksOf(t *testing.T, r *rendered) []admissionregistrationv1.MutatingWebhook {
	t.Helper()
	mwcs := r.ofKind("MutatingWebhookConfiguration")
	if len(mwcs) != 1 {
		t.Fatalf("%d MutatingWebhookConfigurations, want 1", len(mwcs))
	}
	return into[admissionregistrationv1.MutatingWebhookConfiguration](t, mwcs[0]).Webhooks
}

// TestChartInSync checks that the chart's copies of config/ files are the files themselves:
// `make chart-sync` writes them, `make verify-chart` checks them in CI, and this test catches
// a forgotten chart-sync in any `go test` run.
func TestChartInSync(t *testing.T) {
	for src, dst := range map[string]string{
		"config/webhook/manifests.yaml": "charts/eck-metrics-guard/files/webhook/manifests.yaml",
		"config/rbac/role.yaml":         "charts/eck-metrics-guard/files/rbac/role.yaml",
		"config/selfmanaged/role.yaml":  "charts/eck-metrics-guard/files/rbac/self_managed_role.yaml",
	} {
		want, err := os.ReadFile(filepath.Join(repo, src))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(repo, dst))
		if err != nil {
			t.Fatalf("%v: run make chart-sync", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s: run make chart-sync", dst, src)
		}
	}
	// CRDs: config/crd/bases/*.yaml are the chart's crds/*.yaml (none yet).
	list := func(dir string) map[string][]byte {
		files := map[string][]byte{}
		matches, _ := filepath.Glob(filepath.Join(repo, dir, "*.yaml"))
		for _, m := range matches {
			data, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			files[filepath.Base(m)] = data
		}
		return files
	}
	bases, crds := list("config/crd/bases"), list("charts/eck-metrics-guard/crds")
	for name, data := range bases {
		if !bytes.Equal(crds[name], data) {
			t.Errorf("charts/eck-metrics-guard/crds/%s differs from config/crd/bases/%s: run make chart-sync", name, name)
		}
	}
	for name := range crds {
		if _, ok := bases[name]; !ok {
			t.Errorf("charts/eck-metrics-guard/crds/%s is not in config/crd/bases: run make chart-sync", name)
		}
	}
}

// TestHelmLint runs `helm lint --strict` with the defaults and with every variant.
func TestHelmLint(t *testing.T) {
	for _, v := range chartVariants() {
		t.Run(v.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", "--quiet", chartDir(), "--namespace", releaseNamespace, "--kube-version", kubeVersion(t)}, v.args...)
			if stdout, stderr, err := runHelm(t, args...); err != nil {
				t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
			}
		})
	}
}

// TestHelmTemplate renders every variant and checks the output.
func TestHelmTemplate(t *testing.T) {
	for _, v := range chartVariants() {
		t.Run(v.name, func(t *testing.T) {
			r := mustHelmTemplate(t, v.args...)
			in := checkConsistent(t, r, releaseNamespace)
			checkRestricted(t, in)
			v.check(t, in)
		})
	}
}

// TestHelmTemplateRefusesBadValues checks that values.schema.json and the chart's own checks
// refuse what would render a broken install, with a message that names the value.
func TestHelmTemplateRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown failurePolicy", []string{"--set", "webhook.failurePolicy=Sometimes"}, "failurePolicy"},
		{"timeout above the API server's 30s", []string{"--set", "webhook.timeoutSeconds=31"}, "timeoutSeconds"},
		{"a misspelt value", []string{"--set", "webhook.failurepolicy=Fail"}, "failurepolicy"},
		{"unknown issuer kind", []string{"--set", "defaults.issuer=ca", "--set", "defaults.issuerKind=Vault"}, "issuerKind"},
		{"issuer kind without issuer", []string{"--set", "defaults.issuerKind=ClusterIssuer"}, "defaults.issuerKind needs defaults.issuer"},
		{"privileged metrics port", []string{"--set", "defaults.metricsPort=80"}, "metricsPort"},
		{"unknown log format", []string{"--set", "logging.format=xml"}, "format"},
		{"image digest that is not one", []string{"--set", "image.digest=latest"}, "digest"},
		{"a Secret name that is not one", []string{"--set", "certManager.enabled=false", "--set", "webhook.secretName=My_Certs"}, "secretName"},
		{"ServiceMonitor without metrics", []string{"--set", "serviceMonitor.enabled=true", "--set", "metrics.enabled=false"}, "serviceMonitor.enabled needs"},
		{"two controllers without leader election", []string{"--set", "leaderElection.enabled=false"}, "leaderElection.enabled=false"},
		{"a disruption budget that blocks drains", []string{"--set", "replicas=1"}, "would block every node drain"},
		{"existing ServiceAccount without a name", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.name is required"},
		{"required spread that does not exist", []string{"--set", "topologySpread.whenUnsatisfiable=Sometimes"}, "whenUnsatisfiable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, tc.args...)
			if err == nil {
				t.Fatal("rendered, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not name %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestKustomize renders config/default, and with its optional components, and checks the
// output as the chart's is checked.
func TestKustomize(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		r := kustomizeDefault(t)
		in := checkConsistent(t, r, releaseNamespace)
		checkRestricted(t, in)
		ns := r.must(t, "Namespace", releaseNamespace)
		if ns.GetLabels()["metrics-guard.eck.dev/exclude"] != "true" {
			t.Errorf("the guard's Namespace is not excluded from its webhook: labels %v", ns.GetLabels())
		}
		for _, kind := range []string{"ServiceMonitor", "NetworkPolicy"} {
			if n := len(r.ofKind(kind)); n != 0 {
				t.Errorf("%d %s rendered by default", n, kind)
			}
		}
	})
	t.Run("all components", func(t *testing.T) {
		r := kustomizeAllComponents(t)
		checkConsistent(t, r, releaseNamespace)
		r.must(t, "ServiceMonitor", "eck-metrics-guard")
		r.must(t, "NetworkPolicy", "eck-metrics-guard")
	})
	t.Run("self-managed certificate", func(t *testing.T) {
		r := kustomizeSelfManaged(t)
		in := checkConsistent(t, r, releaseNamespace)
		checkRestricted(t, in)
		if !in.hasArg("--webhook-cert-mode=self-managed") {
			t.Errorf("args %v", in.Container.Args)
		}
		for _, kind := range []string{"Certificate", "Issuer"} {
			if n := len(r.ofKind(kind)); n != 0 {
				t.Errorf("%d %s rendered with ../selfmanaged", n, kind)
			}
		}
	})
}
