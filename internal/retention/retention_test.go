package retention_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/retention"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// retentionAge is the run retention of the tests. The pruner's clock is
// set so far ahead that every run the test makes now ended before the
// cutoff, unless the test says it ended later (recent).
const retentionAge = 30 * 24 * time.Hour

type fixture struct {
	ctx    context.Context
	d      *db.DB
	stacks *stack.Service
	runs   *run.Service
	state  *state.Service
	audit  *audit.Service
	pruner *retention.Pruner
	now    time.Time // the pruner's clock
	logs   bytes.Buffer
	n      int
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ctx: context.Background(), d: d, stacks: stack.NewService(d, box),
		state: state.NewService(d, box), audit: audit.NewService(d, nil),
		now: time.Now().Add(retentionAge + 10*24*time.Hour)}
	f.runs = run.NewService(d, events.NewHub(), box, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := space.NewService(d).EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.pruner = retention.New(d, slog.New(slog.NewTextHandler(&f.logs, nil)))
	f.pruner.Audit = f.audit.Hook()
	f.pruner.Now = func() time.Time { return f.now }
	return f
}

func (f *fixture) stack(t *testing.T) string {
	t.Helper()
	f.n++
	st, err := f.stacks.Create(f.ctx, stack.Stack{ID: fmt.Sprintf("st-%d", f.n), Repository: "https://example.com/infra.git", Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	return st.ID
}

// recent is when a recent run ended: after the pruner's cutoff.
func (f *fixture) recent() time.Time { return f.now.Add(-retentionAge + time.Hour) }

// run makes a run of typ on the stack in state, last updated at ended
// (zero: now, long before the pruner's cutoff).
func (f *fixture) run(t *testing.T, stackID, typ, st string, ended time.Time) string {
	t.Helper()
	in := run.New{StackID: stackID, Type: typ, TriggeredBy: "alice"}
	if typ == run.Task {
		in.Command = "tofu state list"
	}
	r, err := f.runs.Create(f.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if ended.IsZero() {
		ended = time.Now()
	}
	f.exec(t, `UPDATE runs SET state = $2, updated_at = $3 WHERE id = $1`, r.ID, st, ended.UnixNano())
	return r.ID
}

func (f *fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.d.Exec(f.ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (f *fixture) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := f.d.QueryRow(f.ctx, q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// children gives a run a row in every table that holds rows of runs.
func (f *fixture) children(t *testing.T, runID, stackID string) {
	t.Helper()
	now := time.Now().UnixNano()
	f.exec(t, `INSERT INTO run_logs (run_id, byte_offset, data) VALUES ($1, 0, $2)`, runID, []byte("hello\n"))
	f.exec(t, `UPDATE runs SET log_size = 6 WHERE id = $1`, runID)
	f.exec(t, `INSERT INTO run_artifacts (run_id, name, data, created_at) VALUES ($1, 'plan.json', $2, $3)`, runID, []byte("{}"), now)
	f.exec(t, `INSERT INTO policy_receipts (id, run_id, policy_id, policy_name, policy_version, type, outcome, at)
		VALUES ($1, $2, 'pol', 'pol', 1, 'PLAN', 'allow', $3)`, "rcp-"+runID, runID, now)
	f.exec(t, `INSERT INTO run_reviews (id, run_id, author, decision, run_state, created_at) VALUES ($1, $2, 'bob', 'APPROVE', 'FINISHED', $3)`,
		"rev-"+runID, runID, now)
	f.exec(t, `INSERT INTO notify_deliveries (id, kind, endpoint_id, space_id, run_id, stack_id, method, body, status, created_at, updated_at)
		VALUES ($1, 'webhook', 'ep', 'root', $2, $3, 'POST', '{}', 'DELIVERED', $4, $4)`, "dlv-"+runID, runID, stackID, now)
	f.exec(t, `INSERT INTO notify_delivery_attempts (delivery_id, n, at) VALUES ($1, 1, $2)`, "dlv-"+runID, now)
	f.exec(t, `INSERT INTO notify_inbox (id, space_id, run_id, stack_id, title, severity, created_at) VALUES ($1, 'root', $2, $3, 'hi', 'INFO', $4)`,
		"inb-"+runID, runID, stackID, now)
}

// rowsOf counts a run's rows in each table that holds rows of runs.
func (f *fixture) rowsOf(t *testing.T, runID string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"runs", "run_transitions", "run_logs", "run_artifacts", "policy_receipts", "run_reviews",
		"notify_deliveries", "notify_inbox"} {
		col := "run_id"
		if table == "runs" {
			col = "id"
		}
		out[table] = f.count(t, `SELECT COUNT(*) FROM `+table+` WHERE `+col+` = $1`, runID)
	}
	out["notify_delivery_attempts"] = f.count(t, `SELECT COUNT(*) FROM notify_delivery_attempts WHERE delivery_id = $1`, "dlv-"+runID)
	return out
}

func (f *fixture) exists(t *testing.T, runID string) bool {
	t.Helper()
	return f.count(t, `SELECT COUNT(*) FROM runs WHERE id = $1`, runID) == 1
}

// events returns the audit events of action.
func (f *fixture) events(t *testing.T, action string) []audit.Event {
	t.Helper()
	var out []audit.Event
	rows, err := f.d.Query(f.ctx, `SELECT actor, change FROM audit_events WHERE action = $1 ORDER BY seq`, action)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var ev audit.Event
		var change string
		if err := rows.Scan(&ev.Actor, &change); err != nil {
			t.Fatal(err)
		}
		ev.Change = json.RawMessage(change)
		out = append(out, ev)
	}
	return out
}

// Runs that ended before the cutoff go with every row of theirs; recent,
// unfinished and protected runs stay.
func TestPruneRuns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		pol := retention.Policy{RunAge: retentionAge}
		gone, kept := map[string]string{}, map[string]string{}

		a := f.stack(t)
		gone[f.run(t, a, run.Tracked, run.Finished, time.Time{})] = "old tracked run"
		gone[f.run(t, a, run.Proposed, run.Failed, time.Time{})] = "old proposed run"
		kept[f.run(t, a, run.Proposed, run.Planning, time.Time{})] = "a run in progress"
		kept[f.run(t, a, run.Tracked, run.Finished, time.Time{})] = "the newest tracked run"
		kept[f.run(t, a, run.Proposed, run.Finished, f.recent())] = "a recent run"
		versioned := f.run(t, a, run.Task, run.Canceled, time.Time{})
		kept[versioned] = "the run of a stored state version"
		kept[f.run(t, a, run.Task, run.Finished, time.Time{})] = "the newest task"
		notifying := f.run(t, a, run.Proposed, run.Finished, time.Time{})
		kept[notifying] = "a run with a notification to deliver"
		drifted := f.run(t, a, run.Proposed, run.Finished, time.Time{})
		kept[drifted] = "the run of the last drift check"
		locking := f.run(t, a, run.Destroy, run.Failed, time.Time{})
		kept[locking] = "the holder of the state lock"
		kept[f.run(t, a, run.Destroy, run.Failed, time.Time{})] = "the newest destroy run"
		kept[f.run(t, a, run.Proposed, run.Discarded, time.Time{})] = "the newest proposed run"
		f.exec(t, `INSERT INTO state_versions (stack_id, serial, lineage, checksum, size, data, run_id, created_by, created_at)
			VALUES ($1, 1, 'l', 'c', 2, $2, $3, 'x', 0)`, a, []byte("{}"), versioned)
		f.exec(t, `INSERT INTO notify_deliveries (id, kind, endpoint_id, space_id, run_id, method, body, status, created_at, updated_at)
			VALUES ('dlv-pending', 'webhook', 'ep', 'root', $1, 'POST', '{}', 'PENDING', 0, 0)`, notifying)
		f.exec(t, `INSERT INTO drift_checks (stack_id, last_run_id, last_checked_at, outcome) VALUES ($1, $2, 0, 'clean')`, a, drifted)
		f.exec(t, `INSERT INTO state_locks (stack_id, lock_id, info, holder_run, created_at) VALUES ($1, 'l', '{}', $2, 0)`, a, locking)

		// A stack waiting for a confirmation keeps its runs.
		b := f.stack(t)
		kept[f.run(t, b, run.Tracked, run.Finished, time.Time{})] = "an old run of a stack with an unconfirmed run"
		kept[f.run(t, b, run.Tracked, run.Finished, time.Time{})] = "the newest tracked run of a stack with an unconfirmed run"
		kept[f.run(t, b, run.Tracked, run.Unconfirmed, time.Time{})] = "an unconfirmed run"

		// The tracked commit stays, although newer tracked runs ended.
		c := f.stack(t)
		withCommit := func(st string) string {
			id := f.run(t, c, run.Tracked, st, time.Time{})
			f.exec(t, `UPDATE runs SET commit_sha = 'abc', commit_branch = 'main' WHERE id = $1`, id)
			return id
		}
		gone[withCommit(run.Finished)] = "an old tracked run with a commit"
		kept[withCommit(run.Finished)] = "the tracked commit"
		kept[f.run(t, c, run.Tracked, run.Failed, time.Time{})] = "the newest tracked run (no commit)"

		for id := range gone {
			f.children(t, id, a)
		}
		for id := range kept {
			f.children(t, id, a)
		}

		dry, err := f.pruner.DryRun(f.ctx, pol)
		if err != nil {
			t.Fatal(err)
		}
		for id, what := range gone {
			if !f.exists(t, id) {
				t.Fatalf("the dry run deleted %s", what)
			}
		}
		res, err := f.pruner.Prune(f.ctx, pol)
		if err != nil {
			t.Fatal(err)
		}
		if res.Runs != len(gone) || dry.Runs != res.Runs || dry.RunLogBytes != res.RunLogBytes {
			t.Fatalf("pruned %d runs (dry run: %d, %d bytes; pass: %d bytes), want %d", res.Runs, dry.Runs, dry.RunLogBytes, res.RunLogBytes, len(gone))
		}
		if res.ByStack[a].Runs != 2 || res.ByStack[c].Runs != 1 || res.ByStack[b].Runs != 0 {
			t.Fatalf("by stack: %+v", res.ByStack)
		}
		for id, what := range gone {
			for table, n := range f.rowsOf(t, id) {
				if n != 0 {
					t.Errorf("%s (%s): %d rows left in %s", what, id, n, table)
				}
			}
		}
		for id, what := range kept {
			if !f.exists(t, id) {
				t.Errorf("%s (%s) was deleted", what, id)
				continue
			}
			for table, n := range f.rowsOf(t, id) {
				if n == 0 && table != "run_transitions" {
					t.Errorf("%s (%s): its rows in %s were deleted", what, id, table)
				}
			}
		}
		if f.count(t, `SELECT COUNT(*) FROM state_versions`) != 1 {
			t.Fatal("a state version was deleted with runs only")
		}

		evs := f.events(t, "run.prune")
		if len(evs) != 1 || evs[0].Actor != audit.System || !strings.Contains(string(evs[0].Change), fmt.Sprintf(`"runs":%d`, len(gone))) {
			t.Fatalf("run.prune events = %+v, want one by gantry counting %d runs", evs, len(gone))
		}
		if !strings.Contains(f.logs.String(), fmt.Sprintf(`msg="pruned runs past the run retention" runs=%d log_bytes=%d`, len(gone), 6*len(gone))) {
			t.Fatalf("log: %s", f.logs.String())
		}

		// A second pass finds nothing, and records nothing.
		if res, err := f.pruner.Prune(f.ctx, pol); err != nil || res.Runs != 0 {
			t.Fatalf("second pass: %+v, %v", res, err)
		}
		if evs := f.events(t, "run.prune"); len(evs) != 1 {
			t.Fatalf("a pass that deleted nothing was audited: %d events", len(evs))
		}
	})
}

// The runs go a batch per transaction, past runs that are kept, until
// none is left.
func TestPruneBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.pruner.Batch = 2
		a, b := f.stack(t), f.stack(t)
		var gone []string
		for i := range 7 {
			gone = append(gone, f.run(t, a, run.Proposed, run.Finished, time.Time{}))
			if i%3 == 0 {
				f.run(t, b, run.Proposed, run.Planning, time.Time{}) // kept: in progress
			}
		}
		last := f.run(t, a, run.Proposed, run.Finished, time.Time{})
		res, err := f.pruner.Prune(f.ctx, retention.Policy{RunAge: retentionAge})
		if err != nil || res.Runs != len(gone) {
			t.Fatalf("Prune = %d runs, %v; want %d", res.Runs, err, len(gone))
		}
		for _, id := range gone {
			if f.exists(t, id) {
				t.Fatalf("run %s left", id)
			}
		}
		if !f.exists(t, last) || f.count(t, `SELECT COUNT(*) FROM runs WHERE stack_id = $1`, b) != 3 {
			t.Fatal("a kept run was deleted")
		}
	})
}

