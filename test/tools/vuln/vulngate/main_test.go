package main

import (
	"strings"
	"testing"
)

const run = `{"config":{"protocol_version":"v1.0.0","scanner_name":"govulncheck","scanner_version":"v1.9.0","db":"file:///db","db_last_modified":"2026-11-05T23:49:57Z","go_version":"go1.26.8","scan_level":"symbol"}}
{"progress":{"message":"Scanning your code"}}
{"osv":{"id":"GO-2026-1","summary":"stdlib bug"}}
{"osv":{"id":"GO-2026-2","summary":"x/net bug"}}
{"osv":{"id":"GO-2026-3","summary":"imported only"}}
{"finding":{"osv":"GO-2026-1","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve"},{"module":"example.com/m","function":"main"}]}}
{"finding":{"osv":"GO-2026-2","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.58.0","package":"golang.org/x/net/http2"}]}}
{"finding":{"osv":"GO-2026-2","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.58.0","package":"golang.org/x/net/http2","function":"Framer.ReadFrame"}]}}
{"finding":{"osv":"GO-2026-3","fixed_version":"v2.0.0","trace":[{"module":"example.com/lib","version":"v1.0.0","package":"example.com/lib"}]}}
`

func TestGate(t *testing.T) {
	res, err := read(strings.NewReader(run))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.called) != 2 || len(res.notCalled) != 1 || !res.notCalled["GO-2026-3"] {
		t.Fatalf("called %v, not called %v", res.called, res.notCalled)
	}
	var out strings.Builder
	problems := gate(res, map[string]string{"GO-2026-1": "needs Go 1.26.9"}, &out)
	if len(problems) != 1 || !strings.Contains(problems[0], "GO-2026-2 in golang.org/x/net@v0.58.0 is called (fixed in v0.60.0)") {
		t.Errorf("problems: %q", problems)
	}
	for _, want := range []string{"database file:///db of 2026-11-05T23:49:57Z", "GO-2026-1  stdlib@v1.26.8, fixed in v1.26.9", "accepted: needs Go 1.26.9", "NOT ACCEPTED", "2 vulnerabilities called (1 accepted), 1 more"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report without %q:\n%s", want, out.String())
		}
	}
	if problems := gate(res, map[string]string{"GO-2026-1": "a", "GO-2026-2": "b", "GO-2026-9": "fixed long ago"}, &out); len(problems) != 1 || !strings.Contains(problems[0], "GO-2026-9 is accepted but no longer found") {
		t.Errorf("a stale acceptance: %q", problems)
	}
	if _, err := read(strings.NewReader(`{"progress":{}}`)); err == nil {
		t.Error("output without a config accepted")
	}
}

func TestReadAccepted(t *testing.T) {
	got, err := readAccepted(strings.NewReader("# comment\n\nGO-2026-1 needs Go 1.26.9 # until then\n"))
	if err != nil || len(got) != 1 || got["GO-2026-1"] != "needs Go 1.26.9" {
		t.Fatalf("%v, %v", got, err)
	}
	if _, err := readAccepted(strings.NewReader("GO-2026-1\n")); err == nil {
		t.Error("an acceptance without a reason")
	}
}
