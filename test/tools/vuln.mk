# Makefile fragment: `make vulncheck`, govulncheck against an offline copy of the Go
# vulnerability database. Included by the root Makefile.
#
# Both are pinned in test/tools/vuln/go.mod: govulncheck (golang.org/x/vuln) is built into
# $(LOCALBIN)/govulncheck, and the database, in govulncheck's v1 file format, is made by
# test/tools/vuln/mkdb from the OSV files of the pinned golang.org/x/vulndb module (its
# data/osv) into $(LOCALBIN)/vulndb-<version>: no network but the Go module proxy. Both are
# rebuilt only when go.mod, go.sum or mkdb change. test/tools/vuln/vulngate reads
# govulncheck's JSON and fails on a called vulnerability that test/tools/vuln/accepted.txt
# does not list with its reason (and on a listed one that is gone). Bump the database with
# `cd test/tools/vuln && go get golang.org/x/vulndb@<version>` (not `go mod tidy`, which drops
# a module nothing imports).

LOCALBIN ?= $(CURDIR)/bin

VULN_TOOLS_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))/vuln
VULN_ROOT      := $(abspath $(VULN_TOOLS_DIR)/../../..)

GOVULNCHECK    ?= $(LOCALBIN)/govulncheck
VULNDB_VERSION  = $(shell awk '$$1 == "golang.org/x/vulndb" && $$2 ~ /^v/ { print $$2; exit }' $(VULN_TOOLS_DIR)/go.mod)
VULNDB_DIR      = $(LOCALBIN)/vulndb-$(VULNDB_VERSION)
VULNCHECK_JSON ?= $(VULN_ROOT)/testbin/vulncheck.json

##@ Vulnerabilities

.PHONY: vulncheck
vulncheck: $(GOVULNCHECK) $(VULNDB_DIR)/index/db.json ## Run govulncheck (pinned) on every package against the pinned, offline vulnerability database; fails on a called vulnerability not in test/tools/vuln/accepted.txt.
	cd $(VULN_TOOLS_DIR) && go test ./...
	@mkdir -p $(dir $(VULNCHECK_JSON))
	cd $(VULN_ROOT) && $(GOVULNCHECK) -db file://$(VULNDB_DIR) -format json ./... > $(VULNCHECK_JSON)
	cd $(VULN_TOOLS_DIR) && go run ./vulngate -accepted accepted.txt < $(VULNCHECK_JSON)

.PHONY: govulncheck
govulncheck: $(GOVULNCHECK) ## Build govulncheck (pinned in test/tools/vuln/go.mod) into LOCALBIN (./bin).

.PHONY: vulndb
vulndb: $(VULNDB_DIR)/index/db.json ## Make the offline vulnerability database from the pinned golang.org/x/vulndb into LOCALBIN (./bin).

$(GOVULNCHECK): $(VULN_TOOLS_DIR)/go.mod $(VULN_TOOLS_DIR)/go.sum
	@mkdir -p $(dir $@)
	cd $(VULN_TOOLS_DIR) && CGO_ENABLED=0 go build -trimpath -o $@ -ldflags "-s -w" golang.org/x/vuln/cmd/govulncheck

$(VULNDB_DIR)/index/db.json: $(VULN_TOOLS_DIR)/go.mod $(VULN_TOOLS_DIR)/go.sum $(wildcard $(VULN_TOOLS_DIR)/mkdb/*.go)
	@mkdir -p $(LOCALBIN)
	cd $(VULN_TOOLS_DIR) && go mod download golang.org/x/vulndb && \
	go run ./mkdb -osv "$$(go list -m -f '{{.Dir}}' golang.org/x/vulndb)/data/osv" \
		-modified "$$(go list -m -f '{{.Time.Format "2006-01-02T15:04:05Z07:00"}}' golang.org/x/vulndb)" -out $(VULNDB_DIR)