// Each stack keeps its newest N state versions, the current one always;
// the runs of deleted versions go at the next pass.
func TestPruneStateVersions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.pruner.StateBatchSize = 1 // one version per transaction
		a, b := f.stack(t), f.stack(t)
		var writers []string
		for serial := 1; serial <= 5; serial++ {
			id := f.run(t, a, run.Tracked, run.Finished, time.Time{})
			writers = append(writers, id)
			doc := fmt.Sprintf(`{"version":4,"serial":%d,"lineage":"l-a","resources":[]}`, serial)
			if _, err := f.state.Write(f.ctx, a, []byte(doc), "", id, "test"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.state.Write(f.ctx, b, []byte(`{"version":4,"serial":1,"lineage":"l-b","resources":[]}`), "", "", "test"); err != nil {
			t.Fatal(err)
		}
		serials := func(stackID string) []int64 {
			vs, err := f.state.Versions(f.ctx, stackID)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, v := range vs {
				out = append(out, v.Serial)
			}
			return out
		}

		pol := retention.Policy{StateVersions: 2, RunAge: retentionAge}
		dry, err := f.pruner.DryRun(f.ctx, pol)
		if err != nil || dry.StateVersions != 3 || dry.Runs != 0 {
			t.Fatalf("DryRun = %+v, %v; want 3 versions and no run (each wrote a version)", dry.Counts, err)
		}
		if got := serials(a); len(got) != 5 {
			t.Fatalf("the dry run deleted versions: %v", got)
		}
		res, err := f.pruner.Prune(f.ctx, pol)
		if err != nil || res.StateVersions != 3 || res.Runs != 0 || res.ByStack[a].StateVersions != 3 {
			t.Fatalf("Prune = %+v, %v", res, err)
		}
		if got := serials(a); !slices.Equal(got, []int64{5, 4}) {
			t.Fatalf("stack a keeps %v, want [5 4]", got)
		}
		if got := serials(b); !slices.Equal(got, []int64{1}) {
			t.Fatalf("stack b keeps %v, want [1]", got)
		}
		if evs := f.events(t, "state.prune"); len(evs) != 1 || !strings.Contains(string(evs[0].Change), `"state_versions":3`) {
			t.Fatalf("state.prune events = %+v", evs)
		}
		// The runs of the deleted versions go at the next pass (the
		// newest tracked run stays).
		res, err = f.pruner.Prune(f.ctx, retention.Policy{StateVersions: 1, RunAge: retentionAge})
		if err != nil || res.Runs != 3 || res.StateVersions != 1 {
			t.Fatalf("second pass = %+v, %v; want 3 runs and 1 version", res.Counts, err)
		}
		if got := serials(a); !slices.Equal(got, []int64{5}) {
			t.Fatalf("stack a keeps %v, want the current version only", got)
		}
		for i, id := range writers {
			if want, got := i >= 3, f.exists(t, id); got != want {
				t.Errorf("run of serial %d exists = %v, want %v", i+1, got, want)
			}
		}
	})
}

