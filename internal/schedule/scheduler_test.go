package schedule

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// worker is the worker id the fixture drives runs with.
const worker = "wrk-test"

// fixture holds the services of one database and a scheduler on them.
type fixture struct {
	ctx    context.Context
	d      *db.DB
	spaces *space.Service
	stacks *stack.Service
	runs   *run.Service
	pools  *workerpool.Service
	svc    *Service
	sch    *Scheduler
	n      int // stacks made so far
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	hub := events.NewHub()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	f := &fixture{ctx: context.Background(), d: d, spaces: space.NewService(d), stacks: stack.NewService(d, box),
		runs: run.NewService(d, hub, box, log), svc: New(d)}
	f.pools = workerpool.NewService(d, f.spaces, hub)
	f.sch = f.svc.NewScheduler(f.runs, f.stacks, log)
	if err := f.spaces.EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// stack creates a stack st-N on pool; "-" gives it a pool of its own (so
// that claims of that pool see only its runs).
func (f *fixture) stack(t *testing.T, pool string) stack.Stack {
	t.Helper()
	f.n++
	st := stack.Stack{ID: fmt.Sprintf("st-%d", f.n), Repository: "https://example.com/infra.git", WorkerPool: pool}
	if pool == "-" {
		st.WorkerPool = "pool-" + st.ID
	}
	ensurePool(t, f.d, st.WorkerPool, st.Space)
	got, err := f.stacks.Create(f.ctx, st)
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	return got
}

// pool creates a private worker pool with a drift run limit.
func (f *fixture) pool(t *testing.T, poolID string, driftRunLimit int) {
	t.Helper()
	if _, _, err := f.pools.Create(f.ctx, workerpool.Pool{ID: poolID, DriftRunLimit: driftRunLimit}); err != nil {
		t.Fatalf("create pool: %v", err)
	}
}

func (f *fixture) create(t *testing.T, stackID, typ string) run.Run {
	t.Helper()
	in := run.New{StackID: stackID, Type: typ, TriggeredBy: "alice"}
	if typ == run.Task {
		in.Command = "tofu state list"
	}
	r, err := f.runs.Create(f.ctx, in)
	if err != nil {
		t.Fatalf("create %s run: %v", typ, err)
	}
	return r
}

// claim claims the next run of r's pool, which must be r.
func (f *fixture) claim(t *testing.T, r run.Run) {
	t.Helper()
	c, err := f.runs.Claim(f.ctx, r.Pool, worker)
	if err != nil || c == nil {
		t.Fatalf("Claim(%q) = %v, %v; want run %s", r.Pool, c, err, r.ID)
	}
	if c.Run.ID != r.ID {
		t.Fatalf("Claim(%q) gave run %s, want %s", r.Pool, c.Run.ID, r.ID)
	}
}

func (f *fixture) phase(t *testing.T, runID string, to ...string) {
	t.Helper()
	for _, s := range to {
		if _, err := f.runs.Phase(f.ctx, runID, worker, s, "", ""); err != nil {
			t.Fatalf("Phase(%s): %v", s, err)
		}
	}
}

// end drives a READY run through the worker API to FINISHED (ok) or
// FAILED.
func (f *fixture) end(t *testing.T, r run.Run, ok bool) run.Run {
	t.Helper()
	f.claim(t, r)
	if !ok {
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "boom"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		return f.wantState(t, r.ID, run.Failed)
	}
	if r.Type == run.Task {
		f.phase(t, r.ID, run.Initializing, run.Performing)
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, true, ""); err != nil {
			t.Fatalf("Finish: %v", err)
		}
	} else {
		f.phase(t, r.ID, run.Initializing, run.Planning)
		if _, _, err := f.runs.Planned(f.ctx, r.ID, worker, false, run.Delta{}, false); err != nil {
			t.Fatalf("Planned: %v", err)
		}
	}
	return f.wantState(t, r.ID, run.Finished)
}

