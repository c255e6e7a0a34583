.PHONY: build test demo bench vet

build:
	go build -o bin/gantry ./cmd/gantry

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
