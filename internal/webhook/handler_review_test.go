package webhook

// Security review of the admission front door under an Enforce MetricsSecurityPolicy.

import (
	"context"
	"strings"
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/api/v1alpha1"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// TestReviewEnforceAdmitsADecoyManager: a create under Enforce that runs ECK with plain HTTP
// metrics is admitted unchanged. Container "manager" runs the ECK image with args ["help"]
// (cobra prints the help and exits; the pod keeps running its other containers), container
// "real" runs `manager --metrics-port=9090` (metrics-secure false by default, ECK
// main.go:301-305). The matchCondition runs-the-eck-operator sends it to the guard, but
// eck.FromObject picks "manager", sees it does not run the manager and answers "not an
// ECK operator" (handler.go notOperator allows every create).
func TestReviewEnforceAdmitsADecoyManager(t *testing.T) {
	decoy := strings.Replace(statefulSetJSON, `"containers": [{`,
		`"containers": [{"name": "manager", "image": "docker.elastic.co/eck/eck-operator:3.5.0", "args": ["help"]}, {`, 1)
	decoy = strings.Replace(decoy, `"name": "manager", "image": "docker.elastic.co/eck/eck-operator:3.5.0",
          "args": ["manager", "--config=/conf/eck.yaml"]`, `"name": "real", "image": "docker.elastic.co/eck/eck-operator:3.5.0",
          "args": ["manager", "--metrics-port=9090"]`, 1)
	if !strings.Contains(decoy, `"real"`) || !strings.Contains(decoy, `["help"]`) {
		t.Fatalf("fixture not rewritten:\n%s", decoy)
	}
	h := &Handler{Lookup: &fakeLookup{coverage: map[string]*policy.Coverage{"elastic-system": {Policy: "platform", Mode: v1alpha1.ModeEnforce}}}}
	resp := h.Handle(context.Background(), request(statefulSets, "elastic-system", decoy))
	if resp.Allowed && len(resp.Patches) == 0 {
		t.Errorf("admitted unchanged (%s): container real serves plain HTTP metrics on 9090", resp.Result.Message)
	}
}
