package run_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestCreateRefused(t *testing.T) {
	tests := []struct {
		name string
		in   run.New
		kind errs.Kind
	}{
		{"unknown type", run.New{Type: "APPLY"}, errs.Invalid},
		{"lower-case type", run.New{Type: "tracked"}, errs.Invalid},
		{"command on a tracked run", run.New{Type: run.Tracked, Command: "ls"}, errs.Invalid},
		{"command on a proposed run", run.New{Type: run.Proposed, Command: "ls"}, errs.Invalid},
		{"task without command", run.New{Type: run.Task}, errs.Invalid},
		{"task with blank command", run.New{Type: run.Task, Command: " \t"}, errs.Invalid},
		{"task command too long", run.New{Type: run.Task, Command: strings.Repeat("x", 8193)}, errs.Invalid},
		{"missing stack", run.New{StackID: "missing"}, errs.NotFound},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.in.StackID == "" {
					tt.in.StackID = st.ID
				}
				_, err := f.runs.Create(f.ctx, tt.in)
				wantKind(t, err, tt.kind)
			})
		}
		list, _, err := f.runs.List(f.ctx, run.Filter{Limit: 10})
		if err != nil || len(list) != 0 {
			t.Fatalf("refused creations left runs: %d %v", len(list), err)
		}
	})
}

func TestCreateQueues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, func(s *stack.Stack) { s.Space = "root" })
		first := f.create(t, st.ID, "") // default type
		if first.Type != run.Tracked || !first.Blocking || first.State != run.Ready {
			t.Fatalf("first run = %s %s blocking=%v, want a blocking TRACKED run READY", first.Type, first.State, first.Blocking)
		}
		if first.StackID != st.ID || first.SpaceID != "root" || first.Pool != "" || first.TriggeredBy != "alice" {
			t.Fatalf("first run = %+v", first)
		}
		second := f.create(t, st.ID, run.Tracked)
		task := f.create(t, st.ID, run.Task)
		destroy := f.create(t, st.ID, run.Destroy)
		proposed := f.create(t, st.ID, run.Proposed)
		for _, r := range []run.Run{second, task, destroy} {
			if r.State != run.Queued || !r.Blocking {
				t.Errorf("%s run behind a READY run is %s blocking=%v, want QUEUED and blocking", r.Type, r.State, r.Blocking)
			}
		}
		if proposed.State != run.Ready || proposed.Blocking {
			t.Errorf("proposed run while the stack is held is %s blocking=%v, want READY, not blocking", proposed.State, proposed.Blocking)
		}
		if task.Command != "tofu state list" {
			t.Errorf("task command = %q", task.Command)
		}

		// Ending the first lets the next blocking runs go one at a time, in order.
		for _, next := range []run.Run{second, task, destroy} {
			cur := f.get(t, first.ID)
			if _, err := f.runs.Cancel(f.ctx, cur.ID, "bob"); err != nil {
				t.Fatalf("cancel %s: %v", cur.ID, err)
			}
			f.wantState(t, next.ID, run.Ready)
			first = next
		}
		f.wantState(t, proposed.ID, run.Ready)
	})
}

