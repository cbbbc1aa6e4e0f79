# Berth. `make run` serves the registry on its embedded default
# (127.0.0.1:5000, ./data); `make test` installs what the tests need and runs
# them all; `make bench` runs the benchmarks against the anchors.
GO      ?= go
TOOLS   ?= $(CURDIR)/.cache/tools/bin
export TOOLS

.PHONY: all build run test unit e2e deps bench fuzz vet fmt clean

all: build

build:
	$(GO) build -o bin/registry ./cmd/registry
	$(GO) build -o bin/pull-run ./cmd/pull-run

run: build
	./bin/registry serve

deps:
	bash scripts/install-deps.sh
	bash scripts/minio.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...

unit:
	$(GO) test -count=1 ./...

e2e: build
	$(GO) test -count=1 -tags e2e -timeout 30m -v ./e2e/...

test: deps vet unit e2e

# Short fuzzing runs of the parsers that face the network.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParseManifest -fuzztime 30s ./registry/store/
	$(GO) test -run '^$$' -fuzz FuzzParseRoute -fuzztime 30s ./registry/

bench:
	bash scripts/bench.sh

clean:
	rm -rf bin .cache
