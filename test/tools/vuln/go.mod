// Module vuln pins govulncheck and the Go vulnerability database it checks against, for
// `make vulncheck`: govulncheck is built from golang.org/x/vuln into ./bin, and the database
// is made offline from the OSV files of golang.org/x/vulndb (see mkdb). Kept apart from the
// project's go.mod so that neither leaks into it.
module github.com/eck-metrics-guard/eck-metrics-guard/test/tools/vuln

go 1.26.0

tool golang.org/x/vuln/cmd/govulncheck

require (
	golang.org/x/mod v0.42.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/telemetry v0.0.0-20261010193011-f71dc92da45e // indirect
	golang.org/x/tools v0.52.0 // indirect
	golang.org/x/vuln v1.9.0 // indirect
	golang.org/x/vulndb v0.0.0-20261105234957-e22db6528018
)