// ended creates a tracked run on st and drives it to FINISHED or FAILED.
func (f *fixture) ended(t *testing.T, st stack.Stack, ok bool) run.Run {
	t.Helper()
	return f.end(t, f.create(t, st.ID, run.Tracked), ok)
}

func (f *fixture) get(t *testing.T, runID string) run.Run {
	t.Helper()
	r, err := f.runs.Get(f.ctx, runID)
	if err != nil {
		t.Fatalf("Get(%s): %v", runID, err)
	}
	return r
}

func (f *fixture) wantState(t *testing.T, runID, state string) run.Run {
	t.Helper()
	r := f.get(t, runID)
	if r.State != state {
		t.Fatalf("run %s is %s, want %s (reason %q)", runID, r.State, state, r.Reason)
	}
	return r
}

// runsOf lists the runs of a stack, oldest first; drift only if drift.
func (f *fixture) runsOf(t *testing.T, stackID string, driftOnly bool) []run.Run {
	t.Helper()
	list, _, err := f.runs.List(f.ctx, run.Filter{Stack: stackID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []run.Run
	for i := len(list) - 1; i >= 0; i-- {
		if !driftOnly || list[i].Drift {
			out = append(out, list[i])
		}
	}
	return out
}

func (f *fixture) schedule(t *testing.T, sc Schedule) Schedule {
	t.Helper()
	got, err := f.svc.Get(f.ctx, sc.StackID, sc.ID)
	if err != nil {
		t.Fatalf("Get schedule %s: %v", sc.ID, err)
	}
	return got
}

func (f *fixture) setDrift(t *testing.T, stackID string, in DriftSettings) Schedule {
	t.Helper()
	if in.Crons == nil {
		in.Crons = []string{"0 * * * *"}
	}
	sc, err := f.svc.SetDrift(f.ctx, stackID, "alice", in)
	if err != nil {
		t.Fatalf("SetDrift: %v", err)
	}
	return sc
}

func (f *fixture) add(t *testing.T, stackID string, in NewSchedule) Schedule {
	t.Helper()
	sc, err := f.svc.Add(f.ctx, stackID, "alice", in)
	if err != nil {
		t.Fatalf("Add %s schedule: %v", in.Kind, err)
	}
	return sc
}

func (f *fixture) tick(t *testing.T, now time.Time) int {
	t.Helper()
	n, err := f.sch.Tick(f.ctx, now)
	if err != nil {
		t.Fatalf("Tick(%s): %v", now, err)
	}
	return n
}

// latest is the latest NextRunAt of schedules: a time at which all are due.
func latest(scs ...Schedule) time.Time {
	var t time.Time
	for _, sc := range scs {
		if sc.NextRunAt.After(t) {
			t = sc.NextRunAt
		}
	}
	return t
}

func (f *fixture) stackExists(t *testing.T, stackID string) bool {
	t.Helper()
	_, err := f.stacks.Get(f.ctx, stackID)
	if errs.Is(err, errs.NotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func TestTickQueuesOneDriftRunPerDueTime(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "-")
		f.ended(t, st, true)
		before := time.Now()
		sc := f.setDrift(t, st.ID, DriftSettings{})
		due := sc.NextRunAt
		if !sc.NextDue.Equal(due) || due.Before(before) || due.Sub(before) > time.Hour || due.Minute() != 0 || due.Second() != 0 || due.Nanosecond() != 0 {
			t.Fatalf("new schedule due at %s, runs at %s; want the next full hour after %s, no jitter", sc.NextDue, due, before)
		}

		if n := f.tick(t, due.Add(-time.Nanosecond)); n != 0 || len(f.runsOf(t, st.ID, true)) != 0 {
			t.Fatalf("a tick before the due time fired %d schedules", n)
		}
		if n := f.tick(t, due); n != 1 {
			t.Fatalf("Tick at the due time fired %d schedules, want 1", n)
		}
		drift := f.runsOf(t, st.ID, true)
		if len(drift) != 1 {
			t.Fatalf("%d drift runs, want 1", len(drift))
		}
		r := drift[0]
		if r.Type != run.Proposed || !r.Drift || r.TriggeredBy != TriggerDrift || r.Blocking || r.State != run.Ready {
			t.Fatalf("drift run = %s %s drift=%v blocking=%v triggered by %q; want a READY PROPOSED drift run by %s",
				r.Type, r.State, r.Drift, r.Blocking, r.TriggeredBy, TriggerDrift)
		}
		sc = f.schedule(t, sc)
		if sc.LastRunID != r.ID || !sc.LastDue.Equal(due) || !sc.NextDue.Equal(due.Add(time.Hour)) || !sc.NextRunAt.Equal(sc.NextDue) ||
			sc.LastNote != "" || sc.Status != StatusActive {
			t.Fatalf("after firing: last run %s, last due %s, next due %s, next run %s, note %q, status %s",
				sc.LastRunID, sc.LastDue, sc.NextDue, sc.NextRunAt, sc.LastNote, sc.Status)
		}

		// The same now again, and later within the hour: nothing.
		for _, now := range []time.Time{due, due, due.Add(30 * time.Minute), due.Add(time.Hour - time.Nanosecond)} {
			if n := f.tick(t, now); n != 0 {
				t.Fatalf("Tick(%s) fired %d schedules again", now, n)
			}
		}
		if n := len(f.runsOf(t, st.ID, true)); n != 1 {
			t.Fatalf("%d drift runs after ticking again, want 1", n)
		}

		// The next due time while that run has not ended: skipped, noted,
		// moved on.
		f.tick(t, due.Add(time.Hour))
		if n := len(f.runsOf(t, st.ID, true)); n != 1 {
			t.Fatalf("%d drift runs while the first has not ended, want 1", n)
		}
		sc = f.schedule(t, sc)
		if !strings.Contains(sc.LastNote, r.ID) || !strings.Contains(sc.LastNote, "has not ended") || !sc.NextDue.Equal(due.Add(2*time.Hour)) {
			t.Fatalf("note %q, next due %s; want a note naming %s and the next hour", sc.LastNote, sc.NextDue, r.ID)
		}

		// Once it ended, the next due time queues the next one.
		f.end(t, r, true)
		f.tick(t, due.Add(2*time.Hour))
		drift = f.runsOf(t, st.ID, true)
		if len(drift) != 2 || drift[1].ID == r.ID {
			t.Fatalf("%d drift runs after the first ended, want 2", len(drift))
		}
		if sc = f.schedule(t, sc); sc.LastNote != "" || sc.LastRunID != drift[1].ID {
			t.Fatalf("note %q, last run %s; want no note and %s", sc.LastNote, sc.LastRunID, drift[1].ID)
		}
	})
}

func TestTickRunsMissedDueTimesOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "-")
		f.ended(t, st, true)
		sc := f.setDrift(t, st.ID, DriftSettings{Crons: []string{"*/10 * * * *"}})
		due := sc.NextDue
		// The scheduler was down for five hours: 30 due times passed.
		now := due.Add(5*time.Hour + 3*time.Minute)
		if n := f.tick(t, now); n != 1 {
			t.Fatalf("Tick fired %d, want 1", n)
		}
		if n := len(f.runsOf(t, st.ID, true)); n != 1 {
			t.Fatalf("%d drift runs after 30 missed due times, want 1", n)
		}
		sc = f.schedule(t, sc)
		if want := now.Truncate(10 * time.Minute).Add(10 * time.Minute); !sc.NextDue.Equal(want) || !sc.LastDue.Equal(due) {
			t.Fatalf("next due %s, last due %s; want %s and %s", sc.NextDue, sc.LastDue, want, due)
		}
		for _, later := range []time.Time{now, now.Add(time.Minute), sc.NextDue.Add(-time.Nanosecond)} {
			if n := f.tick(t, later); n != 0 {
				t.Fatalf("Tick(%s) fired %d", later, n)
			}
		}
		if n := len(f.runsOf(t, st.ID, true)); n != 1 {
			t.Fatalf("%d drift runs, want 1", n)
		}
	})
}