func TestClaimOrder(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		pool := func(s *stack.Stack) { s.WorkerPool = "p" }
		a, b := f.stack(t, pool), f.stack(t, pool)
		pa := f.create(t, a.ID, run.Proposed)
		ta := f.create(t, a.ID, run.Tracked)
		pb := f.create(t, b.ID, run.Proposed)
		tb := f.create(t, b.ID, run.Task)
		qa := f.create(t, a.ID, run.Tracked) // QUEUED behind ta: not claimable

		want := []struct {
			id, kind, state string
		}{
			{ta.ID, run.KindPlan, run.Preparing},
			{tb.ID, run.KindTask, run.Preparing},
			{pa.ID, run.KindPlan, run.Preparing},
			{pb.ID, run.KindPlan, run.Preparing},
		}
		for i, w := range want {
			c := f.claim(t, "p", worker)
			if c.Run.ID != w.id || c.Kind != w.kind || c.Run.State != w.state || c.Run.WorkerID != worker {
				t.Fatalf("claim %d = %s kind %s state %s worker %q, want %s kind %s state %s", i, c.Run.ID, c.Kind, c.Run.State, c.Run.WorkerID, w.id, w.kind, w.state)
			}
			if !strings.HasPrefix(c.Token, "gjt_"+w.id+"_") {
				t.Fatalf("token %q does not name run %s", c.Token, w.id)
			}
			f.wantState(t, w.id, run.Preparing)
		}
		if c, err := f.runs.Claim(f.ctx, "p", worker); err != nil || c != nil {
			t.Fatalf("Claim with nothing claimable = %+v, %v; want nil, nil", c, err)
		}
		f.wantState(t, qa.ID, run.Queued)
	})
}

// A drained worker claims nothing; the pool's other workers still do.
func TestClaimDrainedWorker(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, w := range []struct {
			id      string
			drained bool
		}{{"wkr-drained", true}, {"wkr-ok", false}} {
			if _, err := d.Exec(f.ctx, `INSERT INTO workers (id, pool_id, name, token_hash, registered_at, last_seen_at, drained) VALUES ($1, '', $1, $1, 1, 1, $2)`, w.id, w.drained); err != nil {
				t.Fatal(err)
			}
		}
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		if c, err := f.runs.Claim(f.ctx, "", "wkr-drained"); err != nil || c != nil {
			t.Fatalf("a drained worker claimed %+v (%v)", c, err)
		}
		if c := f.claim(t, "", "wkr-ok"); c.Run.ID != r.ID {
			t.Fatalf("claimed %s, want %s", c.Run.ID, r.ID)
		}
	})
}

func TestClaimPool(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		if c, err := f.runs.Claim(f.ctx, "", worker); err != nil || c != nil {
			t.Fatalf("Claim on an empty store = %+v, %v", c, err)
		}
		builtin := f.stack(t, nil)
		gpu := f.stack(t, func(s *stack.Stack) { s.WorkerPool = "gpu" })
		rg := f.create(t, gpu.ID, run.Tracked)
		rb := f.create(t, builtin.ID, run.Tracked)

		if c, err := f.runs.Claim(f.ctx, "other", worker); err != nil || c != nil {
			t.Fatalf("Claim(other) = %+v, %v; want nothing", c, err)
		}
		if c := f.claim(t, "", worker); c.Run.ID != rb.ID {
			t.Fatalf("built-in pool claimed %s, want %s", c.Run.ID, rb.ID)
		}
		if c, _ := f.runs.Claim(f.ctx, "", worker); c != nil {
			t.Fatalf("built-in pool claimed %s of pool gpu", c.Run.ID)
		}
		if c := f.claim(t, "gpu", worker); c.Run.ID != rg.ID || c.Run.Pool != "gpu" {
			t.Fatalf("gpu pool claimed %s (pool %q), want %s", c.Run.ID, c.Run.Pool, rg.ID)
		}
	})
}

