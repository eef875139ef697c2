package eckconfig

import (
	"fmt"
	"strings"
	"testing"
)

// TestMemoBounded: any number of distinct files leaves the memos within their budget, a file
// larger than memoMaxText is not kept, and a memoized result is the computed one.
func TestMemoBounded(t *testing.T) {
	for i := range 2000 {
		text := fmt.Sprintf("metrics-port: %d\npadding: %s\n", i, strings.Repeat("x", i%700))
		cfg, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := Parse(text)
		if again != cfg {
			t.Fatal("a recent text was parsed again")
		}
		if n, _, _ := cfg.Int("metrics-port"); n != i {
			t.Fatalf("metrics-port = %d, want %d", n, i)
		}
		out, changed, err := Apply(text, Change{Key: "metrics-port", Value: "8081"})
		if err != nil || !changed || !strings.HasPrefix(out, "metrics-port: 8081\n") {
			t.Fatalf("Apply = %q, %v, %v", out, changed, err)
		}
		if p, a := memoBytes(); p > memoBudget || a > memoBudget {
			t.Fatalf("memos hold %d and %d bytes, budget %d", p, a, memoBudget)
		}
	}
	big := "metrics-port: 1\n" + strings.Repeat("# padding\n", memoMaxText/10+1)
	before, _ := memoBytes()
	if _, err := Parse(big); err != nil {
		t.Fatal(err)
	}
	if after, _ := memoBytes(); after != before {
		t.Errorf("a %d-byte file was kept", len(big))
	}
	// Errors are remembered too, and stay errors.
	for range 2 {
		if _, err := Parse("a: 1\na: 2\n"); err == nil {
			t.Fatal("a duplicate key was accepted")
		}
	}
}
