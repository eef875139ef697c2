package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/keys"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/serving"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/e2e/framework"
)

// The ways an ECK StatefulSet create goes through the API server in eckMutators.
const (
	viaNone   = "none"       // nothing registered
	viaPolicy = "policy"     // the in-tree MutatingAdmissionPolicy (ApplyConfiguration) and its binding
	viaPatch  = "jsonpatch"  // the same as a JSONPatch policy
	viaNull   = "null"       // a webhook that allows everything, on the guard's server stack, in this process
	viaGuard  = "guard"      // the guard's webhook configuration, the guard in this process
	viaCold   = "guard-cold" // the same, the operator's ConfigMap not labelled (so not in the guard's cache)
)

// mutatorNamespace is where each variant's StatefulSets are created.
func mutatorNamespace(via string) string { return "eck-" + via }

// eckMutators measures ECK StatefulSet creates through a real kube-apiserver (the test
// control plane of `make controlplane`) four ways, each in a namespace of its own: with
// nothing registered; with an in-tree MutatingAdmissionPolicy (admissionregistration.k8s.io/v1)
// and its binding making the pod-template change the guard makes, as an ApplyConfiguration,
// then as JSONPatch; and with the guard's webhook configuration (config/webhook), the guard
// running in this process with its controller off. At most one mutator is registered at a
// time, and dry-run creates prove each switch has reached the API server before a batch
// starts. n creates per variant per round, two at a time, rounds rounds, the order of the
// variants rotating from round to round. Before measuring, each policy's result is compared
// with the guard's (the pod templates of dry-run creates, defaulted by the API server).
func eckMutators(ctx context.Context, n, rounds int) error {
	logf.SetLogger(logr.Discard()) // the guard's logs: not what is measured
	webhooks, err := framework.WebhookConfigPath()
	if err != nil {
		return err
	}
	env, err := framework.New(ctx, framework.Options{WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{webhooks}}})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	if err := env.StartGuard(func(o *app.ServerOptions) { o.Controller.Enabled = false }); err != nil {
		return err
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		return err
	}
	// MutatingAdmissionPolicy is GA (v1) in this API server and its admission plugin is on
	// by default: no feature gate or runtime-config to set. Say so if it is not served.
	if _, err := env.Clientset.Discovery().ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1"); err != nil {
		return err
	}
	if err := c.List(ctx, &admissionregistrationv1.MutatingAdmissionPolicyList{}); err != nil {
		return fmt.Errorf("the API server does not serve admissionregistration.k8s.io/v1 MutatingAdmissionPolicy: %w", err)
	}
	if raw, err := env.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, `kubernetes_feature_enabled{name="MutatingAdmissionPolicy"`) {
				fmt.Printf("\nThe API server's feature gate, as its /metrics has it: `%s` (no --feature-gates or --runtime-config set; the admission plugin MutatingAdmissionPolicy is on by default).\n", line)
			}
		}
	}

	var cfgs admissionregistrationv1.MutatingWebhookConfigurationList
	if err := env.Client.List(ctx, &cfgs); err != nil {
		return err
	}
	var saved []*admissionregistrationv1.MutatingWebhookConfiguration
	for i := range cfgs.Items {
		w := cfgs.Items[i].DeepCopy()
		w.ResourceVersion, w.UID, w.CreationTimestamp, w.ManagedFields, w.Generation = "", "", metav1.Time{}, nil, 0
		saved = append(saved, w)
	}
	if len(saved) == 0 {
		return fmt.Errorf("no webhook configuration installed from %s", webhooks)
	}

	// The same ECK operator ConfigMap in each namespace. Only eck-guard is opted in; the
	// others carry the label that keeps the guard's webhook away (so that a dry-run there
	// shows whether the policy alone is registered), and eck-policy names the TLS Secret as
	// eck-guard does, for the policy to read.
	sts := map[string]*appsv1.StatefulSet{}
	variants := []string{viaNone, viaPolicy, viaPatch, viaNull, viaGuard, viaCold}
	for _, via := range variants {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mutatorNamespace(via)}}
		switch via {
		case viaGuard, viaCold:
			ns.Annotations = map[string]string{keys.AnnotationSecure: "true", keys.AnnotationTLSSecret: "eck-metrics-tls"}
		case viaPolicy, viaPatch:
			ns.Annotations = map[string]string{keys.AnnotationTLSSecret: "eck-metrics-tls"}
			ns.Labels = map[string]string{keys.LabelExclude: "true"}
		default:
			ns.Labels = map[string]string{keys.LabelExclude: "true"}
		}
		if err := c.Create(ctx, ns); err != nil {
			return err
		}
		if sts[via], err = operatorIn(ctx, c, ns.Name); err != nil {
			return err
		}
		if via == viaCold {
			continue
		}
		// As the guard's controller labels a guarded operator's config (it is off here), so
		// that the guard's cache holds it; the captured ConfigMap is the secured one, which
		// the guard's ConfigMap webhook leaves as it is.
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "elastic-operator"}}
		if err := c.Patch(ctx, cm, client.RawPatch(types.MergePatchType,
			[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"elastic-operator"}}}`, keys.LabelConfigOf)))); err != nil {
			return err
		}
	}
	// mechanism is what via registers.
	mechanism := func(via string) string {
		if via == viaCold {
			return viaGuard
		}
		return via
	}
	dryRun := func(via string) (*appsv1.StatefulSet, error) {
		s := sts[via].DeepCopy()
		s.Name = "eck-dry-run"
		err := c.Create(ctx, s, client.DryRunAll)
		return s, err
	}

	// The null webhook: the guard's workload webhook (its rules and matchConditions) pointed
	// at a handler that allows everything, on the guard's server (serving.WebhookServer),
	// in this process too, for eck-null only.
	nullCfg, nullCalls, err := startNullWebhook(ctx, env, saved, mutatorNamespace(viaNull))
	if err != nil {
		return err
	}

	// What the guard does (registered by New): the template it returns, against the one
	// the API server stores with nothing registered (the namespace eck-none has no mutator).
	guarded, err := dryRun(viaGuard)
	if err != nil {
		return err
	}
	plain, err := dryRun(viaNone)
	if err != nil {
		return err
	}
	if !hasMetricsPort(guarded) {
		return fmt.Errorf("the guard did not secure the ECK StatefulSet in %s", mutatorNamespace(viaGuard))
	}
	policies := map[string][]client.Object{}
	fmt.Printf("\n### The guard's change to the ECK 3.5.0 StatefulSet (dry-run create, %s)\n\n", mutatorNamespace(viaGuard))
	fmt.Println(templateChange(&plain.Spec.Template, &guarded.Spec.Template))
	for via, pt := range map[string]admissionregistrationv1.PatchType{viaPolicy: admissionregistrationv1.PatchTypeApplyConfiguration, viaPatch: admissionregistrationv1.PatchTypeJSONPatch} {
		pol, bind, err := equivalentPolicy(guarded, mutatorNamespace(via), pt)
		if err != nil {
			return err
		}
		policies[via] = []client.Object{pol, bind}
	}
	for _, via := range []string{viaPolicy, viaPatch} {
		m := policies[via][0].(*admissionregistrationv1.MutatingAdmissionPolicy).Spec.Mutations[0]
		expr := ""
		if m.ApplyConfiguration != nil {
			expr = m.ApplyConfiguration.Expression
		} else {
			expr = m.JSONPatch.Expression
		}
		fmt.Printf("The MutatingAdmissionPolicy making it (%s):\n\n```\n%s\n```\n\n", m.PatchType, expr)
	}

	state := viaGuard
	set := func(via string) error {
		via = mechanism(via)
		if via == state {
			return nil
		}
		wantGuard := via == viaGuard
		for _, w := range saved {
			if wantGuard {
				err = c.Create(ctx, w.DeepCopy())
			} else {
				err = client.IgnoreNotFound(c.Delete(ctx, w.DeepCopy()))
			}
			if err != nil && !(wantGuard && apierrors.IsAlreadyExists(err)) {
				return err
			}
		}
		if via == viaNull {
			err = c.Create(ctx, nullCfg.DeepCopy())
		} else {
			err = client.IgnoreNotFound(c.Delete(ctx, nullCfg.DeepCopy()))
		}
		if err != nil && !(via == viaNull && apierrors.IsAlreadyExists(err)) {
			return err
		}
		for pv, objs := range policies {
			for _, o := range objs {
				if pv == via {
					err = c.Create(ctx, o.DeepCopyObject().(client.Object))
				} else {
					err = client.IgnoreNotFound(c.Delete(ctx, o.DeepCopyObject().(client.Object)))
				}
				if err != nil && !(pv == via && apierrors.IsAlreadyExists(err)) {
					return err
				}
			}
		}
		// The API server sees configurations through informers: wait until a dry-run create
		// in each mutator's namespace is mutated exactly when that mutator is registered.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			ok := true
			for _, mv := range []string{viaGuard, viaCold, viaPolicy, viaPatch} {
				s, err := dryRun(mv)
				if err != nil {
					return err
				}
				ok = ok && hasMetricsPort(s) == (mechanism(mv) == via)
			}
			before := nullCalls.Load()
			if _, err := dryRun(viaNull); err != nil {
				return err
			}
			ok = ok && (nullCalls.Load() > before) == (via == viaNull)
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the API server did not see %s registered alone in 30s", via)
			}
		}
		time.Sleep(500 * time.Millisecond)
		state = via
		return nil
	}

	// The policies' results against the guard's.
	kind := map[string]string{viaPolicy: "ApplyConfiguration", viaPatch: "JSONPatch"}
	for _, via := range []string{viaPolicy, viaPatch} {
		if err := set(via); err != nil {
			return err
		}
		byPolicy, err := dryRun(via)
		if err != nil {
			return err
		}
		if reflect.DeepEqual(byPolicy.Spec.Template, guarded.Spec.Template) {
			fmt.Printf("The %s policy's pod template equals the guard's (dry-run creates, defaulted, compared whole): **identical**.\n", kind[via])
		} else {
			fmt.Printf("**The %s policy's pod template differs from the guard's**:\n\n%s\n", kind[via], templateChange(&guarded.Spec.Template, &byPolicy.Spec.Template))
		}
	}

	apiPID, etcdPID := childPID("kube-apiserver"), childPID("etcd")
	type tally struct {
		lat        []time.Duration
		roundP50   []time.Duration
		api, self  time.Duration
		adm        admissionSums
		cmCache    float64
		cmAPI      float64
		reached    float64
		unmutated  int
		firstError error
	}
	res := map[string]*tally{}
	for _, v := range variants {
		res[v] = &tally{}
	}
	seq := 0
	for round := range rounds {
		for i := range variants {
			via := variants[(i+round)%len(variants)]
			if err := set(via); err != nil {
				return err
			}
			t := res[via]
			ns := mutatorNamespace(via)
			m0 := admissionMetrics(ctx, env)
			a0, s0, r0 := cpuOr0(apiPID)+cpuOr0(etcdPID), cpuOr0(os.Getpid()), webhookRequests()
			cm0, api0 := guardCounter("eck_metrics_guard_configmap_reads_total", "source", "cache"), guardCounter("eck_metrics_guard_configmap_reads_total", "source", "api")
			d, names, err := eckCreates(ctx, c, sts[via], n, &seq)
			a1, s1, r1 := cpuOr0(apiPID)+cpuOr0(etcdPID), cpuOr0(os.Getpid()), webhookRequests()
			t.cmCache += guardCounter("eck_metrics_guard_configmap_reads_total", "source", "cache") - cm0
			t.cmAPI += guardCounter("eck_metrics_guard_configmap_reads_total", "source", "api") - api0
			t.adm.add(admissionMetrics(ctx, env).minus(m0))
			if err != nil && t.firstError == nil {
				t.firstError = err
			}
			t.lat = append(t.lat, d...)
			t.roundP50 = append(t.roundP50, quantiles(d)[0])
			t.api += a1 - a0
			t.self += s1 - s0
			t.reached += r1 - r0
			// Every object stored as its variant writes it: check a few.
			for _, name := range []string{names[0], names[len(names)/2], names[len(names)-1]} {
				var got appsv1.StatefulSet
				if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &got); err != nil {
					return err
				}
				if hasMetricsPort(&got) != (via != viaNone && via != viaNull) {
					t.unmutated++
				}
			}
		}
	}

	fmt.Printf("\n### ECK StatefulSet creates through kube-apiserver: none / MutatingAdmissionPolicy (ApplyConfiguration, JSONPatch) / null webhook / the guard (%d rounds of %d each, alternating)\n\n", rounds, n)
	fmt.Println("| variant | creates | p50 / p90 / p99 / max ms | **p50 vs none** | **p99 vs none** | p50 by round ms | API server + etcd CPU per create | this process's CPU per create (client, guard in process) | reached a webhook |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	floor := quantiles(res[viaNone].lat)
	names := map[string]string{viaNone: "(a) no mutation", viaPolicy: "(b) MutatingAdmissionPolicy, ApplyConfiguration", viaPatch: "(b') MutatingAdmissionPolicy, JSONPatch", viaNull: "(d) null webhook (allows, no patch)", viaGuard: "(c) the guard (webhook)", viaCold: "(c') the guard, ConfigMap read from the API server"}
	for _, via := range variants {
		t := res[via]
		q := quantiles(t.lat)
		var rp []string
		for _, p := range t.roundP50 {
			rp = append(rp, ms(p))
		}
		per := func(d time.Duration) string {
			if len(t.lat) == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f µs", us(d/time.Duration(len(t.lat))))
		}
		fmt.Printf("| %s | %d | %s / %s / %s / %s | %s | %s | %s | %s | %s | %.0f |\n", names[via], len(t.lat),
			ms(q[0]), ms(q[1]), ms(q[2]), ms(q[3]), ratio(float64(q[0]), float64(floor[0])), ratio(float64(q[2]), float64(floor[2])),
			strings.Join(rp, ", "), per(t.api), per(t.self), t.reached)
		if t.firstError != nil {
			fmt.Printf("\n%s: first error: %v\n", names[via], t.firstError)
		}
		if t.unmutated > 0 {
			fmt.Printf("\n%s: %d of the sampled stored objects not as the variant writes them\n", names[via], t.unmutated)
		}
	}
	fmt.Println("\nWhere the time goes, from the API server's own histograms (time per create over the batches, wall):")
	fmt.Println()
	fmt.Println("| variant | mutating admission step (`apiserver_admission_step_admission_duration_seconds`, admit) | the MutatingAdmissionPolicy plugin (`apiserver_admission_controller_admission_duration_seconds`) | the webhook call (`apiserver_admission_webhook_admission_duration_seconds`) | request, all of it (`apiserver_request_duration_seconds`, POST statefulsets) |")
	fmt.Println("|---|---|---|---|---|")
	for _, via := range variants {
		a := res[via].adm
		mean := func(sum, count float64) string { // per create, and the number of calls
			if count == 0 || a.requestN == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f ms (%.0f calls)", 1000*sum/a.requestN, count)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", names[via], mean(a.step, a.stepN), mean(a.policy, a.policyN), mean(a.webhook, a.webhookN), mean(a.request, a.requestN))
	}
	for _, via := range []string{viaGuard, viaCold} {
		g := res[via]
		fmt.Printf("\n%s: ConfigMaps the guard read for its %d admissions (eck_metrics_guard_configmap_reads_total): %.0f from its cache, %.0f from the API server.\n", names[via], len(g.lat), g.cmCache, g.cmAPI)
	}
	if apiPID == 0 || etcdPID == 0 {
		fmt.Println("\n(kube-apiserver or etcd not found among this process's children: their CPU is not counted)")
	}
	return nil
}

// equivalentPolicy is a MutatingAdmissionPolicy and binding (for namespace ns) that make the
// change the guard made to guarded: the metrics port, the TLS Secret volume (the Secret named
// by the namespace's metrics-guard.eck.dev/tls-secret annotation, as the guard reads it) and
// its read-only mount in the container running the ECK image (found by the same CEL test as
// the guard's matchCondition), and the metrics-hash annotation of the pod template. The port,
// mount path and hash are the guard's, read from guarded: a policy cannot parse eck.yaml, pick
// a free port or compute the guard's digest of the settings.
func equivalentPolicy(guarded *appsv1.StatefulSet, ns string, pt admissionregistrationv1.PatchType) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding, error) {
	hash := guarded.Spec.Template.Annotations[keys.AnnotationMetricsHash]
	var port *corev1.ContainerPort
	var mount *corev1.VolumeMount
	for _, ctr := range guarded.Spec.Template.Spec.Containers {
		for i := range ctr.Ports {
			if ctr.Ports[i].Name == keys.PortName {
				port = &ctr.Ports[i]
			}
		}
		for i := range ctr.VolumeMounts {
			if ctr.VolumeMounts[i].Name == keys.VolumeName {
				mount = &ctr.VolumeMounts[i]
			}
		}
	}
	if hash == "" || port == nil || mount == nil {
		return nil, nil, fmt.Errorf("the guard's StatefulSet lacks the hash, port or mount (%q, %v, %v)", hash, port, mount)
	}
	const isECK = `has(c.image) && c.image.split('@')[0].split('/')[size(c.image.split('@')[0].split('/')) - 1].startsWith('eck-operator')`
	apply := fmt.Sprintf(`Object{
  spec: Object.spec{
    template: Object.spec.template{
      metadata: Object.spec.template.metadata{
        annotations: {%q: %q}
      },
      spec: Object.spec.template.spec{
        containers: [Object.spec.template.spec.containers{
          name: variables.eck,
          ports: [Object.spec.template.spec.containers.ports{name: %q, containerPort: %d, protocol: %q}],
          volumeMounts: [Object.spec.template.spec.containers.volumeMounts{name: %q, mountPath: %q, readOnly: true}]
        }],
        volumes: [Object.spec.template.spec.volumes{
          name: %q,
          secret: Object.spec.template.spec.volumes.secret{secretName: variables.secret}
        }]
      }
    }
  }
}`, keys.AnnotationMetricsHash, hash, keys.PortName, port.ContainerPort, string(port.Protocol), keys.VolumeName, mount.MountPath, keys.VolumeName)
	// The same as JSON patches, each one only where its item is missing (as the guard
	// upserts by name).
	portV := fmt.Sprintf(`Object.spec.template.spec.containers.ports{name: %q, containerPort: %d, protocol: %q}`, keys.PortName, port.ContainerPort, string(port.Protocol))
	mountV := fmt.Sprintf(`Object.spec.template.spec.containers.volumeMounts{name: %q, mountPath: %q, readOnly: true}`, keys.VolumeName, mount.MountPath)
	volumeV := fmt.Sprintf(`Object.spec.template.spec.volumes{name: %q, secret: Object.spec.template.spec.volumes.secret{secretName: variables.secret}}`, keys.VolumeName)
	patch := fmt.Sprintf(`(has(object.spec.template.metadata.annotations) ?
  [JSONPatch{op: "add", path: "/spec/template/metadata/annotations/" + jsonpatch.escapeKey(%[1]q), value: %[2]q}] :
  [JSONPatch{op: "add", path: "/spec/template/metadata/annotations", value: {%[1]q: %[2]q}}]) +