func TestPlanOutcomes(t *testing.T) {
	tests := []struct {
		name       string
		typ        string
		changes    bool
		autodeploy bool
		wantNext   string
		wantState  string
		wantReason string
	}{
		{"tracked without changes", run.Tracked, false, false, run.NextDone, run.Finished, "no changes"},
		{"autodeploy without changes", run.Tracked, false, true, run.NextDone, run.Finished, "no changes"},
		{"proposed with changes", run.Proposed, true, false, run.NextDone, run.Finished, "proposed run planned"},
		{"proposed on an autodeploy stack", run.Proposed, true, true, run.NextDone, run.Finished, "proposed run planned"},
		{"tracked autodeploy", run.Tracked, true, true, run.NextApply, run.Applying, ""},
		{"destroy autodeploy", run.Destroy, true, true, run.NextApply, run.Applying, ""},
		{"tracked needs confirmation", run.Tracked, true, false, run.NextSave, run.Planning, ""},
		{"destroy needs confirmation", run.Destroy, true, false, run.NextSave, run.Planning, ""},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				st := f.isolated(t, tt.autodeploy)
				r := f.create(t, st.ID, tt.typ)
				c := f.claim(t, st.WorkerPool, worker)
				if c.Run.ID != r.ID || c.Kind != run.KindPlan {
					t.Fatalf("claimed %s kind %s", c.Run.ID, c.Kind)
				}
				// Queued behind a blocking run; READY at once behind a proposed one.
				next := f.create(t, st.ID, run.Tracked)
				f.phase(t, r.ID, run.Initializing)
				if _, err := f.runs.Phase(f.ctx, r.ID, worker, run.Planning, "abc123", "fix the VPC"); err != nil {
					t.Fatalf("Phase: %v", err)
				}
				d := run.Delta{Add: 2, Change: 1, Destroy: 3}
				gotNext, got, err := f.runs.Planned(f.ctx, r.ID, worker, tt.changes, d, tt.autodeploy)
				if err != nil {
					t.Fatalf("Planned: %v", err)
				}
				if gotNext != tt.wantNext || got.State != tt.wantState {
					t.Fatalf("Planned = %q, %s; want %q, %s", gotNext, got.State, tt.wantNext, tt.wantState)
				}
				stored := f.wantState(t, r.ID, tt.wantState)
				if !stored.HasDelta || stored.Delta != d || stored.HasChanges != tt.changes {
					t.Errorf("delta = %v %+v changes %v", stored.HasDelta, stored.Delta, stored.HasChanges)
				}
				if stored.CommitSHA != "abc123" || stored.CommitMessage != "fix the VPC" {
					t.Errorf("commit = %q %q", stored.CommitSHA, stored.CommitMessage)
				}
				if tt.wantReason != "" && stored.Reason != tt.wantReason {
					t.Errorf("reason = %q, want %q", stored.Reason, tt.wantReason)
				}

				switch {
				case tt.typ == run.Proposed:
					f.wantState(t, next.ID, run.Ready)
				case tt.wantNext == run.NextApply:
					tr, _ := f.runs.Transitions(f.ctx, r.ID)
					if n := len(tr); n < 2 || tr[n-2].To != run.Confirmed || tr[n-1].To != run.Applying || tr[n-2].Actor != "gantry" || tr[n-1].Actor != "worker:"+worker {
						t.Fatalf("autodeploy transitions end with %+v, want CONFIRMED by gantry then APPLYING by the worker", tr)
					}
					if b, _ := f.runs.Heartbeat(f.ctx, r.ID, worker); b.Stop {
						t.Fatalf("heartbeat of an applying run says stop")
					}
					f.wantState(t, next.ID, run.Queued)
					if _, err := f.runs.Finish(f.ctx, r.ID, worker, true, "applied"); err != nil {
						t.Fatalf("Finish: %v", err)
					}
					f.wantState(t, r.ID, run.Finished)
					f.wantState(t, next.ID, run.Ready)
				case tt.wantNext == run.NextSave:
					if b, _ := f.runs.Heartbeat(f.ctx, r.ID, worker); b.Stop {
						t.Fatalf("heartbeat of a planned run waiting to be saved says stop")
					}
					f.wantState(t, next.ID, run.Queued)
				default: // a blocking run that ended lets the next one go
					f.wantState(t, next.ID, run.Ready)
				}
			})
		}
	})
}