func TestTickDriftNeedsAFinishedStack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		type tc struct {
			name        string
			runs        []bool // tracked runs, in order: true FINISHED, false FAILED
			ignoreState bool
			queued      bool
			note        string
		}
		cases := []tc{
			{"finished", []bool{true}, false, true, ""},
			{"failed", []bool{false}, false, false, "is FAILED, not FINISHED"},
			{"finished then failed", []bool{true, false}, false, false, "is FAILED"},
			{"failed then finished", []bool{false, true}, false, true, ""},
			{"never ran", nil, false, false, "no finished tracked run"},
			{"failed, ignore state", []bool{false}, true, true, ""},
			{"never ran, ignore state", nil, true, true, ""},
		}
		scs := make([]Schedule, len(cases))
		stacks := make([]stack.Stack, len(cases))
		for i, c := range cases {
			stacks[i] = f.stack(t, "-")
			for _, ok := range c.runs {
				f.ended(t, stacks[i], ok)
			}
			scs[i] = f.setDrift(t, stacks[i].ID, DriftSettings{IgnoreState: c.ignoreState})
		}
		now := latest(scs...)
		f.tick(t, now)
		for i, c := range cases {
			drift := f.runsOf(t, stacks[i].ID, true)
			sc := f.schedule(t, scs[i])
			if (len(drift) == 1) != c.queued || len(drift) > 1 {
				t.Errorf("%s: %d drift runs, want queued=%v (note %q)", c.name, len(drift), c.queued, sc.LastNote)
			}
			if c.note == "" && sc.LastNote != "" || !strings.Contains(sc.LastNote, c.note) {
				t.Errorf("%s: note %q, want %q", c.name, sc.LastNote, c.note)
			}
			if !c.queued && (!sc.NextDue.After(now) || sc.LastRunID != "") {
				t.Errorf("%s: skipped schedule has next due %s, last run %q; want moved after %s, none", c.name, sc.NextDue, sc.LastRunID, now)
			}
		}
		// The failed stack finishes a run: the next due time queues, and
		// the note is cleared.
		f.ended(t, stacks[1], true)
		sc := f.schedule(t, scs[1])
		f.tick(t, sc.NextRunAt)
		if drift := f.runsOf(t, stacks[1].ID, true); len(drift) != 1 {
			t.Fatalf("%d drift runs after a finished run, want 1", len(drift))
		}
		if sc = f.schedule(t, sc); sc.LastNote != "" {
			t.Fatalf("note %q kept after a run was queued", sc.LastNote)
		}
	})
}

func TestTickDriftRunLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.pool(t, "limited", 2)
		f.pool(t, "unlimited", 0)
		f.sch.BuiltinDriftRunLimit = 2
		groups := map[string][]Schedule{}
		var all []Schedule
		for _, pool := range []string{"limited", "", "unlimited"} {
			for range 5 {
				st := f.stack(t, pool)
				sc := f.setDrift(t, st.ID, DriftSettings{IgnoreState: true})
				groups[pool] = append(groups[pool], sc)
				all = append(all, sc)
			}
		}
		// A drift run in progress in another pool does not count.
		other := f.stack(t, "-")
		f.setDrift(t, other.ID, DriftSettings{IgnoreState: true})
		now := latest(all...)
		f.tick(t, now)
		for pool, want := range map[string]struct {
			runs int
			note string
		}{
			"limited":   {2, "limited already has 2 drift detection runs in progress (its drift run limit is 2)"},
			"":          {2, "the built-in pool already has 2 drift detection runs in progress (its drift run limit is 2)"},
			"unlimited": {5, ""},
		} {
			runs, notes := 0, 0
			for _, sc := range groups[pool] {
				runs += len(f.runsOf(t, sc.StackID, true))
				sc = f.schedule(t, sc)
				if sc.LastNote != "" {
					notes++
					if !strings.Contains(sc.LastNote, want.note) {
						t.Errorf("pool %q: note %q, want %q", pool, sc.LastNote, want.note)
					}
				}
				if !sc.NextDue.After(now) {
					t.Errorf("pool %q: schedule %s not moved on (next due %s)", pool, sc.ID, sc.NextDue)
				}
			}
			if runs != want.runs || notes != 5-want.runs {
				t.Errorf("pool %q: %d drift runs and %d notes, want %d and %d", pool, runs, notes, want.runs, 5-want.runs)
			}
		}
		if n := len(f.runsOf(t, other.ID, true)); n != 1 {
			t.Errorf("stack of another pool: %d drift runs, want 1", n)
		}
	})
}

