package engine

// Security review: shapes under which Secure says secured, or Admit admits under an
// Enforce MetricsSecurityPolicy, while the real ECK serves plain HTTP metrics. Ground truth
// sources are cited in internal/eck/effective_review_test.go.

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/mutate"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

func enforcedReview(t *testing.T, sts *appsv1.StatefulSet, cms map[string]*corev1.ConfigMap) policy.Input {
	t.Helper()
	in := input(t, sts, cms)
	in.Coverage, in.Admitting = &policy.Coverage{Policy: "platform", Mode: v1alpha1.ModeEnforce}, policy.HolderWorkload
	return in
}

// TestReviewEnforceAdmitsConfigPathFromServiceVariable: FALSE SECURED, admitted under
// Enforce. --config=/conf/$(KUBERNETES_SERVICE_PORT).yaml is expanded by the kubelet with the
// always-present master service variables (k8s.io/kubernetes@v1.37.2
// pkg/kubelet/container/helpers.go:269, pkg/kubelet/kubelet_pods.go:731-738 and 995-1003), so
// ECK reads /conf/443.yaml, which says metrics-secure: false. The guard reads the item at the
// literal path, secures that key, judges secured and admits the create.
func TestReviewEnforceAdmitsConfigPathFromServiceVariable(t *testing.T) {
	sts, cms := operator()
	c := &sts.Spec.Template.Spec.Containers[0]
	c.Args = []string{"manager", "--config=/conf/$(KUBERNETES_SERVICE_PORT).yaml"}
	sts.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{
		{Key: "eck.yaml", Path: "$(KUBERNETES_SERVICE_PORT).yaml"},
		{Key: "real.yaml", Path: "443.yaml"},
	}
	cms["elastic-operator"].Data["real.yaml"] = "metrics-port: 9090\nmetrics-secure: false\n"
	r, err := Admit(enforcedReview(t, sts, cms), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The path of the file cannot be known, so no ConfigMap is known to hold it: the guard
	// secures the operator with flags, which win over whatever file ECK reads.
	if len(r.Decision.Denied) > 0 || !r.Verdict.Secured() || r.Template == nil || !strings.Contains(strings.Join(r.Template.Spec.Containers[0].Args, " "), "--metrics-secure=true") {
		t.Errorf("denied %v, verdict %s; want it secured by flags", r.Decision.Denied, r.Verdict)
	}
}

// TestReviewEnforceAdmitsASecondOperatorContainer: FALSE SECURED, admitted under Enforce.
// An update that adds a second ECK container running the manager with default settings
// (metrics-secure false, ECK main.go:301-305) on --metrics-port=9090: only the "manager"
// container is judged and mutated (eck/operator.go operatorContainer), so the update is
// admitted and the verdict is secured.
func TestReviewEnforceAdmitsASecondOperatorContainer(t *testing.T) {
	was, cms := operator()
	sts, _ := operator()
	spec := &sts.Spec.Template.Spec
	spec.Containers = append(spec.Containers, corev1.Container{
		Name: "shadow", Image: "docker.elastic.co/eck/eck-operator:3.5.0",
		Args: []string{"manager", "--metrics-port=9090", "--webhook-port=9444"},
	})
	old := enforcedReview(t, was, cms)
	r, err := Admit(enforcedReview(t, sts, cms), &old)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Decision.Denied) == 0 || r.Verdict.Secured() {
		t.Errorf("admitted: denied %v, verdict %s; container shadow serves plain HTTP metrics on 9090", r.Decision.Denied, r.Verdict)
	}
}

