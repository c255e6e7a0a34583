// Package bench holds Gantry's performance benchmarks. They drive the real
// `gantry server` binary over HTTP, with real OpenTofu and git, on SQLite
// and on a throwaway PostgreSQL, and compare Gantry with the bare OpenTofu
// command sequence measured in the same run:
//
//   - BenchmarkRunEndToEnd: a TRACKED run of a one-terraform_data
//     autodeploy stack, from creation to FINISHED, against
//     `tofu init; tofu plan -out=p; tofu show -json p; tofu apply p`.
//   - BenchmarkRunTimeline: where the time of such a run goes (git and
//     tofu invocations traced by PATH shims, next to the run's transitions).
//   - BenchmarkDispatch: QUEUED to PREPARING on idle workers.
//   - BenchmarkList: GET /api/v1/stacks and /api/v1/runs pages of 100 with
//     10,000 stacks and 100,000 runs, and the server's memory at that size.
//   - BenchmarkIdleMemory: the server's resident memory right after start.
//   - BenchmarkBurst: 20 runs at once on 5 built-in workers against the bare
//     sequence run 5-way parallel with xargs -P5.
//   - BenchmarkPolicyEval: 20 plan policies on a 10,000-change plan against
//     `opa eval` (OPA v1.22.3, built with go install), and on a 100-change
//     plan.
//   - BenchmarkRemoteWorkers: 500 proposed runs through 4 `gantry worker`
//     processes: throughput, hand-over and idle dispatch latency.
//
// They are skipped unless GANTRY_BENCH=1, so `go test ./...` stays fast.
// Run them with `make bench` (scripts/bench.sh), which builds the binary,
// finds OpenTofu and prints a summary; docs/benchmarks.md has the results.
//
// Environment:
//
//	GANTRY_BENCH=1             run the benchmarks
//	GANTRY_BENCH_GANTRY=PATH   the gantry binary (default: built per benchmark)
//	GANTRY_BENCH_TOFU=PATH     the OpenTofu binary (default: GANTRY_TEST_TOFU,
//	                           else what scripts/ensure-tofu.sh prints)
//	GANTRY_BENCH_RESULTS=FILE  append one tab-separated line per result
//	GANTRY_BENCH_DB=LIST       databases: sqlite,postgres (default both)
//	GANTRY_BENCH_E2E_RUNS=N    end-to-end iterations (default 30)
//	GANTRY_BENCH_DISPATCH_RUNS=N  dispatch samples (default 100)
//	GANTRY_BENCH_LIST_SAMPLES=N   requests per list endpoint (default 300)
//	GANTRY_BENCH_BURST_REPS=N  burst repetitions (default 5)
//	GANTRY_BENCH_TIMELINE_RUNS=N  traced runs of BenchmarkRunTimeline (default 8)
//	GANTRY_BENCH_POLICY_SAMPLES=N 10k-change policy samples (default 7)
//	GANTRY_BENCH_REMOTE_RUNS=N    runs of BenchmarkRemoteWorkers (default 500)
//	GANTRY_BENCH_REMOTE_DISPATCH_RUNS=N  its idle dispatch samples (default 50)
//	GANTRY_BENCH_SERVER_ARGS=FLAGS  extra `gantry server` flags, for example
//	                           --debug-listen 127.0.0.1:6060 to profile it
//	GANTRY_BENCH_POLL=DURATION wait for runs by polling GET /runs/{id} this
//	                           often (default: long-poll the run's log)
package bench
