package engine

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkSecureLargeConfig is the bounded-work case of a padded eck.yaml: any ConfigMap the
// API server accepts (up to 1 MiB, tens of thousands of keys) must be decided and secured in
// well under the webhook's timeout. Compare the cost per key across sizes: it must stay flat.
func BenchmarkSecureLargeConfig(b *testing.B) {
	for _, keys := range []int{10, 1000, 10000, 40000} {
		var text strings.Builder
		text.WriteString("log-verbosity: 0\nmetrics-port: 0\n")
		for i := 0; i < keys; i++ {
			fmt.Fprintf(&text, "padding-%06d-port: %d\n", i, 20000+i%40000)
		}
		b.Run(fmt.Sprintf("keys=%d,bytes=%d", keys, text.Len()), func(b *testing.B) {
			sts, cms := operator()
			cms["elastic-operator"].Data["eck.yaml"] = text.String()
			in := input(&testing.T{}, sts, cms)
			b.ReportAllocs()
			for b.Loop() {
				r, err := Secure(in)
				if err != nil || !r.Verdict.Secured() {
					b.Fatalf("%v %s", err, r.Verdict)
				}
			}
		})
	}
}

// BenchmarkSecureManyEnv is a manager container with 1,000 env vars and an envFrom.
func BenchmarkSecureManyEnv(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("env=%d", n), func(b *testing.B) {
			sts, cms := operator()
			c := &sts.Spec.Template.Spec.Containers[0]
			for i := 0; i < n; i++ {
				c.Env = append(c.Env, corev1.EnvVar{Name: fmt.Sprintf("VAR_%d", i), Value: fmt.Sprintf("$(VAR_%d)x", i/2)})
			}
			c.EnvFrom = []corev1.EnvFromSource{cmRef("env", "")}
			cms["env"] = &corev1.ConfigMap{Data: map[string]string{"METRICS_SECURE": "false"}}
			in := input(&testing.T{}, sts, cms)
			b.ReportAllocs()
			for b.Loop() {
				if r, _ := Secure(in); !r.Verdict.Secured() {
					b.Fatal(r.Verdict)
				}
			}
		})
	}
}