func TestTickScheduledRunAndTask(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "-")
		rs := f.add(t, st.ID, NewSchedule{Kind: KindRun, Crons: []string{"0 * * * *"}})
		ts := f.add(t, st.ID, NewSchedule{Kind: KindTask, Crons: []string{"*/30 * * * *"}, Command: "tofu state list", Timezone: "Europe/Berlin"})
		now := latest(rs, ts)
		if n := f.tick(t, now); n != 2 {
			t.Fatalf("Tick fired %d, want 2", n)
		}
		runs := f.runsOf(t, st.ID, false)
		if len(runs) != 2 {
			t.Fatalf("%d runs, want 2", len(runs))
		}
		byType := map[string]run.Run{}
		for _, r := range runs {
			byType[r.Type] = r
		}
		if r := byType[run.Tracked]; r.TriggeredBy != TriggerRun || r.Drift || f.schedule(t, rs).LastRunID != r.ID {
			t.Errorf("tracked run %+v, want one by %s recorded on its schedule", r, TriggerRun)
		}
		if r := byType[run.Task]; r.TriggeredBy != TriggerTask || r.Command != "tofu state list" || f.schedule(t, ts).LastRunID != r.ID {
			t.Errorf("task run %+v, want one by %s running the command", r, TriggerTask)
		}
		if n := f.tick(t, now); n != 0 || len(f.runsOf(t, st.ID, false)) != 2 {
			t.Fatalf("ticking again at the same time fired %d", n)
		}
		// Scheduled runs are queued whatever the stack's state (the tracked
		// one holds the stack; the next is queued behind it).
		rs = f.schedule(t, rs)
		f.tick(t, rs.NextRunAt)
		if runs := f.runsOf(t, st.ID, false); len(runs) < 3 || runs[len(runs)-1].State != run.Queued {
			t.Fatalf("the next scheduled run: %d runs, want a QUEUED one behind the first", len(runs))
		}
	})
}

// A schedule whose next due time is more than five years away (cron does
// not look further) ends after its last run, saying why, instead of
// showing no due time while it claims to be active.
func TestTickEndsAScheduleWithNoFurtherDueTime(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "-")
		// 29 February: in 2096, then not before 2104 (2100 is no leap year).
		sc := f.add(t, st.ID, NewSchedule{Kind: KindTask, Crons: []string{"0 0 29 2 *"}, Command: "true"})
		sc.NextRunAt = time.Date(2096, 2, 29, 0, 0, 0, 0, time.UTC)
		if _, err := d.Exec(f.ctx, `UPDATE schedules SET next_due = $2, next_run_at = $2 WHERE id = $1`, sc.ID, sc.NextRunAt.UnixNano()); err != nil {
			t.Fatal(err)
		}
		if n := f.tick(t, sc.NextRunAt); n != 1 {
			t.Fatalf("Tick fired %d, want 1", n)
		}
		got := f.schedule(t, sc)
		if got.Status != StatusDone || !got.NextRunAt.IsZero() || !strings.Contains(got.LastNote, "no date in the next five years") {
			t.Errorf("schedule %+v, want done with no next run and a note saying why", got)
		}
		if n := f.tick(t, sc.NextRunAt.Add(time.Hour)); n != 0 || len(f.runsOf(t, st.ID, false)) != 1 {
			t.Errorf("an ended schedule fired again")
		}
	})
}

