.PHONY: build test demo bench vet

# VERSION=v1.2.3 names the release (`gantry version`, the server's start
# line, what workers report); without it a build from a git checkout says
# dev-<commit> (-buildvcs overrides a GOFLAGS=-buildvcs=false).
VERSION ?=
build:
	go build -buildvcs=auto $(if $(VERSION),-ldflags "-X github.com/gantry-iac/gantry/internal/release.Version=$(VERSION)") -o bin/gantry ./cmd/gantry

# All tests on a fresh machine (installs what they need first).
test:
	bash scripts/test.sh

# The server on the embedded default with the demo stack.
demo:
	bash scripts/demo.sh

vet:
	go vet ./...

# Benchmarks; results go to docs/benchmarks.md by hand.
bench:
	bash scripts/bench.sh
