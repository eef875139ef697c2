package framework

import (
	"fmt"
	"os"
	"path/filepath"
)

// ECKChart is the directory of Elastic's own Helm chart (deploy/eck-operator) in the ECK
// module pinned in test/tools/eckcharts/<version> (downloaded on first use).
func ECKChart(version string) (string, error) {
	dir, err := moduleDir(filepath.Join("eckcharts", version), "github.com/elastic/cloud-on-k8s/v"+version[:1])
	if err != nil {
		return "", err
	}
	chart := filepath.Join(dir, "deploy", "eck-operator")
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("no Helm chart in the ECK %s module: %w", version, err)
	}
	return chart, nil
}

// Tool is the path of a pinned binary of ./bin ($KUBEBUILDER_ASSETS if set), or an error
// saying which make target builds it.
func Tool(name, target string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found: run `make %s` first", p, target)
	}
	return p, nil
}
