package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/cluster"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/eck"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/engine"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/patch"
	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/load/captures"
)

// capturedCase is a captured request, decoded, with the lookup a guard would read from.
type capturedCase struct {
	captures.Case
	req    admission.Request
	lookup cluster.Lookup
}

func capturedCases(b *testing.B) []capturedCase {
	logf.SetLogger(logr.Discard())
	b.Helper()
	all, err := captures.All()
	if err != nil {
		b.Fatal(err)
	}
	lookup, err := captures.Lookup()
	if err != nil {
		b.Fatal(err)
	}
	var out []capturedCase
	for _, c := range all {
		r, err := c.Review()
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, capturedCase{Case: c, req: admission.Request{AdmissionRequest: *r.Request}, lookup: lookup})
	}
	return out
}

var benchCodecs = serializer.NewCodecFactory(runtime.NewScheme())

// BenchmarkServeHTTP is a whole admission as the webhook server runs it for a captured request
// (controller-runtime's admission.Webhook: decode the AdmissionReview, handle, encode the
// answer), and the same for a null handler that allows everything: the floor. Compare the
// two per case: the ratio is what the guard costs beyond any controller-runtime webhook.
func BenchmarkServeHTTP(b *testing.B) {
	for _, c := range capturedCases(b) {
		for _, hook := range []struct {
			name string
			h    admission.Handler
		}{
			{"null", admission.HandlerFunc(func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })},
			{"guard", &Handler{Lookup: c.lookup}},
		} {
			b.Run(c.Name+"/"+hook.name, func(b *testing.B) {
				wh := &admission.Webhook{Handler: hook.h}
				b.SetBytes(int64(len(c.Body)))
				measure(b, func() {
					r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(c.Body))
					r.Header.Set("Content-Type", "application/json")
					w := httptest.NewRecorder()
					wh.ServeHTTP(w, r)
					if w.Code != http.StatusOK {
						b.Fatal(w.Body.String())
					}
				})
			})
		}
	}
}

// BenchmarkStages is the hot path of each captured request stage by stage: decode the
// AdmissionReview (as controller-runtime does), decode the object, read the cache and decide
// (policy.Decide), decide-secure-judge (engine.Admit), build the patch, encode the answer
// (Response.Complete and the AdmissionReview). "handle" is Handler.Handle whole; "patch" is
// the patch from the change (patch.Template), "patch-diff" the whole-object diff it replaced.
func BenchmarkStages(b *testing.B) {
	for _, c := range capturedCases(b) {
		ctx := context.Background()
		b.Run(c.Name+"/review", func(b *testing.B) {
			measure(b, func() {
				var ar admissionv1.AdmissionReview
				if _, _, err := benchCodecs.UniversalDeserializer().Decode(c.Body, nil, &ar); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(c.Name+"/object", func(b *testing.B) {
			measure(b, func() {
				if err := decode(c.req, newObject(c.req.Kind).(runtime.Object)); err != nil {
					b.Fatal(err)
				}
			})
		})
		h := &Handler{Lookup: c.lookup}
		resp := h.Handle(ctx, c.req)
		b.Run(c.Name+"/handle", func(b *testing.B) {
			measure(b, func() {
				h.Handle(ctx, c.req)
			})
		})
		b.Run(c.Name+"/encode", func(b *testing.B) {
			measure(b, func() {
				r := resp
				r.Patch = nil
				if err := r.Complete(c.req); err != nil {
					b.Fatal(err)
				}
				if _, err := json.Marshal(admissionv1.AdmissionReview{Response: &r.AdmissionResponse}); err != nil {
					b.Fatal(err)
				}
			})
		})
		if c.req.Kind != statefulSets {
			continue
		}
		sts := &appsv1.StatefulSet{}
		if err := decode(c.req, sts); err != nil {
			b.Fatal(err)
		}
		op, tmpl, ok := eck.FromObject(sts)
		if !ok {
			continue
		}
		in, err := cluster.Input(ctx, c.lookup, c.req.Namespace, cluster.Workload{Operator: op, Template: tmpl, Annotations: sts.Annotations}, policy.Defaults{})
		if err != nil {
			b.Fatal(err)
		}
		in.Admitting = policy.HolderWorkload
		b.Run(c.Name+"/input", func(b *testing.B) {
			measure(b, func() {
				if _, err := cluster.Input(ctx, c.lookup, c.req.Namespace, cluster.Workload{Operator: op, Template: tmpl, Annotations: sts.Annotations}, policy.Defaults{}); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(c.Name+"/decide", func(b *testing.B) {
			measure(b, func() {
				policy.Decide(in)
			})
		})
		b.Run(c.Name+"/admit", func(b *testing.B) {
			measure(b, func() {
				engine.Admit(in, nil)
			})
		})
		r, _ := engine.Admit(in, nil)
		if r.Template == nil {
			continue
		}
		after := sts.DeepCopy()
		after.Spec.Template = *r.Template
		b.Run(c.Name+"/patch", func(b *testing.B) {
			measure(b, func() {
				if _, err := patch.Template("/spec/template", &sts.Spec.Template, r.Template); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(c.Name+"/patch-diff", func(b *testing.B) {
			measure(b, func() {
				if _, err := patch.Diff(sts, after); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// measure runs fn in a benchmark loop and reports, besides time and allocations, the CPU
// time of the process per operation (cpu-ns/op: every thread, the garbage collector's too),
// which a machine busy with other work inflates far less than the wall-clock time.
func measure(b *testing.B, fn func()) {
	b.Helper()
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		fn()
	}
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
