package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// events is what `go test -json` writes for a package with a passing test, a skipped test and
// a skipped subtest, a failing package, and a package without tests.
const events = `{"Action":"start","Package":"example.com/m/test/e2e"}
{"Action":"run","Package":"example.com/m/test/e2e","Test":"TestA"}
{"Action":"output","Package":"example.com/m/test/e2e","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"run","Package":"example.com/m/test/e2e","Test":"TestA/sub"}
{"Action":"output","Package":"example.com/m/test/e2e","Test":"TestA/sub","Output":"    a_test.go:9: no kubectl here\n"}
{"Action":"output","Package":"example.com/m/test/e2e","Test":"TestA/sub","Output":"--- SKIP: TestA/sub (0.00s)\n"}
{"Action":"skip","Package":"example.com/m/test/e2e","Test":"TestA/sub","Elapsed":0}
{"Action":"pass","Package":"example.com/m/test/e2e","Test":"TestA","Elapsed":1.5}
{"Action":"run","Package":"example.com/m/test/e2e","Test":"TestB"}
{"Action":"skip","Package":"example.com/m/test/e2e","Test":"TestB","Elapsed":0}
{"Action":"pass","Package":"example.com/m/test/e2e","Elapsed":2.25}
{"Action":"run","Package":"example.com/m/internal/x","Test":"TestC"}
{"Action":"fail","Package":"example.com/m/internal/x","Test":"TestC","Elapsed":0.1}
{"Action":"fail","Package":"example.com/m/internal/x","Elapsed":0.2}
{"Action":"output","Package":"example.com/m/cmd/y","Output":"?   \texample.com/m/cmd/y\t[no test files]\n"}
{"Action":"skip","Package":"example.com/m/cmd/y","Elapsed":0}
`

func TestSummary(t *testing.T) {
	file := filepath.Join(t.TempDir(), "test.json")
	if err := os.WriteFile(file, []byte(events), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{file}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"internal/x 0 1 0 0 200ms FAIL",
		"test/e2e 1 0 1 1 2.25s",
		"total (2 packages)       1       1        1         1",
		"(1 packages have no tests)",
		"2 skipped:\n  test/e2e TestA/sub\n      a_test.go:9: no kubectl here\n  test/e2e TestB\n      (no reason given)\n",
	} {
		if !strings.Contains(strings.Join(strings.Fields(out.String()), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}

	err := run([]string{"-no-skips", "example.com/m/test/", file}, &out)
	if err == nil || !strings.Contains(err.Error(), "2 tests of example.com/m/test/* skipped") {
		t.Errorf("-no-skips: err = %v", err)
	}
	if err := run([]string{"-no-skips", "example.com/m/internal/", file}, &out); err != nil {
		t.Errorf("-no-skips of a package without skips: %v", err)
	}
}
