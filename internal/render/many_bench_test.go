package render

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
	"github.com/eck-metrics-guard/eck-metrics-guard/test/eckmanifests"
)

// BenchmarkInjectManyOperators secures streams of N installs of ECK's own manifest (each with
// its ClusterRoles and bindings): the cost per operator must stay flat as N grows.
func BenchmarkInjectManyOperators(b *testing.B) {
	path, err := eckmanifests.Path("operator-3.5.0.yaml")
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 100, 300} {
		var docs []string
		for i := 0; i < n; i++ {
			docs = append(docs, strings.ReplaceAll(string(raw), "elastic-system", fmt.Sprintf("ns-%d", i)))
		}
		input := []byte(strings.Join(docs, "\n---\n"))
		b.Run(fmt.Sprintf("operators=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Inject("many.yaml", input, Options{Defaults: policy.Defaults{Issuer: "ca"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
