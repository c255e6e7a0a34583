#!/usr/bin/env bash
# bench.sh: run Gantry's benchmarks (package bench) against the real server
# binary, real OpenTofu and a throwaway PostgreSQL, then print the machine
# and a summary of every target: measured, target, met or MISSED.
# Results go into docs/benchmarks.md by hand.
#
#   scripts/bench.sh                 all benchmarks (about 10 minutes)
#   scripts/bench.sh -bench List     only some (any extra go test flags)
#
#   GANTRY_BENCH_LOG=FILE   keep the whole go test output in FILE
#   GANTRY_BENCH_DB=sqlite  one database only (default sqlite,postgres)
#   and the sample sizes of bench/doc.go.
#
# Run it on a quiet machine: anything else running skews the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/gantry-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "bench: building gantry" >&2
go build -o "$work/gantry" ./cmd/gantry
# Git, PostgreSQL and OpenTofu (scripts/ensure-tofu.sh, via ensure-deps.sh).
tofu="$(scripts/ensure-deps.sh | tail -n 1)"

export GANTRY_BENCH=1
export GANTRY_BENCH_GANTRY="$work/gantry"
export GANTRY_BENCH_TOFU="$tofu"
export GANTRY_BENCH_RESULTS="$work/results.tsv"
: >"$GANTRY_BENCH_RESULTS"
log="${GANTRY_BENCH_LOG:-$work/bench.log}"

machine() {
	echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu:      $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "memory:   $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
	echo "kernel:   $(uname -sr)"
	echo "go:       $(go env GOVERSION)"
	echo "opentofu: $("$tofu" version 2>/dev/null | head -n 1)"
	echo "load:     $(cut -d ' ' -f 1-3 /proc/loadavg) (1, 5, 15 min)"
}
machine
load1="$(cut -d ' ' -f 1 /proc/loadavg)"
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
	echo "bench: warning: the load average is $load1; other work on the machine skews the results" >&2
fi

# CPU ticks (USER_HZ) of the whole machine: all, idle+iowait, steal.
cputicks() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6, $9 }' /proc/stat; }
read -r all0 idle0 steal0 < <(cputicks)
start=$(date +%s)
status=0
go test ./bench -count=1 -run . -bench . -benchtime 1x -timeout 60m -v "$@" 2>&1 | tee "$log" || status=$?
read -r all1 idle1 steal1 < <(cputicks)
elapsed=$(($(date +%s) - start))

echo
echo "=== Gantry benchmark summary ==="
machine
awk -v a=$((all1 - all0)) -v i=$((idle1 - idle0)) -v s=$((steal1 - steal0)) -v e="$elapsed" 'BEGIN {
	printf "run:      %d s; CPU busy %.0f%% of %d s x %d CPUs; stolen by the hypervisor %.1f s\n", e, a ? 100 * (a - i) / a : 0, e, '"$(nproc)"', s / 100 }'
echo
if [[ -s "$GANTRY_BENCH_RESULTS" ]]; then
	awk -F '\t' '
		BEGIN { printf "%-58s %-50s %-14s %s\n", "target", "measured", "goal", "status" }
		{ printf "%-58s %-50s %-14s %s\n", $1, $2, $3, $4; if ($4 != "met") missed++ }
		END { printf "\n%d results, %d missed\n", NR, missed }
	' "$GANTRY_BENCH_RESULTS"
else
	echo "no results (did the benchmarks run? see the output above)"
fi
if [[ -n "${GANTRY_BENCH_LOG:-}" ]]; then
	echo "full output: $log"
fi
exit "$status"