func TestSaveConfirmApply(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.isolated(t, false)
		other := f.stack(t, func(s *stack.Stack) { s.WorkerPool = st.WorkerPool })
		r := f.create(t, st.ID, run.Tracked)
		queued := f.create(t, st.ID, run.Tracked)
		c := f.claim(t, st.WorkerPool, worker)
		f.phase(t, r.ID, run.Initializing)
		f.phase(t, r.ID, run.Planning)
		if next := f.planned(t, r.ID, true, false); next != run.NextSave {
			t.Fatalf("Planned = %q, want save", next)
		}

		_, err := f.runs.HandOff(f.ctx, r.ID, worker)
		wantKind(t, err, errs.Conflict)
		f.wantState(t, r.ID, run.Planning)
		if err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactPlanJSON, []byte(`{"plan":1}`)); err != nil {
			t.Fatal(err)
		}
		_, err = f.runs.HandOff(f.ctx, r.ID, worker)
		wantKind(t, err, errs.Conflict) // plan.json is not the workspace

		f.handOff(t, r.ID)
		held := f.wantState(t, r.ID, run.Unconfirmed)
		if held.WorkerID != "" {
			t.Fatalf("handed-off run still held by %q", held.WorkerID)
		}
		if b, err := f.runs.Heartbeat(f.ctx, r.ID, worker); err != nil || !b.Stop {
			t.Fatalf("heartbeat after hand-off = %+v %v, want stop", b, err)
		}
		if _, err := f.runs.Authenticate(f.ctx, c.Token, true); !errs.Is(err, errs.Unauthenticated) {
			t.Fatalf("plan job token after hand-off: %v, want Unauthenticated", err)
		}
		if c2, _ := f.runs.Claim(f.ctx, st.WorkerPool, worker); c2 != nil {
			t.Fatalf("claimed %s (%s) while the run waits for confirmation", c2.Run.ID, c2.Run.State)
		}
		f.wantState(t, queued.ID, run.Queued) // the stack stays held while UNCONFIRMED

		_, err = f.runs.Discard(f.ctx, queued.ID, "bob")
		wantKind(t, err, errs.Conflict)
		confirmed, err := f.runs.Confirm(f.ctx, r.ID, "bob")
		if err != nil || confirmed.State != run.Confirmed {
			t.Fatalf("Confirm = %s, %v", confirmed.State, err)
		}
		_, err = f.runs.Confirm(f.ctx, r.ID, "bob")
		wantKind(t, err, errs.Conflict)

		// A confirmed run waiting for its apply counts as blocking: it goes
		// before an older proposed run of the pool.
		proposed := f.create(t, other.ID, run.Proposed)
		apply := f.claim(t, st.WorkerPool, "wrk-2")
		if apply.Run.ID != r.ID || apply.Kind != run.KindApply || apply.Run.State != run.Applying || apply.Run.WorkerID != "wrk-2" {
			t.Fatalf("apply claim = %s kind %s state %s worker %s", apply.Run.ID, apply.Kind, apply.Run.State, apply.Run.WorkerID)
		}
		if apply.Token == c.Token {
			t.Fatal("the apply job reuses the plan job's token")
		}
		ws, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace)
		if err != nil || string(ws) != "workspace tarball" {
			t.Fatalf("workspace for the apply job = %q, %v", ws, err)
		}
		_, err = f.runs.Finish(f.ctx, r.ID, worker, true, "") // not the worker holding it
		wantKind(t, err, errs.Conflict)
		if _, err := f.runs.Finish(f.ctx, r.ID, "wrk-2", true, "apply succeeded"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		done := f.wantState(t, r.ID, run.Finished)
		if done.Reason != "apply succeeded" {
			t.Errorf("reason = %q", done.Reason)
		}
		if _, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace); !errs.Is(err, errs.NotFound) {
			t.Errorf("workspace artifact after the run ended: %v, want NotFound", err)
		}
		if _, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactPlanJSON); err != nil {
			t.Errorf("plan.json after the run ended: %v", err)
		}
		f.wantState(t, queued.ID, run.Ready)
		f.wantState(t, proposed.ID, run.Ready)

		type step struct{ from, to, actor, reason string }
		want := []step{
			{"", run.Queued, "alice", "triggered by alice"},
			{run.Queued, run.Ready, "gantry", "waiting for a worker"},
			{run.Ready, run.Preparing, "worker:" + worker, "claimed by worker " + worker},
			{run.Preparing, run.Initializing, "worker:" + worker, "*"},
			{run.Initializing, run.Planning, "worker:" + worker, "*"},
			{run.Planning, run.Unconfirmed, "worker:" + worker, "waiting for confirmation"},
			{run.Unconfirmed, run.Confirmed, "bob", "confirmed by bob"},
			{run.Confirmed, run.Applying, "worker:wrk-2", "apply claimed by worker wrk-2"},
			{run.Applying, run.Finished, "worker:wrk-2", "apply succeeded"},
		}
		tr, err := f.runs.Transitions(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []step
		for i, x := range tr {
			if i < len(want) && want[i].reason == "*" {
				x.Reason = "*" // a phase's reason is free text
			}
			got = append(got, step{x.From, x.To, x.Actor, x.Reason})
			if x.Seq != i+1 {
				t.Errorf("transition %d has seq %d", i, x.Seq)
			}
			if i > 0 && x.At.Before(tr[i-1].At) {
				t.Errorf("transition %d at %v is before the previous one at %v", i, x.At, tr[i-1].At)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("transitions:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestDiscard(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Unconfirmed)
		queued := f.create(t, r.StackID, run.Tracked)
		f.wantState(t, queued.ID, run.Queued)
		got, err := f.runs.Discard(f.ctx, r.ID, "carol")
		if err != nil || got.State != run.Discarded {
			t.Fatalf("Discard = %s, %v", got.State, err)
		}
		stored := f.wantState(t, r.ID, run.Discarded)
		if stored.Reason != "discarded by carol" {
			t.Errorf("reason = %q", stored.Reason)
		}
		f.wantState(t, queued.ID, run.Ready)
		if _, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace); !errs.Is(err, errs.NotFound) {
			t.Errorf("workspace artifact of a discarded run: %v, want NotFound", err)
		}
		tr, _ := f.runs.Transitions(f.ctx, r.ID)
		if last := tr[len(tr)-1]; last.From != run.Unconfirmed || last.To != run.Discarded || last.Actor != "carol" {
			t.Errorf("last transition = %+v", last)
		}
	})
}

