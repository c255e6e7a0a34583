#!/usr/bin/env bash
# demo.sh: build Gantry and start the server on the embedded default
# (SQLite in ./gantry-data, 2 built-in workers) with the demo stack deployed.
set -euo pipefail
cd "$(dirname "$0")/.."

tofu="$(scripts/ensure-deps.sh)"
mkdir -p bin
go build -buildvcs=auto -o bin/gantry ./cmd/gantry
export PATH="$(dirname "$tofu"):$PWD/bin:$PATH"
echo "Built bin/gantry; OpenTofu at $tofu"
exec bin/gantry server --demo --data-dir "${GANTRY_DATA_DIR:-./gantry-data}" "$@"
