package framework

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// ServiceMonitorCRD is the Prometheus Operator's ServiceMonitor CRD file, from the module
// pinned in test/tools/crds (downloaded from the Go module proxy on first use).
func ServiceMonitorCRD() (string, error) {
	dir, err := moduleDir("crds", "github.com/prometheus-operator/prometheus-operator")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml"), nil
}

// PodMonitorCRD is the Prometheus Operator's PodMonitor CRD file, from the same module.
func PodMonitorCRD() (string, error) {
	dir, err := moduleDir("crds", "github.com/prometheus-operator/prometheus-operator")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "example", "prometheus-operator-crd", "monitoring.coreos.com_podmonitors.yaml"), nil
}

// OpenReportsCRDs is the directory of the OpenReports CRDs (openreports.io/v1alpha1 Report and
// ClusterReport), from the module of their Go types the guard is built with.
func OpenReportsCRDs() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/openreports/reports-api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/openreports/reports-api: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "crd"), nil
}

// moduleDir downloads a module required by test/tools/<tools> and returns its directory.
func moduleDir(tools, module string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "mod", "download", "-json", module)
	cmd.Dir = filepath.Join(root, "test", "tools", tools)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download %s in test/tools/%s: %w", module, tools, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no directory (%s)", module, info.Error)
	}
	return info.Dir, nil
}