func TestAddRefuses(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "-")
		at := time.Now().Add(time.Hour)
		for _, tc := range []struct {
			name    string
			stackID string
			in      NewSchedule
			kind    errs.Kind
		}{
			{"task without a command", st.ID, NewSchedule{Kind: KindTask, Crons: []string{"@daily"}}, errs.Invalid},
			{"run with a command", st.ID, NewSchedule{Kind: KindRun, Crons: []string{"@daily"}, Command: "ls"}, errs.Invalid},
			{"drift through Add", st.ID, NewSchedule{Kind: KindDrift, Crons: []string{"@daily"}}, errs.Invalid},
			{"bad cron", st.ID, NewSchedule{Kind: KindRun, Crons: []string{"@every 1m"}}, errs.Invalid},
			{"bad time zone", st.ID, NewSchedule{Kind: KindRun, Crons: []string{"@daily"}, Timezone: "Nowhere/Land"}, errs.Invalid},
			{"delete without a time", st.ID, NewSchedule{Kind: KindDelete}, errs.Invalid},
			{"delete with crons", st.ID, NewSchedule{Kind: KindDelete, At: at, Crons: []string{"@daily"}}, errs.Invalid},
			{"unknown stack", "nope", NewSchedule{Kind: KindRun, Crons: []string{"@daily"}}, errs.NotFound},
		} {
			if _, err := f.svc.Add(f.ctx, tc.stackID, "alice", tc.in); !errs.Is(err, tc.kind) {
				t.Errorf("%s: error %v, want kind %s", tc.name, err, tc.kind)
			}
		}
		f.add(t, st.ID, NewSchedule{Kind: KindDelete, At: at})
		if _, err := f.svc.Add(f.ctx, st.ID, "alice", NewSchedule{Kind: KindDelete, At: at}); !errs.Is(err, errs.Conflict) {
			t.Errorf("a second scheduled delete: error %v, want a conflict", err)
		}
		if _, err := f.svc.SetDrift(f.ctx, st.ID, "alice", DriftSettings{Crons: []string{"CRON_TZ=UTC 0 * * * *"}}); !errs.Is(err, errs.Invalid) {
			t.Errorf("SetDrift with CRON_TZ: error %v, want invalid", err)
		}
		if list, err := f.svc.List(f.ctx, st.ID); err != nil || len(list) != 1 {
			t.Errorf("schedules after refusals: %d, %v; want only the delete", len(list), err)
		}
	})
}

func TestTickSpreadsByJitter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.svc.Jitter = 5 * time.Minute
		var scs []Schedule
		for range 40 {
			st := f.stack(t, "-")
			scs = append(scs, f.setDrift(t, st.ID, DriftSettings{IgnoreState: true}))
		}
		due := scs[0].NextDue
		for _, sc := range scs {
			if !sc.NextDue.Equal(due) {
				t.Skip("the schedules were made across an hour boundary")
			}
			if j := sc.NextRunAt.Sub(sc.NextDue); j < 0 || j >= 5*time.Minute {
				t.Fatalf("schedule %s runs %s after its due time, want within 5m", sc.ID, j)
			}
		}
		mid := due.Add(150 * time.Second)
		f.tick(t, mid)
		for _, sc := range scs {
			queued := len(f.runsOf(t, sc.StackID, true)) == 1
			if queued != !sc.NextRunAt.After(mid) {
				t.Errorf("schedule running at +%s: queued=%v at +150s", sc.NextRunAt.Sub(due), queued)
			}
		}
		f.tick(t, due.Add(5*time.Minute))
		moved := 0
		for _, sc := range scs {
			if len(f.runsOf(t, sc.StackID, true)) != 1 {
				t.Errorf("stack %s: no drift run once the window passed", sc.StackID)
			}
			next := f.schedule(t, sc)
			if j := next.NextRunAt.Sub(next.NextDue); !next.NextDue.Equal(due.Add(time.Hour)) || j < 0 || j >= 5*time.Minute {
				t.Errorf("moved on to due %s, run at +%s", next.NextDue, j)
			}
			if next.NextRunAt.Sub(next.NextDue) != sc.NextRunAt.Sub(sc.NextDue) {
				moved++
			}
		}
		if moved < 35 {
			t.Errorf("only %d of 40 schedules got another offset at the next due time", moved)
		}
	})
}

