package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// Environment variables (see the package documentation).
const (
	envBench    = "GANTRY_BENCH"
	envGantry   = "GANTRY_BENCH_GANTRY"
	envTofu     = "GANTRY_BENCH_TOFU"
	envResults  = "GANTRY_BENCH_RESULTS"
	envDB       = "GANTRY_BENCH_DB"
	envPoll     = "GANTRY_BENCH_POLL"
	envTestTofu = "GANTRY_TEST_TOFU"
)

// skipMessage says why a benchmark did not run and how to run it.
const skipMessage = "Gantry benchmarks are off: they start real servers, OpenTofu and PostgreSQL and take minutes. " +
	"Set GANTRY_BENCH=1 to run them, or run `make bench` (scripts/bench.sh)"

// TestMain stops the throwaway PostgreSQL cluster, if a benchmark started
// one, when the benchmarks end.
func TestMain(m *testing.M) { dbtest.Main(m) }

// requireBench skips b unless GANTRY_BENCH=1.
func requireBench(tb testing.TB) {
	tb.Helper()
	if os.Getenv(envBench) != "1" {
		tb.Skip(skipMessage)
	}
}

// moduleRoot is the directory holding go.mod, the parent of this package.
func moduleRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("bench: no go.mod above the bench directory: %v", err)
	}
	return root
}

// gantryBinary returns GANTRY_BENCH_GANTRY, or builds the binary from this
// tree into a temporary directory of tb.
func gantryBinary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(envGantry); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil || !isExecutable(abs) {
			tb.Fatalf("%s=%s is not an executable file", envGantry, p)
		}
		return abs
	}
	out := filepath.Join(tb.TempDir(), "gantry")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/gantry")
	cmd.Dir = moduleRoot(tb)
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/gantry: %v\n%s", err, b)
	}
	return out
}

var (
	tofuOnce sync.Once
	tofuPath string
	tofuErr  error
)

// tofuBinary returns the OpenTofu binary: GANTRY_BENCH_TOFU, GANTRY_TEST_TOFU,
// or the last line scripts/ensure-tofu.sh prints.
func tofuBinary(tb testing.TB) string {
	tb.Helper()
	tofuOnce.Do(func() {
		for _, name := range []string{envTofu, envTestTofu} {
			if p := os.Getenv(name); p != "" {
				if tofuPath, tofuErr = filepath.Abs(p); tofuErr == nil && !isExecutable(tofuPath) {
					tofuErr = fmt.Errorf("%s=%s is not an executable file", name, p)
				}
				return
			}
		}
		var stdout bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(moduleRoot(tb), "scripts", "ensure-tofu.sh"))
		cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			tofuErr = fmt.Errorf("scripts/ensure-tofu.sh (or set %s): %w", envTofu, err)
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		tofuPath = strings.TrimSpace(lines[len(lines)-1])
		if !isExecutable(tofuPath) {
			tofuErr = fmt.Errorf("scripts/ensure-tofu.sh printed %q, not an executable file", tofuPath)
		}
	})
	if tofuErr != nil {
		tb.Fatalf("OpenTofu: %v", tofuErr)
	}
	return tofuPath
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// backend is a database the server runs on.
type backend struct {
	name  string
	dbURL func(tb testing.TB) string // "" for SQLite in the data directory
}

// backends returns the databases GANTRY_BENCH_DB selects (default both).
func backends(tb testing.TB) []backend {
	tb.Helper()
	all := []backend{
		{"sqlite", func(testing.TB) string { return "" }},
		{"postgres", dbtest.PostgresURL},
	}
	want := os.Getenv(envDB)
	if want == "" {
		return all
	}
	var out []backend
	for _, b := range all {
		if slices.Contains(strings.Split(want, ","), b.name) {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		tb.Fatalf("%s=%q names no database (sqlite, postgres)", envDB, want)
	}
	return out
}

// eachBackend runs fn as a sub-benchmark per database.
func eachBackend(b *testing.B, fn func(b *testing.B, be backend)) {
	b.Helper()
	requireBench(b)
	for _, be := range backends(b) {
		b.Run(be.name, func(b *testing.B) { fn(b, be) })
	}
}

// envInt returns the integer in the environment variable name, or def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// pollEvery is how often a benchmark polls a run it waits for: 0 (the
// default) long-polls the run's log instead (see waitRunErr).
func pollEvery(tb testing.TB) time.Duration {
	tb.Helper()
	v := os.Getenv(envPoll)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		tb.Fatalf("%s=%q: want a duration such as 3ms, or 0", envPoll, v)
	}
	return d
}

// result is one line of the summary: a measured figure against its target.
type result struct {
	Target   string // which target, e.g. "1 run end to end (sqlite)"
	Measured string // the figure
	Goal     string // the target, e.g. "<= 1.10"
	Met      bool
}

var resultsMu sync.Mutex

// Results and notes go to standard output, not through tb.Log, so that
// they read the same with and without -v and bench.sh can pick them out.

// record prints r as a RESULT line and appends it to GANTRY_BENCH_RESULTS.
func record(tb testing.TB, r result) {
	tb.Helper()
	status := "met"
	if !r.Met {
		status = "MISSED"
	}
	line := fmt.Sprintf("RESULT %-44s %-60s target %-12s %s", r.Target, r.Measured, r.Goal, status)
	fmt.Println(line)
	path := os.Getenv(envResults)
	if path == "" {
		return
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Errorf("results file: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\t%s\t%s\t%s\n", r.Target, r.Measured, r.Goal, status)
}

// note prints an informational line (a breakdown, a detail) to the output.
func note(tb testing.TB, format string, args ...any) {
	tb.Helper()
	line := fmt.Sprintf(format, args...)
	fmt.Println("       " + strings.ReplaceAll(line, "\n", "\n       "))
}

// hideNsPerOp replaces the meaningless ns/op of a benchmark that measures
// its own samples.
func hideNsPerOp(b *testing.B) { b.ReportMetric(0, "ns/op") }

// stats summarises a sample of durations.
type stats struct {
	n                            int
	min, p50, p95, p99, max, avg time.Duration
}

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return stats{n: len(s), min: s[0], p50: quantile(s, 0.50), p95: quantile(s, 0.95), p99: quantile(s, 0.99),
		max: s[len(s)-1], avg: sum / time.Duration(len(s))}
}

// quantile is the nearest-rank quantile q of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// ms formats a duration in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", msf(d)) }

// msf is a duration in (fractional) milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// timeoutCtx returns a context ending after d or when tb ends.
func timeoutCtx(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}