// TestReviewEnforceAdmitsAMergeKeyThatDisablesSecurity: FALSE SECURED, admitted under
// Enforce, proven with the real binary (eck.TestReviewRealECKFindings "a merge key with
// another case overrides metrics-secure"). A namespace user updates the operator's eck.yaml
// to add `<<: {METRICS-SECURE: false}`. yaml.v3 merges the key (it differs in case from
// metrics-secure, so it is not skipped), and viper's insensitiviseMap
// (viper@v1.21.0/util.go:89-100) writes the non-lower-case key last whatever the map order:
// ECK reads metrics-secure false. The guard's eckconfig sees only the literal top-level keys,
// keeps metrics-secure: true, judges secured and admits the write; ECK's config watch
// (ECK main.go:401) restarts it with plain HTTP metrics.
func TestReviewEnforceAdmitsAMergeKeyThatDisablesSecurity(t *testing.T) {
	sts, cms := operator()
	secured, err := Secure(input(t, sts, cms))
	if err != nil || !secured.Verdict.Secured() {
		t.Fatalf("not secured: %v %s", err, secured.Verdict)
	}
	stored := map[string]*corev1.ConfigMap{"elastic-operator": secured.ConfigMap}
	was := secured.Template
	sts.Spec.Template = *was
	written := secured.ConfigMap.DeepCopy()
	written.Data["eck.yaml"] += "<<: {METRICS-SECURE: false}\n"
	in := enforcedReview(t, sts, map[string]*corev1.ConfigMap{"elastic-operator": written})
	in.Admitting = policy.HolderConfigMap
	old := enforcedReview(t, sts, stored)
	old.Admitting = policy.HolderConfigMap
	r, ferr := Admit(in, &old)
	if ferr != nil {
		t.Fatal(ferr)
	}
	// The merge key is refused as a setting of the ConfigMap's own: the webhook denies it.
	if own := policy.OwnErrors(r.Decision.Errs, nil, policy.HolderConfigMap); len(own)+len(r.Decision.Denied) == 0 || r.Verdict.Secured() {
		t.Errorf("admitted: errors %v, denied %v, verdict %s", r.Decision.Errs, r.Decision.Denied, r.Verdict)
	}
}

// TestReviewTrimmedCacheJudgesAFileItNeverSaw: FALSE SECURED in the controller's status.
//
// cluster.Transform (internal/cluster/lookup.go) trims the data of every ConfigMap that
// eck.ConfigKeyOf does not recognise: a config file in a key such as "cfg" (mounted through
// items as eck.yaml) is gone from the cache. Secure then judges the file it would write from
// scratch (engine.configMapToEdit, mutate.ConfigMap adds the key) and says secured; the
// controller edits the live copy (controller/operator.go healConfigMap), and when
// eckconfig.Apply refuses it (an anchor another key refers to) it records an event and
// returns nil, and the status is still res.Verdict: "secured", while ECK reads
// metrics-secure false from the file as it is. The webhook never sees writes of this
// ConfigMap either (matchCondition holds-an-eck-config).
func TestReviewTrimmedCacheJudgesAFileItNeverSaw(t *testing.T) {
	sts, cms := operator()
	sts.Spec.Template.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "cfg", Path: "eck.yaml"}}
	live := cms["elastic-operator"].DeepCopy()
	// Keys that do not look like eck.yaml to the cache (upper case): it trims them.
	live.Data = map[string]string{"cfg": "METRICS-PORT: 8081\nMETRICS-SECURE: false\n"}
	cached, _ := cluster.Transform(live.DeepCopy())
	cms["elastic-operator"] = cached.(*corev1.ConfigMap)
	if _, kept := cms["elastic-operator"].Data["cfg"]; kept {
		t.Fatal("the cache kept the key; the shape does not apply")
	}
	r, err := Secure(input(t, sts, cms))
	if err != nil {
		t.Fatal(err)
	}
	_, applyErr := mutate.ConfigMap(live.DeepCopy(), "cfg", r.Decision.Plan)
	t.Logf("the controller's edit of the live ConfigMap: %v", applyErr)
	if r.Verdict.Secured() {
		t.Errorf("verdict %s, judged on a file the guard never read; ECK reads %q (metrics-secure false)", r.Verdict, live.Data["cfg"])
	}
}