// replicas returns schedulers for concurrent ticks: on SQLite two
// schedulers on one database; on PostgreSQL two schedulers each on its own
// database handle on the same URL, as two server replicas.
func replicas(t *testing.T, dialect string) (*fixture, []*Scheduler) {
	t.Helper()
	if dialect == "sqlite" {
		f := newFixture(t, dbtest.SQLite(t))
		return f, []*Scheduler{f.sch, f.svc.NewScheduler(f.runs, f.stacks, nil)}
	}
	url := dbtest.PostgresURL(t)
	var first *fixture
	var out []*Scheduler
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		d, err := db.Open(ctx, url, "", nil)
		cancel()
		if err != nil {
			t.Fatalf("open replica %d: %v", i, err)
		}
		t.Cleanup(func() { d.Close() })
		f := newFixture(t, d)
		if first == nil {
			first = f
		}
		out = append(out, f.sch)
	}
	return first, out
}

func TestTickConcurrentSchedulersQueueOnce(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			f, schedulers := replicas(t, dialect)
			var scs []Schedule
			for range 30 {
				st := f.stack(t, "-")
				scs = append(scs, f.setDrift(t, st.ID, DriftSettings{IgnoreState: true}))
			}
			for range 10 {
				st := f.stack(t, "-")
				scs = append(scs, f.add(t, st.ID, NewSchedule{Kind: KindTask, Crons: []string{"0 * * * *"}, Command: "tofu state list"}))
			}
			now := latest(scs...)
			for _, sch := range schedulers {
				sch.Batch = 7 // several batches per tick
			}
			var wg sync.WaitGroup
			errc := make(chan error, 100)
			for _, sch := range schedulers {
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range 8 {
							if _, err := sch.Tick(context.Background(), now); err != nil {
								errc <- err
								return
							}
						}
					}()
				}
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Errorf("Tick: %v", err)
			}
			for _, sc := range scs {
				if n := len(f.runsOf(t, sc.StackID, false)); n != 1 {
					t.Errorf("stack %s (%s schedule): %d runs, want 1", sc.StackID, sc.Kind, n)
				}
				if got := f.schedule(t, sc); !got.NextDue.After(now) || got.LastRunID == "" {
					t.Errorf("schedule %s: next due %s, last run %q", sc.ID, got.NextDue, got.LastRunID)
				}
			}
			if dialect == "postgres" {
				// One replica leads at a time.
				a, b := schedulers[0].leader, schedulers[1].leader
				if !a.Hold(f.ctx) || b.Hold(f.ctx) {
					t.Error("both replicas, or neither, hold the lead")
				}
				a.Release()
				if !b.Hold(f.ctx) {
					t.Error("the other replica could not take the released lead")
				}
				b.Release()
			}
		})
	}
}

// ensurePool makes the row of worker pool id in space spaceID ("" for
// root) unless it exists: a stack names only a pool that exists.
func ensurePool(t *testing.T, d *db.DB, id, spaceID string) {
	t.Helper()
	if id == "" {
		return
	}
	if spaceID == "" {
		spaceID = "root"
	}
	if _, err := d.Exec(context.Background(), `INSERT INTO worker_pools (id, name, space_id, token_hash, created_at, updated_at)
		VALUES ($1, $1, $2, '', 1, 1) ON CONFLICT (id) DO NOTHING`, id, spaceID); err != nil {
		t.Fatalf("pool %s: %v", id, err)
	}
}
