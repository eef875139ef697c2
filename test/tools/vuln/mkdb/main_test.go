package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeOSV(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	twoRanges = `{"id": "GO-2099-0001", "modified": "0001-01-01T00:00:00Z", "aliases": ["CVE-2099-1"],
  "affected": [{"package": {"name": "example.com/a", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}, {"introduced": "1.5.0"}, {"fixed": "1.5.3"}]}]}]}`
	reintroduced = `{"id": "GO-2099-0002", "modified": "0001-01-01T00:00:00Z",
  "affected": [{"package": {"name": "example.com/a", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}, {"type": "SEMVER", "events": [{"introduced": "2.0.0"}]}]},
    {"package": {"name": "stdlib", "ecosystem": "Go"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.26.0-0"}, {"fixed": "1.26.9"}]}]}]}`
)

func TestBuild(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "db")
	writeOSV(t, src, "GO-2099-0001.json", twoRanges)
	writeOSV(t, src, "GO-2099-0002.json", reintroduced)
	date := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	if err := os.MkdirAll(filepath.Join(out, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := build(src, out, date)
	if err != nil || n != 2 {
		t.Fatalf("build: %d, %v", n, err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("index/db.json"); got != `{"modified":"2026-11-05T23:49:57Z"}` {
		t.Errorf("db.json: %s", got)
	}
	want := `[{"path":"example.com/a","vulns":[{"id":"GO-2099-0001","modified":"0001-01-01T00:00:00Z","fixed":"1.5.3"},{"id":"GO-2099-0002","modified":"0001-01-01T00:00:00Z"}]},` +
		`{"path":"stdlib","vulns":[{"id":"GO-2099-0002","modified":"0001-01-01T00:00:00Z","fixed":"1.26.9"}]}]`
	if got := read("index/modules.json"); got != want {
		t.Errorf("modules.json:\n got %s\nwant %s", got, want)
	}
	if got := read("index/vulns.json"); !strings.HasPrefix(got, `[{"id":"GO-2099-0001","modified":"0001-01-01T00:00:00Z","aliases":["CVE-2099-1"]},{"id":"GO-2099-0002"`) {
		t.Errorf("vulns.json: %s", got)
	}
	var a, b any
	if err := json.Unmarshal([]byte(read("ID/GO-2099-0001.json")), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(twoRanges), &b); err != nil {
		t.Fatal(err)
	}
	if ja, jb := mustJSON(t, a), mustJSON(t, b); ja != jb {
		t.Errorf("the entry changed:\n%s\n%s", ja, jb)
	}
	if _, err := os.Stat(filepath.Join(out, "stale")); !os.IsNotExist(err) {
		t.Errorf("the old database was not replaced")
	}
	if left, _ := filepath.Glob(out + ".new-*"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBuildRefuses(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"no files":          {},
		"misnamed":          {"GO-2099-0003.json": twoRanges},
		"not JSON":          {"GO-2099-0001.json": "{"},
		"no affected":       {"GO-2099-0004.json": `{"id": "GO-2099-0004"}`},
		"package with name": {"GO-2099-0005.json": `{"id": "GO-2099-0005", "affected": [{"package": {}}]}`},
	} {
		t.Run(name, func(t *testing.T) {
			src, out := t.TempDir(), filepath.Join(t.TempDir(), "db")
			for f, text := range files {
				writeOSV(t, src, f, text)
			}
			if _, err := build(src, out, time.Now()); err == nil {
				t.Fatal("no error")
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a database was written")
			}
		})
	}
}

func TestNonSupersededFix(t *testing.T) {
	r := func(events ...string) osvRange {
		var o osvRange
		for _, e := range events {
			kind, v, _ := strings.Cut(e, "=")
			ev := struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			}{}
			if kind == "i" {
				ev.Introduced = v
			} else {
				ev.Fixed = v
			}
			o.Type = "SEMVER"
			o.Events = append(o.Events, ev)
		}
		return o
	}
	for _, c := range []struct {
		ranges []osvRange
		want   string
	}{
		{nil, ""},
		{[]osvRange{r("i=0")}, ""},
		{[]osvRange{r("i=0", "f=1.2.3")}, "1.2.3"},
		{[]osvRange{r("i=0", "f=1.10.0", "i=1.2.0", "f=1.9.0")}, "1.10.0"},
		{[]osvRange{r("i=0", "f=1.0.0"), r("i=2.0.0")}, ""},
		{[]osvRange{r("i=0", "f=0.0.0-20260101000000-abcdefabcdef")}, "0.0.0-20260101000000-abcdefabcdef"},
		{[]osvRange{{Type: "ECOSYSTEM"}}, ""},
	} {
		if got := nonSupersededFix(c.ranges); got != c.want {
			t.Errorf("%+v: %q, want %q", c.ranges, got, c.want)
		}
	}
}