// TestActions tries every person's action that takes effect at once on a run
// in every reachable state (stop, which involves the worker, is TestStop).
func TestActions(t *testing.T) {
	actions := []struct {
		name    string
		do      func(f *fixture, runID string) (run.Run, error)
		allowed []string
		to      string
		reason  string
	}{
		{"cancel", func(f *fixture, id string) (run.Run, error) { return f.runs.Cancel(f.ctx, id, "bob") },
			[]string{run.Queued, run.Ready}, run.Canceled, "canceled by bob"},
		{"confirm", func(f *fixture, id string) (run.Run, error) { return f.runs.Confirm(f.ctx, id, "bob") },
			[]string{run.Unconfirmed}, run.Confirmed, ""},
		{"discard", func(f *fixture, id string) (run.Run, error) { return f.runs.Discard(f.ctx, id, "bob") },
			[]string{run.Unconfirmed}, run.Discarded, "discarded by bob"},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, a := range actions {
			for _, state := range reachable {
				t.Run(a.name+" "+state, func(t *testing.T) {
					r, _ := f.runIn(t, state)
					before, _ := f.runs.Transitions(f.ctx, r.ID)
					got, err := a.do(f, r.ID)
					allowed := false
					for _, s := range a.allowed {
						allowed = allowed || s == state
					}
					if !allowed {
						wantKind(t, err, errs.Conflict)
						f.wantState(t, r.ID, state)
						if after, _ := f.runs.Transitions(f.ctx, r.ID); len(after) != len(before) {
							t.Fatalf("a refused %s recorded a transition", a.name)
						}
						return
					}
					if err != nil || got.State != a.to {
						t.Fatalf("%s from %s = %s, %v; want %s", a.name, state, got.State, err, a.to)
					}
					stored := f.wantState(t, r.ID, a.to)
					if a.reason != "" && stored.Reason != a.reason {
						t.Errorf("reason = %q, want %q", stored.Reason, a.reason)
					}
					after, _ := f.runs.Transitions(f.ctx, r.ID)
					if len(after) != len(before)+1 || after[len(after)-1].From != state || after[len(after)-1].To != a.to || after[len(after)-1].Actor != "bob" {
						t.Fatalf("transitions after %s: %+v", a.name, after)
					}
				})
			}
		}
	})
}