func TestPolicyCheck(t *testing.T) {
	for _, tc := range []struct {
		pol  retention.Policy
		want string
	}{
		{retention.Policy{}, ""},
		{retention.Policy{RunAge: time.Hour, StateVersions: 1}, ""},
		{retention.Policy{RunAge: time.Minute}, "--run-retention must be 0"},
		{retention.Policy{RunAge: -time.Hour}, "--run-retention must be 0"},
		{retention.Policy{StateVersions: -1}, "--state-retention-versions must be 0"},
	} {
		err := tc.pol.Check()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Check(%+v) = %v, want %q", tc.pol, err, tc.want)
		}
	}
}

// Two replicas pruning at once take turns: together they delete each run
// once, and neither fails.
func TestPruneReplicas(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		f := newFixture(t, a)
		f.pruner.Batch = 3
		st := f.stack(t)
		for range 10 {
			f.run(t, st, run.Proposed, run.Finished, time.Time{})
		}
		other := retention.New(b, nil)
		other.Batch, other.Now = 3, f.pruner.Now
		pol := retention.Policy{RunAge: retentionAge}
		var ra, rb retention.Result
		errs := dbtest.Race(
			func() (err error) { ra, err = f.pruner.Prune(f.ctx, pol); return err },
			func() (err error) { rb, err = other.Prune(f.ctx, pol); return err })
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("Prune: %v, %v", errs[0], errs[1])
		}
		if ra.Runs+rb.Runs != 9 || f.count(t, `SELECT COUNT(*) FROM runs`) != 1 {
			t.Fatalf("pruned %d + %d runs, %d left; want 9 and the newest", ra.Runs, rb.Runs, f.count(t, `SELECT COUNT(*) FROM runs`))
		}
	})
}
