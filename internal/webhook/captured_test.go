package webhook

import (
	"context"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

// TestCapturedRequests checks what the guard answers to the requests the benchmarks and the
// load tool replay: those that must be mutated get a patch, the others none, and nothing is
// admitted unchanged for an error.
func TestCapturedRequests(t *testing.T) {
	lookup, err := captures.Lookup()
	if err != nil {
		t.Fatal(err)
	}
	patched := map[string]bool{captures.ECKStatefulSet: true, captures.ECKConfigMap: true, captures.ManyEnvStatefulSet: true}
	all, err := captures.All()
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{Lookup: lookup}
	for _, c := range all {
		r, err := c.Review()
		if err != nil {
			t.Fatal(err)
		}
		resp := h.Handle(context.Background(), requestOf(r.Request))
		if !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("%s: allowed %v, warnings %v, %v", c.Name, resp.Allowed, resp.Warnings, resp.Result)
		}
		if got := len(resp.Patches) > 0; got != patched[c.Name] {
			t.Errorf("%s: patched = %v, want %v: %v (%v)", c.Name, got, patched[c.Name], resp.Patches, resp.Result)
		}
	}
}

func requestOf(r *admissionv1.AdmissionRequest) admission.Request {
	return admission.Request{AdmissionRequest: *r}
}
