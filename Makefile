# lkbuild's developer entry points. `make test` is what CI runs (.ci/run).

GO ?= go
export PATH := $(shell $(GO) env GOPATH)/bin:/usr/local/go/bin:$(PATH)
FUZZTIME ?= 10s

.PHONY: build lint test e2e quickstart fuzz bench

# build makes the one static binary. urfave_cli_no_docs leaves out the
# man/markdown generators, whose package init costs ~15 ms at every start
# (the sandbox starts the binary twice).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags urfave_cli_no_docs -ldflags '-s -w' -o lkbuild ./cmd/lkbuild

# lint fails on unformatted files, go vet findings and staticcheck findings.
lint:
	@unformatted=$$(gofmt -l $$($(GO) list -e -f '{{.Dir}}' ./...)); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l reports:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	staticcheck ./...

# test runs every package's tests as root and as an unprivileged user, against
# a real registry (scripts/test.sh; needs root).
test: lint
	bash scripts/test.sh

# e2e runs the end-to-end kernel build suite alone (the e2e package of
# scripts/test.sh: fixtures, a registry with auth, the build as lktest).
e2e:
	bash scripts/test.sh ./e2e

# quickstart builds the test kernel end to end with embedded defaults: no
# registry, no daemon; the image goes to the default OCI layout.
quickstart: build
	bash scripts/quickstart.sh

# fuzz runs every Fuzz target for FUZZTIME each (make fuzz FUZZTIME=1m).
fuzz:
	@set -e; \
	targets=$$(grep -rEo --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*' . | sed 's/:func /:/'); \
	[ -n "$$targets" ] || echo "no fuzz targets"; \
	for t in $$targets; do \
		dir=$$(dirname $${t%%:*}); fn=$${t##*:}; \
		echo "== $$fn in $$dir"; \
		$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$dir; \
	done

# bench runs every benchmark and prints a PASS/MISS table against the
# targets (bench/README.md). Run it as root: GNU tar and lkbuild then both
# keep owners and device nodes.
bench:
	bash bench/run.sh
