#!/usr/bin/env bash
# ensure-deps.sh: install what Gantry's demo and tests need on a fresh
# Debian machine (git, PostgreSQL binaries), then build OpenTofu once from
# the Go module proxy (cached). Prints the OpenTofu binary path last.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'ensure-deps: %s\n' "$*" >&2; }

need=()
command -v git >/dev/null || need+=(git)
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
	need+=(postgresql)
fi
if ((${#need[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		log "missing packages: ${need[*]} (install them, or run as root)"
		exit 1
	fi
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq "${need[@]}" >&2
	# The tests start their own throwaway clusters: keep the packaged one stopped.
	if command -v service >/dev/null; then service postgresql stop >/dev/null 2>&1 || true; fi
fi
scripts/ensure-tofu.sh | tail -n 1