func TestStackStates(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		finished, _ := f.runIn(t, run.Finished)
		f.create(t, finished.StackID, run.Proposed) // not blocking: ignored
		planning, _ := f.runIn(t, run.Planning)
		held, _ := f.runIn(t, run.Ready)
		f.create(t, held.StackID, run.Tracked) // the newest blocking run is QUEUED
		onlyProposed := f.isolated(t, false)
		f.create(t, onlyProposed.ID, run.Proposed)
		idle := f.isolated(t, false)

		got, err := f.runs.StackStates(f.ctx, []string{finished.StackID, planning.StackID, held.StackID, onlyProposed.ID, idle.ID, "missing"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			finished.StackID: run.Finished, planning.StackID: run.Planning, held.StackID: run.Queued,
			onlyProposed.ID: "NONE", idle.ID: "NONE", "missing": "NONE",
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("StackStates = %v, want %v", got, want)
		}
		if got, err := f.runs.StackStates(f.ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("StackStates(nil) = %v, %v", got, err)
		}
	})
}

func TestList(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		if _, err := f.spaces.Create(f.ctx, space.Space{ID: "dev"}); err != nil {
			t.Fatal(err)
		}
		a := f.stack(t, nil)
		b := f.stack(t, func(s *stack.Stack) { s.Space = "dev" })
		var all []run.Run // in creation order
		for _, x := range []struct{ stack, typ string }{
			{a.ID, run.Tracked}, {b.ID, run.Proposed}, {a.ID, run.Tracked}, {b.ID, run.Tracked}, {a.ID, run.Proposed}, {b.ID, run.Task},
		} {
			all = append(all, f.create(t, x.stack, x.typ))
		}
		newest := func(keep func(r run.Run) bool) []string {
			out := []string{}
			for i := len(all) - 1; i >= 0; i-- {
				r := f.get(t, all[i].ID)
				if keep(r) {
					out = append(out, r.ID)
				}
			}
			return out
		}
		tests := []struct {
			name   string
			filter run.Filter
			keep   func(r run.Run) bool
		}{
			{"all", run.Filter{}, func(run.Run) bool { return true }},
			{"stack", run.Filter{Stack: a.ID}, func(r run.Run) bool { return r.StackID == a.ID }},
			{"space", run.Filter{Space: "dev"}, func(r run.Run) bool { return r.StackID == b.ID }},
			{"state", run.Filter{State: run.Queued}, func(r run.Run) bool { return r.State == run.Queued }},
			{"type", run.Filter{Type: run.Proposed}, func(r run.Run) bool { return r.Type == run.Proposed }},
			{"stack and state", run.Filter{Stack: b.ID, State: run.Ready}, func(r run.Run) bool { return r.StackID == b.ID && r.State == run.Ready }},
			{"nothing", run.Filter{Stack: "missing"}, func(run.Run) bool { return false }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := newest(tt.keep)
				for _, limit := range []int{1, 2, 4, 100} {
					got := []string{}
					filter := tt.filter
					filter.Limit = limit
					for page := 0; ; page++ {
						if page > len(all) {
							t.Fatalf("limit %d: too many pages", limit)
						}
						list, next, err := f.runs.List(f.ctx, filter)
						if err != nil {
							t.Fatalf("List: %v", err)
						}
						if len(list) > limit {
							t.Fatalf("limit %d: page of %d", limit, len(list))
						}
						got = append(got, runIDs(list)...)
						if next == "" {
							break
						}
						filter.Cursor = next
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("limit %d: listed %q, want %q", limit, got, want)
					}
				}
			})
		}
	})
}

