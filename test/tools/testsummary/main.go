// Command testsummary reads the JSON events of `go test -json` (gotestsum's --jsonfile) and
// prints, per package, how many tests passed, failed and were skipped, then every skipped test
// with the reason it gave. With -no-skips it fails when a test of a package under that prefix
// skipped: `make test` uses it so that no end-to-end test is skipped unnoticed.
//
//	go run ./test/tools/testsummary [-no-skips <package prefix>] [-trim <prefix>] <file.json>
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// event is one line of test2json's output.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type pkgSummary struct {
	name                    string
	passed, failed, skipped int // top-level tests
	subtests                int
	elapsed                 float64
	result                  string // pass, fail, or "" (still running, or no test files)
	noTests                 bool
}

type summary struct {
	pkgs    map[string]*pkgSummary
	skips   []skip           // every skipped test or subtest, in order
	outputs map[key][]string // output of each test still running
}

type key struct{ pkg, test string }

type skip struct {
	pkg, test string
	reason    []string
}

func newSummary() *summary {
	return &summary{pkgs: map[string]*pkgSummary{}, outputs: map[key][]string{}}
}

func (s *summary) pkg(name string) *pkgSummary {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgSummary{name: name}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) add(e event) {
	p := s.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "pass", "fail":
			p.result, p.elapsed = e.Action, e.Elapsed
		case "skip":
			p.noTests = true
		case "output":
			if strings.Contains(e.Output, "[no test files]") {
				p.noTests = true
			}
		}
		return
	}
	k := key{e.Package, e.Test}
	top := !strings.Contains(e.Test, "/")
	switch e.Action {
	case "output":
		if line := strings.TrimRight(e.Output, "\n"); !strings.HasPrefix(strings.TrimSpace(line), "=== ") && !strings.HasPrefix(strings.TrimSpace(line), "--- ") {
			s.outputs[k] = append(s.outputs[k], line)
		}
	case "pass", "fail", "skip":
		if !top {
			p.subtests++
		}
		switch {
		case e.Action == "skip":
			s.skips = append(s.skips, skip{pkg: e.Package, test: e.Test, reason: s.outputs[k]})
			if top {
				p.skipped++
			}
		case !top:
		case e.Action == "pass":
			p.passed++
		default:
			p.failed++
		}
		delete(s.outputs, k)
	}
}

// write prints the table and the skipped tests, with package names trimmed of prefix.
func (s *summary) write(w io.Writer, trim string) {
	names := make([]string, 0, len(s.pkgs))
	noTests := 0
	for name, p := range s.pkgs {
		if p.noTests && p.passed+p.failed+p.skipped == 0 {
			noTests++
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "package\tpassed\tfailed\tskipped\tsubtests\ttime\t")
	var total pkgSummary
	for _, name := range names {
		p := s.pkgs[name]
		result := ""
		switch {
		case p.result == "fail" && p.failed == 0:
			result = "  FAIL (no test failed: the build or TestMain did)"
		case p.result == "fail":
			result = "  FAIL"
		case p.result == "":
			result = "  did not finish"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", strings.TrimPrefix(name, trim), p.passed, p.failed, p.skipped, p.subtests, duration(p.elapsed), result)
		total.passed += p.passed
		total.failed += p.failed
		total.skipped += p.skipped
		total.subtests += p.subtests
	}
	fmt.Fprintf(tw, "total (%d packages)\t%d\t%d\t%d\t%d\t\t\n", len(names), total.passed, total.failed, total.skipped, total.subtests)
	tw.Flush()
	if noTests > 0 {
		fmt.Fprintf(w, "(%d packages have no tests)\n", noTests)
	}
	if len(s.skips) == 0 {
		fmt.Fprintln(w, "no test skipped")
		return
	}
	fmt.Fprintf(w, "\n%d skipped:\n", len(s.skips))
	for _, sk := range s.skips {
		fmt.Fprintf(w, "  %s %s\n", strings.TrimPrefix(sk.pkg, trim), sk.test)
		if len(sk.reason) == 0 {
			fmt.Fprintln(w, "      (no reason given)")
		}
		for _, line := range sk.reason {
			fmt.Fprintf(w, "      %s\n", strings.TrimSpace(line))
		}
	}
}

func duration(seconds float64) string {
	return time.Duration(seconds * float64(time.Second)).Round(10 * time.Millisecond).String()
}

// commonPrefix is the longest prefix ending in "/" shared by every package name.
func commonPrefix(names map[string]*pkgSummary) string {
	prefix, first := "", true
	for name := range names {
		if first {
			prefix, first = name, false
			continue
		}
		for !strings.HasPrefix(name, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		return prefix[:i+1]
	}
	return ""
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("testsummary", flag.ContinueOnError)
	noSkips := fs.String("no-skips", "", "fail if a test of a package whose import path starts with this prefix skipped")
	trim := fs.String("trim", "", "prefix to trim from package names (default: the one all share)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: testsummary [-no-skips <package prefix>] [-trim <prefix>] <go test -json output>")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	s := newSummary()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Package == "" {
			continue // build output and the like
		}
		s.add(e)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(s.pkgs) == 0 {
		return fmt.Errorf("%s: no test events", fs.Arg(0))
	}
	fmt.Fprintln(stdout)
	if *trim == "" {
		*trim = commonPrefix(s.pkgs)
	}
	s.write(stdout, *trim)
	if *noSkips != "" {
		var bad []string
		for _, sk := range s.skips {
			if strings.HasPrefix(sk.pkg, *noSkips) {
				bad = append(bad, sk.pkg+" "+sk.test)
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("%d tests of %s* skipped, and none may: %s", len(bad), *noSkips, strings.Join(bad, ", "))
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
}
