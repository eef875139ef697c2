// Command vulngate reads govulncheck's JSON output (-format json) on standard input, prints
// one line per vulnerability the code calls (module, version found, version fixed), and fails
// when one is not accepted in the -accepted file, or when an accepted one is no longer found
// (so the list only ever shrinks). Vulnerabilities only imported or required, not called,
// are counted and not gated, as govulncheck's own exit status does.
//
// The accepted file has one vulnerability a line, its ID first, then why it cannot be fixed
// yet; # starts a comment.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

type message struct {
	Config *struct {
		DB             string     `json:"db"`
		DBLastModified *time.Time `json:"db_last_modified"`
		GoVersion      string     `json:"go_version"`
		ScannerVersion string     `json:"scanner_version"`
	} `json:"config"`
	OSV *struct {
		ID      string `json:"id"`
		Summary string `json:"summary"`
	} `json:"osv"`
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

// finding is one vulnerability of one module.
type finding struct {
	id, module, version, fixed string
}

// result is what gate makes of a govulncheck run.
type result struct {
	db, goVersion, scanner string
	dbDate                 time.Time
	called                 []finding
	notCalled              map[string]bool
	summaries              map[string]string
}

func read(r io.Reader) (*result, error) {
	res := &result{notCalled: map[string]bool{}, summaries: map[string]string{}}
	called := map[finding]bool{}
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading govulncheck's JSON: %w", err)
		}
		switch {
		case m.Config != nil:
			res.db, res.goVersion, res.scanner = m.Config.DB, m.Config.GoVersion, m.Config.ScannerVersion
			if m.Config.DBLastModified != nil {
				res.dbDate = *m.Config.DBLastModified
			}
		case m.OSV != nil:
			res.summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			top := m.Finding.Trace[0]
			if top.Function == "" {
				res.notCalled[m.Finding.OSV] = true
				continue
			}
			called[finding{m.Finding.OSV, top.Module, top.Version, m.Finding.FixedVersion}] = true
		}
	}
	if res.db == "" {
		return nil, errors.New("no govulncheck config message: is this the output of govulncheck -format json?")
	}
	for f := range called {
		res.called = append(res.called, f)
		delete(res.notCalled, f.id)
	}
	sort.Slice(res.called, func(i, j int) bool {
		a, b := res.called[i], res.called[j]
		if a.id != b.id {
			return a.id < b.id
		}
		return a.module < b.module
	})
	return res, nil
}

// readAccepted maps each accepted ID to its reason.
func readAccepted(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		line, _, _ := strings.Cut(s.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 2 || !strings.HasPrefix(fields[0], "GO-") {
			return nil, fmt.Errorf("line %d: want <GO-ID> <why it is accepted>", n)
		}
		out[fields[0]] = strings.Join(fields[1:], " ")
	}
	return out, s.Err()
}

// gate writes the report to w and returns the problems: called and not accepted, or accepted
// and not found.
func gate(res *result, accepted map[string]string, w io.Writer) []string {
	date := "unknown"
	if !res.dbDate.IsZero() {
		date = res.dbDate.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "govulncheck %s, %s, database %s of %s\n", res.scanner, res.goVersion, res.db, date)
	var problems []string
	found := map[string]bool{}
	for _, f := range res.called {
		found[f.id] = true
		state := "NOT ACCEPTED"
		if why, ok := accepted[f.id]; ok {
			state = "accepted: " + why
		} else {
			problems = append(problems, fmt.Sprintf("%s in %s@%s is called (fixed in %s): %s", f.id, f.module, f.version, f.fixed, res.summaries[f.id]))
		}
		fixed := f.fixed
		if fixed == "" {
			fixed = "no fix"
		}
		fmt.Fprintf(w, "  %s  %s@%s, fixed in %s  %s\n    %s\n", f.id, f.module, f.version, fixed, res.summaries[f.id], state)
	}
	for id := range accepted {
		if !found[id] {
			problems = append(problems, fmt.Sprintf("%s is accepted but no longer found: remove it from the accepted list", id))
		}
	}
	sort.Strings(problems)
	fmt.Fprintf(w, "%d vulnerabilities called (%d accepted), %d more in imported packages or required modules but not called\n",
		len(found), len(found)-countProblems(res, accepted), len(res.notCalled))
	return problems
}

func countProblems(res *result, accepted map[string]string) int {
	ids := map[string]bool{}
	for _, f := range res.called {
		if _, ok := accepted[f.id]; !ok {
			ids[f.id] = true
		}
	}
	return len(ids)
}

func main() {
	acceptedPath := flag.String("accepted", "", "file of accepted vulnerabilities")
	flag.Parse()
	accepted := map[string]string{}
	if *acceptedPath != "" {
		f, err := os.Open(*acceptedPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		accepted, err = readAccepted(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *acceptedPath, err)
			os.Exit(2)
		}
	}
	res, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if problems := gate(res, accepted, os.Stdout); len(problems) > 0 {
		fmt.Println("vulncheck failed:")
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		os.Exit(1)
	}
}