// Several transitions made at once are one update and one insert: each
// step's extra columns land (each ? bound to its own argument), the
// timeline has one entry per step in order, and a past terminal state
// cannot be followed by another.
func TestTransitionsAtOnce(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r := f.create(t, f.stack(t, nil).ID, run.Proposed) // READY
		got, err := f.runs.TransitionsForTest(f.ctx, r.ID,
			run.Step{To: run.Preparing, Actor: "worker:w1", Reason: "claimed", Sets: []string{"worker_id = ?", "heartbeat_at = ?"}, Args: []any{"w1", int64(42)}},
			run.Step{To: run.Initializing, Actor: "worker:w1", Reason: "init", Sets: []string{"commit_message = ?"}, Args: []any{"the message"}})
		if err != nil {
			t.Fatal(err)
		}
		if got.State != run.Initializing {
			t.Fatalf("state %s", got.State)
		}
		r, err = f.runs.Get(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != run.Initializing || r.WorkerID != "w1" || r.CommitMessage != "the message" || r.HeartbeatAt.UnixNano() != 42 {
			t.Fatalf("run after two steps: %+v", r)
		}
		tr, err := f.runs.Transitions(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		var path []string
		for _, x := range tr {
			path = append(path, x.From+">"+x.To)
		}
		want := []string{">QUEUED", "QUEUED>READY", "READY>PREPARING", "PREPARING>INITIALIZING"}
		if !slices.Equal(path, want) {
			t.Fatalf("timeline %v, want %v", path, want)
		}
		for i := 1; i < len(tr); i++ {
			if tr[i].Seq != tr[i-1].Seq+1 {
				t.Fatalf("timeline seqs %+v", tr)
			}
		}
		// A terminal state cannot be followed by another.
		if _, err := f.runs.TransitionsForTest(f.ctx, r.ID, run.Step{To: run.Failed}, run.Step{To: run.Queued}); err == nil {
			t.Fatal("moved past a terminal state")
		}
	})
}

// What runs within a claim shares its transaction: its error undoes the
// claim (the run waits for the next one), its writes land with it.
func TestClaimWithin(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		boom := errors.New("boom")
		if cl, err := f.runs.Claim(f.ctx, "", worker, func(ctx context.Context, cl *run.Claimed) error {
			if _, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('claim-test', $1)`, cl.Run.ID); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) || cl != nil {
			t.Fatalf("Claim = %+v, %v; want the hook's error", cl, err)
		}
		if got, _ := f.runs.Get(f.ctx, r.ID); got.State != run.Ready || got.WorkerID != "" {
			t.Fatalf("after a failed hook the run is %s held by %q", got.State, got.WorkerID)
		}
		var n int
		if err := d.QueryRow(f.ctx, `SELECT COUNT(*) FROM settings WHERE name = 'claim-test'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("the hook's write outlived the undone claim: %d, %v", n, err)
		}
		cl, err := f.runs.Claim(f.ctx, "", worker, func(ctx context.Context, cl *run.Claimed) error {
			_, err := d.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('claim-test', $1)`, cl.Run.ID)
			return err
		})
		if err != nil || cl == nil || cl.Run.ID != r.ID {
			t.Fatalf("Claim = %+v, %v", cl, err)
		}
		var v string
		if err := d.QueryRow(f.ctx, `SELECT value FROM settings WHERE name = 'claim-test'`).Scan(&v); err != nil || v != r.ID {
			t.Fatalf("the hook's write: %q, %v", v, err)
		}
	})
}
