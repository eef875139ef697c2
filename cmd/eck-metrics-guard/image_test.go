package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageBuildIsStatic builds the binary exactly as the Dockerfile does (its flags are read
// from the Dockerfile) and checks that it is static, so it runs on distroless/static, and
// that the version is stamped. There is no Docker engine here; this is the part that matters.
func TestImageBuildIsStatic(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	build := regexp.MustCompile(`(?s)RUN (CGO_ENABLED=0 go build .*?) \\\s*\n\s*-o /out/eck-metrics-guard`).FindSubmatch(dockerfile)
	if build == nil {
		t.Fatal("no `CGO_ENABLED=0 go build ... -o /out/eck-metrics-guard` in the Dockerfile")
	}
	ldflags := regexp.MustCompile(`-ldflags "([^"]+)"`).FindSubmatch(build[1])
	if ldflags == nil || !strings.Contains(string(build[1]), "-trimpath") {
		t.Fatalf("the Dockerfile's build lacks -trimpath or -ldflags: %s", build[1])
	}
	bin := filepath.Join(t.TempDir(), "eck-metrics-guard")
	flags := strings.ReplaceAll(string(ldflags[1]), "${VERSION}", "v0.0.0-test")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", flags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%s): it would not run on distroless/static", p.Type)
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "v0.0.0-test" {
		t.Errorf("version = %q (%v), want the stamped v0.0.0-test", out, err)
	}
	if !strings.Contains(string(dockerfile), "USER 65532:65532") || !strings.Contains(string(dockerfile), "distroless/static") {
		t.Error("the image must run as 65532:65532 on distroless/static")
	}
}

// TestImageBaseIsPinned checks that the image's final stage, the one that ships, starts from
// distroless/static:nonroot pinned by digest (tag@sha256:digest): a tag alone may move to
// another image between two builds of the same commit.
func TestImageBaseIsPinned(t *testing.T) {
	dockerfile, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?im)^FROM[ \t]+(?:--platform=\S+[ \t]+)?(\S+)(?:[ \t]+AS[ \t]+\S+)?[ \t]*$`).FindAllSubmatch(dockerfile, -1)
	if len(from) < 2 {
		t.Fatalf("%d FROM lines in the Dockerfile, want a build stage and a final stage", len(from))
	}
	final := string(from[len(from)-1][1])
	pinned := regexp.MustCompile(`^gcr\.io/distroless/static:nonroot@sha256:([0-9a-f]{64})$`).FindStringSubmatch(final)
	if pinned == nil {
		t.Fatalf("the final stage is FROM %s, want gcr.io/distroless/static:nonroot@sha256:<64 hex digits>", final)
	}
	if strings.Count(pinned[1], pinned[1][:1]) == len(pinned[1]) {
		t.Errorf("the digest %s is a placeholder", pinned[1])
	}
}