(!has(variables.container.ports) ? [JSONPatch{op: "add", path: variables.path + "/ports", value: [%[3]s]}] :
  variables.container.ports.exists(p, p.name == %[4]q) ? [] : [JSONPatch{op: "add", path: variables.path + "/ports/-", value: %[3]s}]) +
(!has(variables.container.volumeMounts) ? [JSONPatch{op: "add", path: variables.path + "/volumeMounts", value: [%[5]s]}] :
  variables.container.volumeMounts.exists(m, m.name == %[6]q) ? [] : [JSONPatch{op: "add", path: variables.path + "/volumeMounts/-", value: %[5]s}]) +
(!has(object.spec.template.spec.volumes) ? [JSONPatch{op: "add", path: "/spec/template/spec/volumes", value: [%[7]s]}] :
  object.spec.template.spec.volumes.exists(v, v.name == %[6]q) ? [] : [JSONPatch{op: "add", path: "/spec/template/spec/volumes/-", value: %[7]s}])`,
		keys.AnnotationMetricsHash, hash, portV, keys.PortName, mountV, keys.VolumeName, volumeV)
	variables := []admissionregistrationv1.Variable{
		{Name: "eck", Expression: `object.spec.template.spec.containers.filter(c, ` + isECK + `)[0].name`},
		{Name: "secret", Expression: fmt.Sprintf(`namespaceObject.metadata.annotations[%q]`, keys.AnnotationTLSSecret)},
	}
	mutation := admissionregistrationv1.Mutation{PatchType: pt}
	name := "eck-metrics-apply"
	switch pt {
	case admissionregistrationv1.PatchTypeApplyConfiguration:
		mutation.ApplyConfiguration = &admissionregistrationv1.ApplyConfiguration{Expression: apply}
	case admissionregistrationv1.PatchTypeJSONPatch:
		name = "eck-metrics-jsonpatch"
		mutation.JSONPatch = &admissionregistrationv1.JSONPatch{Expression: patch}
		variables = append(variables[1:],
			admissionregistrationv1.Variable{Name: "index", Expression: `object.spec.template.spec.containers.map(c, ` + isECK + `).indexOf(true)`},
			admissionregistrationv1.Variable{Name: "container", Expression: `object.spec.template.spec.containers[variables.index]`},
			admissionregistrationv1.Variable{Name: "path", Expression: `"/spec/template/spec/containers/" + string(variables.index)`})
	default:
		return nil, nil, fmt.Errorf("patch type %q", pt)
	}
	ignore := admissionregistrationv1.Ignore
	pol := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"statefulsets"}},
				},
			}}},
			// The guard's own matchCondition (config/webhook).
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "runs-the-eck-operator",
				Expression: `[object, oldObject].exists(o, o != null && (o.spec.template.spec.containers + (has(o.spec.template.spec.initContainers) ? o.spec.template.spec.initContainers : [])).exists(c, ` + isECK + `))`}},
			Variables:          variables,
			Mutations:          []admissionregistrationv1.Mutation{mutation},
			FailurePolicy:      &ignore, // as the guard's
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
	bind := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: pol.Name,
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}}},
	}
	return pol, bind, nil
}

// templateChange lists what differs from before to after in a pod template, as a markdown
// list of JSON fragments: the annotations, and each container's ports and mounts, the
// volumes, args and env.
func templateChange(before, after *corev1.PodTemplateSpec) string {
	var b strings.Builder
	j := func(v any) string { x, _ := json.Marshal(v); return string(x) }
	for k, v := range after.Annotations {
		if before.Annotations[k] != v {
			fmt.Fprintf(&b, "* pod template annotation `%s: %s`\n", k, v)
		}
	}
	for k := range before.Annotations {
		if _, ok := after.Annotations[k]; !ok {
			fmt.Fprintf(&b, "* pod template annotation `%s` removed\n", k)
		}
	}
	for i := range after.Spec.Containers {
		a := &after.Spec.Containers[i]
		var o *corev1.Container
		for k := range before.Spec.Containers {
			if before.Spec.Containers[k].Name == a.Name {
				o = &before.Spec.Containers[k]
			}
		}
		if o == nil {
			fmt.Fprintf(&b, "* container %s added\n", a.Name)
			continue
		}
		for _, f := range []struct {
			what      string
			old, new_ any
		}{{"ports", o.Ports, a.Ports}, {"volumeMounts", o.VolumeMounts, a.VolumeMounts}, {"args", o.Args, a.Args}, {"env", o.Env, a.Env}, {"command", o.Command, a.Command}} {
			if !reflect.DeepEqual(f.old, f.new_) {
				fmt.Fprintf(&b, "* container %s %s: `%s` -> `%s`\n", a.Name, f.what, j(f.old), j(f.new_))
			}
		}
		oc, ac := *o, *a
		oc.Ports, oc.VolumeMounts, oc.Args, oc.Env, oc.Command = nil, nil, nil, nil, nil
		ac.Ports, ac.VolumeMounts, ac.Args, ac.Env, ac.Command = nil, nil, nil, nil, nil
		if !reflect.DeepEqual(oc, ac) {
			fmt.Fprintf(&b, "* container %s: other fields differ\n", a.Name)
		}
	}
	if !reflect.DeepEqual(before.Spec.Volumes, after.Spec.Volumes) {
		fmt.Fprintf(&b, "* volumes: `%s` -> `%s`\n", j(before.Spec.Volumes), j(after.Spec.Volumes))
	}
	bs, as := before.Spec, after.Spec
	bs.Containers, bs.Volumes, as.Containers, as.Volumes = nil, nil, nil, nil
	if !reflect.DeepEqual(bs, as) || !reflect.DeepEqual(before.Labels, after.Labels) {
		fmt.Fprintf(&b, "* other pod template fields differ\n")
	}
	if b.Len() == 0 {
		return "* nothing\n"
	}
	return b.String()
}

// eckCreates creates n copies of the ECK StatefulSet (eck-<seq>), two at a time, and returns
// each one's latency and the names.
func eckCreates(ctx context.Context, c client.Client, sts *appsv1.StatefulSet, n int, seq *int) ([]time.Duration, []string, error) {
	var (
		mu    sync.Mutex
		out   []time.Duration
		names []string
		first error
		wg    sync.WaitGroup
	)
	next := make(chan string)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				obj := sts.DeepCopy()
				obj.Name = name
				start := time.Now()
				err := c.Create(ctx, obj)
				d := time.Since(start)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out = append(out, d)
				mu.Unlock()
			}
		}()
	}
	for range n {
		*seq++
		name := "eck-" + strconv.Itoa(*seq)
		names = append(names, name)
		select {
		case next <- name:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return out, names, first
}

// childPID is the pid of this process's child named comm (as /proc/<pid>/stat has it), 0 if
// none.
func childPID(comm string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		end := strings.LastIndexByte(s, ')')
		if end < 0 || !strings.HasSuffix(s[:end], "("+comm) {
			continue
		}
		if f := strings.Fields(s[end+1:]); len(f) >= 2 && f[1] == strconv.Itoa(os.Getpid()) {
			return pid
		}
	}
	return 0
}

func cpuOr0(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := cpuOf(pid)
	return d
}

// admissionSums are the sums and counts of the API server's admission histograms that
// matter here.
type admissionSums struct {
	step, stepN, policy, policyN, webhook, webhookN, request, requestN float64
}

func (a *admissionSums) add(b admissionSums) {
	a.step, a.stepN, a.policy, a.policyN = a.step+b.step, a.stepN+b.stepN, a.policy+b.policy, a.policyN+b.policyN
	a.webhook, a.webhookN, a.request, a.requestN = a.webhook+b.webhook, a.webhookN+b.webhookN, a.request+b.request, a.requestN+b.requestN
}

func (a admissionSums) minus(b admissionSums) admissionSums {
	return admissionSums{a.step - b.step, a.stepN - b.stepN, a.policy - b.policy, a.policyN - b.policyN,
		a.webhook - b.webhook, a.webhookN - b.webhookN, a.request - b.request, a.requestN - b.requestN}
}

// admissionMetrics reads them from the API server's /metrics: the mutating admission step,
// the MutatingAdmissionPolicy plugin and the webhooks (type admit: one at a time here), and the
// whole of the StatefulSet creates (apiserver_request_duration_seconds, POST statefulsets).
func admissionMetrics(ctx context.Context, env *framework.Env) admissionSums {
	var a admissionSums
	raw, err := env.Clientset.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load: reading the API server's metrics:", err)
		return a
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(value, &v); err != nil {
			continue
		}
		has := func(l string) bool { return strings.Contains(","+labels+",", ","+l+",") }
		switch {
		case name == "apiserver_admission_step_admission_duration_seconds_sum" && has(`type="admit"`):
			a.step += v
		case name == "apiserver_admission_step_admission_duration_seconds_count" && has(`type="admit"`):
			a.stepN += v
		case name == "apiserver_admission_controller_admission_duration_seconds_sum" && has(`name="MutatingAdmissionPolicy"`) && has(`type="admit"`):
			a.policy += v
		case name == "apiserver_admission_controller_admission_duration_seconds_count" && has(`name="MutatingAdmissionPolicy"`) && has(`type="admit"`):
			a.policyN += v
		case name == "apiserver_admission_webhook_admission_duration_seconds_sum" && has(`type="admit"`):
			a.webhook += v
		case name == "apiserver_admission_webhook_admission_duration_seconds_count" && has(`type="admit"`):
			a.webhookN += v
		case name == "apiserver_request_duration_seconds_sum" && has(`verb="POST"`) && has(`resource="statefulsets"`):
			a.request += v
		case name == "apiserver_request_duration_seconds_count" && has(`verb="POST"`) && has(`resource="statefulsets"`):
			a.requestN += v
		}
	}
	return a
}

// startNullWebhook serves a handler that allows everything on the guard's webhook server
// (serving.WebhookServer, HTTP/1.1, with envtest's serving certificate) in this process, and
// returns a configuration for it: the guard's workload webhook (rules, matchConditions,
// timeout, failurePolicy) for namespace ns alone, and the count of calls it answered.
func startNullWebhook(ctx context.Context, env *framework.Env, guard []*admissionregistrationv1.MutatingWebhookConfiguration, ns string) (*admissionregistrationv1.MutatingWebhookConfiguration, *atomic.Int64, error) {
	var w *admissionregistrationv1.MutatingWebhook
	for _, g := range guard {
		for i := range g.Webhooks {
			if g.Webhooks[i].Name == "workloads.metrics-guard.eck.dev" {
				w = g.Webhooks[i].DeepCopy()
			}
		}
	}
	if w == nil || w.ClientConfig.URL == nil {
		return nil, nil, fmt.Errorf("no workloads webhook with a URL in the guard's configuration")
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	calls := &atomic.Int64{}
	srv := serving.NewWebhookServer(serving.WebhookOptions{Host: "127.0.0.1", Port: port, CertDir: env.Environment.WebhookInstallOptions.LocalServingCertDir})
	recoverPanic := true
	srv.Register("/null", &admission.Webhook{RecoverPanic: &recoverPanic, Handler: admission.HandlerFunc(func(context.Context, admission.Request) admission.Response {
		calls.Add(1)
		return admission.Allowed("")
	})})
	env.Go(srv.Start)
	u, err := url.Parse(*w.ClientConfig.URL)
	if err != nil {
		return nil, nil, err
	}
	u.Host, u.Path = net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "/null"
	us := u.String()
	w.Name, w.ClientConfig.URL = "null.load.metrics-guard.eck.dev", &us
	w.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}
	// Ready when it answers over TLS (any answer).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true}) // a readiness probe on loopback: any certificate will do
		if err == nil {
			_ = conn.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("the null webhook did not listen in 30s: %w", err)
		}
	}
	return &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "null-webhook"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{*w}}, calls, nil
}

// guardCounter is the counter name of this process's controller-runtime registry (the
// guard's metrics), summed over the series whose label has the value.
func guardCounter(name, label, value string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
