// Command eck-metrics-guard secures the metrics endpoint of Elastic (ECK) operators: an
// admission webhook and controller for clusters, and inject/diff for manifests.
package main

import (
	"os"

	"github.com/eck-metrics-guard/eck-metrics-guard/cmd/eck-metrics-guard/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
