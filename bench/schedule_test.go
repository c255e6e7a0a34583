package bench

// Scheduler benchmarks (issue 7): 10,000 stacks, each with a drift
// detection schedule on one shared cron expression ("0 * * * *"), on
// SQLite and PostgreSQL. Unlike the other benchmarks they drive the
// scheduler in process (package schedule, wired to the run, stack, policy
// and audit services as `gantry server` wires them) and tick it at chosen
// times, so an hour of schedules is measured in seconds:
//
//   - BenchmarkScheduleTickIdle: Tick when nothing is due, the common case
//     (every second, all day): p50/p95/p99 per tick, allocations per tick.
//   - BenchmarkScheduleTickDue: the ticks that fire all 10,000 due
//     schedules, one virtual second apart: with a jitter window (the
//     schedules spread over it, a few dozen per tick), without one (all due
//     at once, fired in batches of 500 per tick), and without one under a
//     built-in pool drift run limit of 100 (9,900 skipped with a note).
//     Per-tick p50/p95/max, cost per schedule, total, Go heap.
//   - The spread of start times: the offsets (next_run_at - next_due) of
//     the schedules for one due time, bucketed per second and per 10
//     seconds, and how many each 1-second tick actually fired.
//
// Environment (besides GANTRY_BENCH and GANTRY_BENCH_DB):
//
//	GANTRY_BENCH_SCHED_STACKS=N      stacks with a drift schedule (default 10000)
//	GANTRY_BENCH_SCHED_IDLE_TICKS=N  idle ticks measured (default 2000)
//	GANTRY_BENCH_SCHED_JITTER=D      the jitter window (default 5m)
//	GANTRY_BENCH_SCHED_RUNS=N        finished tracked runs per stack (default 10)

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/schedule"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

const (
	envSchedStacks = "GANTRY_BENCH_SCHED_STACKS"
	envSchedIdle   = "GANTRY_BENCH_SCHED_IDLE_TICKS"
	envSchedJitter = "GANTRY_BENCH_SCHED_JITTER"
	envSchedRuns   = "GANTRY_BENCH_SCHED_RUNS"

	// schedCron is the expression every seeded schedule shares.
	schedCron = "0 * * * *"
	// targetIdleTickP95 bounds an idle tick: 5 % of the scheduler's 1 s
	// interval.
	targetIdleTickP95 = 50 * time.Millisecond
)

// schedEnv is a database seeded with stacks and their drift schedules, and
// the scheduler over it.
type schedEnv struct {
	ctx    context.Context
	d      *db.DB
	svc    *schedule.Service
	sch    *schedule.Scheduler
	n      int
	seeded time.Duration
	// heapSeeded is the Go heap in use after seeding, after a GC.
	heapSeeded uint64
}

