package render

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/eck-metrics-guard/eck-metrics-guard/internal/policy"
)

// FuzzInject feeds inject arbitrary manifest streams (the seeds: every input of
// test/testdata/inject). Whatever the bytes, it returns an error or a stream; a stream it
// returns is a fixed point (inject of its own output changes nothing) and every operator in
// it is judged the same again. This exercises the YAML patcher (patch.ApplyYAML) on the
// shapes the fuzzer makes. `go test` runs the seeds; `make fuzz` fuzzes.
func FuzzInject(f *testing.F) {
	inputs, _ := filepath.Glob("../../test/testdata/inject/*.yaml")
	for _, p := range inputs {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	opts := Options{Defaults: policy.Defaults{Issuer: "ca"}}
	f.Fuzz(func(t *testing.T, input []byte) {
		res, err := Inject("fuzz.yaml", input, opts)
		if err != nil {
			return
		}
		again, err := Inject("fuzz.yaml", res.Output, opts)
		if err != nil {
			t.Fatalf("inject refuses its own output: %v\ninput:\n%s\noutput:\n%s", err, input, res.Output)
		}
		if !bytes.Equal(again.Output, res.Output) {
			t.Fatalf("inject of its own output changed it\ninput:\n%s\nfirst:\n%s\nsecond:\n%s", input, res.Output, again.Output)
		}
	})
}