func schedJitter(tb testing.TB) time.Duration {
	tb.Helper()
	v := os.Getenv(envSchedJitter)
	if v == "" {
		return 5 * time.Minute
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		tb.Fatalf("%s=%q: want a duration such as 5m", envSchedJitter, v)
	}
	return d
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func heapAfterGC() uint64 {
	runtime.GC()
	return heapInUse()
}

// seedSchedules opens a fresh database of be and creates n stacks, each
// with a drift detection schedule on schedCron, through the services, and
// GANTRY_BENCH_SCHED_RUNS finished tracked runs per stack in bulk: every
// due schedule then queues a drift detection run.
func seedSchedules(b *testing.B, be backend, n int, jitter time.Duration) *schedEnv {
	b.Helper()
	ctx := timeoutCtx(b, 30*time.Minute)
	url, dir := be.dbURL(b), ""
	if url == "" {
		dir = b.TempDir()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := db.Open(ctx, url, dir, log)
	if err != nil {
		b.Fatalf("open %s: %v", be.name, err)
	}
	b.Cleanup(func() { d.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	// The services as internal/server wires them (those a tick touches).
	hub := events.NewHub()
	spaces := space.NewService(d)
	stacks := stack.NewService(d, box)
	runs := run.NewService(d, hub, box, log)
	svc := schedule.New(d)
	svc.Jitter = jitter
	sch := svc.NewScheduler(runs, stacks, log)
	pol := policy.NewService(d, spaces, stacks, runs, notify.NewService(d, box, log), hub, log)
	runs.Policies = pol
	au := audit.NewService(d, log)
	runs.Audit, pol.Audit = au, au
	hook := au.Hook()
	spaces.Audit, stacks.Audit, svc.Audit = hook, hook, hook
	if err := spaces.EnsureRoot(ctx); err != nil {
		b.Fatal(err)
	}

	start := time.Now()
	actx := audit.WithRequest(ctx, audit.Request{Actor: "bench"})
	for i := range n {
		id := fmt.Sprintf("stack-%05d", i)
		if _, err := stacks.Create(actx, stack.Stack{ID: id, Repository: "https://git.example.com/infra.git"}); err != nil {
			b.Fatalf("create stack %d: %v", i, err)
		}
		if _, err := svc.SetDrift(actx, id, "bench", schedule.DriftSettings{Crons: []string{schedCron}}); err != nil {
			b.Fatalf("drift schedule %d: %v", i, err)
		}
	}
	// Each stack's history: finished tracked runs (so that drift
	// detection, which needs the stack's last run FINISHED, goes ahead),
	// inserted in bulk as BenchmarkList seeds them.
	perStack := envInt(b, envSchedRuns, 10)
	if err := seedFinishedRuns(ctx, d, n, perStack); err != nil {
		b.Fatalf("seed runs: %v", err)
	}
	env := &schedEnv{ctx: ctx, d: d, svc: svc, sch: sch, n: n, seeded: time.Since(start)}
	// Settle as BenchmarkList does: SQLite's WAL checkpointed and its
	// planner statistics gathered, PostgreSQL vacuumed and analyzed.
	settle := []string{"PRAGMA wal_checkpoint(TRUNCATE)", "ANALYZE"}
	if d.Dialect == db.Postgres {
		settle = []string{"VACUUM ANALYZE"}
	}
	for _, q := range settle {
		if _, err := d.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	env.heapSeeded = heapAfterGC()
	load, _ := os.ReadFile("/proc/loadavg")
	note(b, "seeded %d stacks with drift schedules (%q, jitter %s) and %d finished runs each on %s in %s; Go heap in use %.1f MiB; load average %s",
		n, schedCron, jitter, perStack, be.name, env.seeded.Round(time.Millisecond), mibU(env.heapSeeded), bytes.TrimSpace(load))
	return env
}

// seedFinishedRuns inserts perStack FINISHED tracked runs for each of the
// stacks stack-00000... in one transaction, 100 rows per statement, oldest
// first (run ids sort by creation, as the server's do).
func seedFinishedRuns(ctx context.Context, d *db.DB, stacks, perStack int) error {
	const cols, rowsPerStmt = 4, 100
	return d.Tx(ctx, func(ctx context.Context) error {
		var args []any
		flush := func() error {
			if len(args) == 0 {
				return nil
			}
			var q strings.Builder
			q.WriteString(`INSERT INTO runs (id, stack_id, space_id, type, state, blocking, triggered_by, created_at, updated_at) VALUES `)
			for r := range len(args) / cols {
				if r > 0 {
					q.WriteByte(',')
				}
				p := r*cols + 1
				fmt.Fprintf(&q, "($%d, $%d, 'root', 'TRACKED', 'FINISHED', TRUE, $%d, $%d, $%d)", p, p+1, p+2, p+3, p+3)
			}
			_, err := d.Exec(ctx, q.String(), args...)
			args = args[:0]
			return err
		}
		start := time.Now().Add(-time.Duration(perStack) * time.Hour).UnixNano()
		for k := range perStack {
			for i := range stacks {
				args = append(args, id.New("run"), fmt.Sprintf("stack-%05d", i), "user:alice", start+int64(k)*int64(time.Hour)+int64(i))
				if len(args) == rowsPerStmt*cols {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		return flush()
	})
}

func mibU(bytes uint64) float64 { return float64(bytes) / (1 << 20) }

// schedRow is a schedule's due time and start time.
type schedRow struct{ due, runAt int64 }

func (e *schedEnv) rows(b *testing.B) []schedRow {
	b.Helper()
	rows, err := e.d.Query(e.ctx, `SELECT next_due, next_run_at FROM schedules`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var out []schedRow
	for rows.Next() {
		var r schedRow
		if err := rows.Scan(&r.due, &r.runAt); err != nil {
			b.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return out
}

// dueTime returns the due time most schedules share, how many share it,
// and the earliest start time of all.
func (e *schedEnv) dueTime(b *testing.B) (due time.Time, sharing int, earliest time.Time) {
	b.Helper()
	count := map[int64]int{}
	first := int64(0)
	for _, r := range e.rows(b) {
		count[r.due]++
		if first == 0 || r.runAt < first {
			first = r.runAt
		}
	}
	var best int64
	for d, c := range count {
		if c > count[best] {
			best = d
		}
	}
	return time.Unix(0, best).UTC(), count[best], time.Unix(0, first).UTC()
}

func (e *schedEnv) driftRuns(b *testing.B) int {
	b.Helper()
	var n int
	if err := e.d.QueryRow(e.ctx, `SELECT COUNT(*) FROM runs WHERE drift`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func BenchmarkScheduleTickIdle(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		b.StopTimer()
		n := envInt(b, envSchedStacks, 10_000)
		ticks := envInt(b, envSchedIdle, 2000)
		env := seedSchedules(b, be, n, schedJitter(b))
		_, _, earliest := env.dueTime(b)
		now := earliest.Add(-time.Second) // nothing is due yet
		for range 50 {                    // warm-up: prepared statements, connections
			if k, err := env.sch.Tick(env.ctx, now); err != nil || k != 0 {
				b.Fatalf("idle Tick = %d, %v", k, err)
			}
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		samples := make([]time.Duration, ticks)
		b.ReportAllocs()
		b.ResetTimer()
		b.StartTimer()
		for i := range samples {
			t0 := time.Now()
			k, err := env.sch.Tick(env.ctx, now)
			samples[i] = time.Since(t0)
			if err != nil || k != 0 {
				b.Fatalf("idle Tick = %d, %v", k, err)
			}
		}
		b.StopTimer()
		runtime.ReadMemStats(&m1)
		heap := heapAfterGC()
		s := summarize(samples)
		perTick := float64(m1.TotalAlloc-m0.TotalAlloc) / float64(ticks)
		allocs := float64(m1.Mallocs-m0.Mallocs) / float64(ticks)
		note(b, "idle tick, %d schedules none due, %d ticks: p50 %s p95 %s p99 %s max %s; %.1f KiB and %.0f allocations per tick; Go heap in use %.1f MiB",
			n, ticks, msp(s.p50), msp(s.p95), msp(s.p99), msp(s.max), perTick/1024, allocs, mibU(heap))
		record(b, result{
			Target:   fmt.Sprintf("scheduler idle tick, %d schedules (%s)", n, be.name),
			Measured: fmt.Sprintf("p50 %s, p95 %s, p99 %s", msp(s.p50), msp(s.p95), msp(s.p99)),
			Goal:     "p95 <= " + ms(targetIdleTickP95),
			Met:      s.p95 <= targetIdleTickP95,
		})
		b.ReportMetric(msf(s.p50), "p50-ms")
		b.ReportMetric(msf(s.p95), "p95-ms")
		b.ReportMetric(msf(s.p99), "p99-ms")
		b.ReportMetric(perTick, "B/tick")
		b.ReportMetric(allocs, "allocs/tick")
		b.ReportMetric(mibU(heap), "heap-MiB")
		hideNsPerOp(b)
	})
}

func BenchmarkScheduleTickDue(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		jitter := schedJitter(b)
		for _, v := range []struct {
			name   string
			jitter time.Duration
			limit  int // built-in pool drift run limit
		}{
			{"jitter=" + jitter.String(), jitter, 0},
			{"jitter=0", 0, 0},
			{"jitter=0,limit=100", 0, 100},
		} {
			b.Run(v.name, func(b *testing.B) {
				b.StopTimer()
				n := envInt(b, envSchedStacks, 10_000)
				env := seedSchedules(b, be, n, v.jitter)
				env.sch.BuiltinDriftRunLimit = v.limit
				due, sharing, _ := env.dueTime(b)
				if sharing != n {
					note(b, "only %d of %d schedules share the due time %s (seeding crossed an hour): measuring those", sharing, n, due)
				}
				if v.jitter > 0 {
					reportSpread(b, be, env, due, v.jitter)
				}
				// Tick once a (virtual) second from the due time on, as the
				// scheduler does, until every schedule of the due time
				// fired; time each tick.
				var samples []time.Duration
				var firedPerTick []int
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				peak := heapInUse()
				total, wall := 0, time.Duration(0)
				b.ReportAllocs()
				b.ResetTimer()
				b.StartTimer()
				for now := due; total < sharing; now = now.Add(time.Second) {
					if now.Sub(due) > v.jitter+time.Hour/2 {
						b.Fatalf("%d of %d schedules fired %s after their due time", total, sharing, now.Sub(due))
					}
					t0 := time.Now()
					k, err := env.sch.Tick(env.ctx, now)
					d := time.Since(t0)
					if err != nil {
						b.Fatalf("Tick: %v", err)
					}
					samples = append(samples, d)
					firedPerTick = append(firedPerTick, k)
					total += k
					wall += d
					if len(samples)%10 == 0 {
						peak = max(peak, heapInUse())
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&m1)
				peak = max(peak, heapInUse())
				runs := env.driftRuns(b)
				s := summarize(samples)
				perSchedule := wall / time.Duration(total)
				allocPer := float64(m1.TotalAlloc-m0.TotalAlloc) / float64(total)
				note(b, "%s: %d schedules fired in %d ticks (max %d per tick), %d drift runs queued; tick p50 %s p95 %s max %s; all ticks %s = %s per schedule; "+
					"%.1f KiB and %.0f allocations per schedule; Go heap in use: %.1f MiB after seeding, peak %.1f MiB while ticking",
					v.name, total, len(samples), slices.Max(firedPerTick), runs, msp(s.p50), msp(s.p95), msp(s.max), wall.Round(time.Millisecond),
					msp(perSchedule), allocPer/1024, float64(m1.Mallocs-m0.Mallocs)/float64(total), mibU(env.heapSeeded), mibU(peak))
				// Does a schedule cost more as runs pile up? The cost per
				// schedule over the first and the last tenth of the ticks.
				tenth := max(1, len(samples)/10)
				costOf := func(ds []time.Duration, ks []int) time.Duration {
					var sum time.Duration
					k := 0
					for i := range ds {
						sum += ds[i]
						k += ks[i]
					}
					return sum / time.Duration(max(k, 1))
				}
				note(b, "%s: cost per schedule in the first tenth of the ticks %s, in the last tenth %s",
					v.name, msp(costOf(samples[:tenth], firedPerTick[:tenth])), msp(costOf(samples[len(samples)-tenth:], firedPerTick[len(samples)-tenth:])))
				if len(samples) <= 40 {
					var each []string
					for _, d := range samples {
						each = append(each, fmt.Sprintf("%.2f", d.Seconds()))
					}
					note(b, "%s: each tick, in seconds: %s", v.name, strings.Join(each, " "))
				}
				if v.limit == 0 && runs != total {
					b.Errorf("%d drift runs for %d fired schedules", runs, total)
				}
				if v.limit > 0 {
					note(b, "%s: %d runs queued, %d skipped with a note (limit %d)", v.name, runs, total-runs, v.limit)
				}
				if v.jitter > 0 {
					reportFired(b, firedPerTick)
				}
				record(b, result{
					Target: fmt.Sprintf("scheduler due ticks, %d schedules, %s (%s)", sharing, v.name, be.name),
					Measured: fmt.Sprintf("tick p95 %s (max %s), %s/schedule, %s in all",
						msp(s.p95), msp(s.max), msp(perSchedule), wall.Round(time.Millisecond)),
					Goal: "-",
					Met:  true,
				})
				b.ReportMetric(msf(s.p95), "tick-p95-ms")
				b.ReportMetric(msf(s.max), "tick-max-ms")
				b.ReportMetric(msf(perSchedule), "ms/schedule")
				b.ReportMetric(wall.Seconds(), "total-s")
				b.ReportMetric(allocPer, "B/schedule")
				b.ReportMetric(mibU(peak), "peak-heap-MiB")
				hideNsPerOp(b)
			})
		}
	})
}

// reportSpread reports how the schedules of one due time spread their
// start times (next_run_at) over the jitter window.
func reportSpread(b *testing.B, be backend, env *schedEnv, due time.Time, window time.Duration) {
	b.Helper()
	var offsets []time.Duration
	for _, r := range env.rows(b) {
		if r.due == due.UnixNano() {
			offsets = append(offsets, time.Duration(r.runAt-r.due))
		}
	}
	slices.Sort(offsets)
	n := len(offsets)
	per1, per10 := map[int64]int{}, map[int64]int{}
	for _, o := range offsets {
		per1[int64(o/time.Second)]++
		per10[int64(o/(10*time.Second))]++
	}
	seconds := int((window + time.Second - 1) / time.Second)
	max1, min1, empty := 0, n, 0
	for s := range seconds {
		c := per1[int64(s)]
		max1, min1 = max(max1, c), min(min1, c)
		if c == 0 {
			empty++
		}
	}
	max10, min10 := 0, n
	for s := range (seconds + 9) / 10 {
		c := per10[int64(s)]
		max10, min10 = max(max10, c), min(min10, c)
	}
	mean1 := float64(n) / float64(seconds)
	mean10 := float64(n) / float64((seconds+9)/10)
	note(b, "spread of %d start times over a %s window: offsets %s..%s (median %s); per 1-s bucket min %d / max %d (mean %.1f, %d empty); per 10-s bucket min %d / max %d (mean %.1f)",
		n, window, offsets[0].Round(time.Millisecond), offsets[n-1].Round(time.Millisecond), offsets[n/2].Round(time.Millisecond),
		min1, max1, mean1, empty, min10, max10, mean10)
	record(b, result{
		Target:   fmt.Sprintf("start-time spread, %d schedules, %s window (%s)", n, window, be.name),
		Measured: fmt.Sprintf("%s..%s; max %d/s (mean %.1f), max %d/10s (mean %.0f)", offsets[0].Round(time.Second), offsets[n-1].Round(time.Second), max1, mean1, max10, mean10),
		Goal:     "-",
		Met:      true,
	})
	b.ReportMetric(offsets[0].Seconds(), "min-offset-s")
	b.ReportMetric(offsets[n-1].Seconds(), "max-offset-s")
	b.ReportMetric(float64(max1), "max-per-1s")
	b.ReportMetric(float64(max10), "max-per-10s")
}

// reportFired reports how many schedules each 1-second tick fired, the
// start times as the scheduler realized them.
func reportFired(b *testing.B, fired []int) {
	b.Helper()
	max10 := 0
	for i := 0; i < len(fired); i += 10 {
		s := 0
		for _, k := range fired[i:min(i+10, len(fired))] {
			s += k
		}
		max10 = max(max10, s)
	}
	sorted := slices.Clone(fired)
	slices.Sort(sorted)
	note(b, "fired per 1-s tick over %d ticks: median %d, max %d; max per 10 ticks %d", len(fired), sorted[len(sorted)/2], sorted[len(sorted)-1], max10)
}

// msp formats a duration in milliseconds with two decimals (idle ticks are
// well under a millisecond).
func msp(d time.Duration) string { return fmt.Sprintf("%.2f ms", msf(d)) }
