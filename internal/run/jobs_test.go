package run_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
)

// TestStop: stop is allowed from PREPARING to PERFORMING; the worker learns
// it from its heartbeat; the run ends STOPPED, recorded as the person's
// doing, and the stack goes to the next run.
func TestStop(t *testing.T) {
	allowed := map[string]bool{run.Preparing: true, run.Initializing: true, run.Planning: true, run.Performing: true}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, state := range reachable {
			t.Run(state, func(t *testing.T) {
				r, c := f.runIn(t, state)
				var queued run.Run
				if !run.Terminal(state) {
					queued = f.create(t, r.StackID, run.Tracked)
				}
				before, _ := f.runs.Transitions(f.ctx, r.ID)
				if !allowed[state] {
					_, err := f.runs.Stop(f.ctx, r.ID, "bob")
					wantKind(t, err, errs.Conflict)
					f.wantState(t, r.ID, state)
					if after, _ := f.runs.Transitions(f.ctx, r.ID); len(after) != len(before) {
						t.Fatalf("a refused stop recorded a transition")
					}
					if c != nil && !run.Terminal(state) {
						if b, _ := f.runs.Heartbeat(f.ctx, r.ID, worker); b.Stop && state != run.Unconfirmed && state != run.Confirmed {
							t.Fatalf("a refused stop made the heartbeat say stop: %q", b.Reason)
						}
					}
					return
				}
				stopped := f.stop(t, r.ID, "bob")
				if stopped.Reason != "stopped by bob" {
					t.Errorf("reason = %q", stopped.Reason)
				}
				after, _ := f.runs.Transitions(f.ctx, r.ID)
				last := after[len(after)-1]
				if len(after) != len(before)+1 || last.From != state || last.To != run.Stopped || last.Actor != "bob" {
					t.Fatalf("transitions after stop: %+v", after[len(before):])
				}
				f.wantState(t, queued.ID, run.Ready)
				if _, err := f.runs.Authenticate(f.ctx, c.Token, false); !errs.Is(err, errs.Unauthenticated) {
					t.Fatalf("job token of a stopped run: %v, want Unauthenticated", err)
				}
				if _, err := f.runs.Authenticate(f.ctx, c.Token, true); err != nil {
					t.Fatalf("heartbeat authentication of a stopped run's job: %v", err)
				}
			})
		}
	})
}

// TestStopWhilePlanning: a run stopped while it plans never goes on to an
// apply or to waiting for confirmation, whatever its worker reports next.
func TestStopWhilePlanning(t *testing.T) {
	tests := []struct {
		name   string
		report func(f *fixture, runID string) error
	}{
		{"plan with changes on an autodeploy stack", func(f *fixture, id string) error {
			_, _, err := f.runs.Planned(f.ctx, id, worker, true, run.Delta{Add: 1}, true)
			return err
		}},
		{"plan with changes to confirm", func(f *fixture, id string) error {
			_, _, err := f.runs.Planned(f.ctx, id, worker, true, run.Delta{Add: 1}, false)
			return err
		}},
		{"hand-off of a plan saved before the stop", func(f *fixture, id string) error {
			if err := f.runs.PutArtifact(f.ctx, id, run.ArtifactWorkspace, []byte("ws")); err != nil {
				return err
			}
			_, err := f.runs.HandOff(f.ctx, id, worker)
			return err
		}},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r, _ := f.runIn(t, run.Planning)
				if strings.HasPrefix(tt.name, "hand-off") {
					if next := f.planned(t, r.ID, true, false); next != run.NextSave {
						t.Fatalf("Planned = %q", next)
					}
				}
				if _, err := f.runs.Stop(f.ctx, r.ID, "bob"); err != nil {
					t.Fatalf("Stop: %v", err)
				}
				_ = tt.report(f, r.ID) // refused, or accepted as the end of the job
				got := f.get(t, r.ID)
				switch got.State {
				case run.Confirmed, run.Applying, run.Unconfirmed:
					t.Fatalf("the run stopped by bob went on to %s (reason %q): the stop was lost", got.State, got.Reason)
				}
				if !run.Terminal(got.State) {
					// The worker, told to stop by its heartbeat, reports the end.
					if _, err := f.runs.Finish(f.ctx, r.ID, worker, true, ""); err != nil {
						t.Fatalf("run is %s after the stop and the report; Finish: %v", got.State, err)
					}
				}
				got = f.wantState(t, r.ID, run.Stopped)
				if got.Reason != "stopped by bob" {
					t.Errorf("reason = %q", got.Reason)
				}
				if _, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace); !errs.Is(err, errs.NotFound) {
					t.Errorf("workspace of the stopped run: %v, want NotFound", err)
				}
			})
		}
	})
}

// TestStopRequestStaysWithItsJob: a stop asked of a plan job must never
// stop the apply job of the same run (RUNS.md: an APPLYING run cannot be
// stopped). The plan's worker may hand off before it learns of the stop.
func TestStopRequestStaysWithItsJob(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		if next := f.planned(t, r.ID, true, false); next != run.NextSave {
			t.Fatalf("Planned = %q", next)
		}
		if _, err := f.runs.Stop(f.ctx, r.ID, "bob"); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactWorkspace, []byte("ws")); err != nil {
			t.Fatal(err)
		}
		// The hand-off of a plan job asked to stop ends the run STOPPED: it
		// never waits for confirmation, so no apply job can inherit the stop.
		if _, err := f.runs.HandOff(f.ctx, r.ID, worker); err != nil {
			t.Fatalf("HandOff: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Stopped); got.Reason != "stopped by bob" {
			t.Fatalf("reason = %q", got.Reason)
		}
		if _, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace); !errs.Is(err, errs.NotFound) {
			t.Fatalf("workspace of the stopped run: %v, want NotFound", err)
		}
	})
}

// TestTerminalRefusesWorker: a late message from the worker about a run
// that ended is refused, and the run does not change.
func TestTerminalRefusesWorker(t *testing.T) {
	msgs := []struct {
		name string
		do   func(f *fixture, id string) error
	}{
		{"phase initializing", func(f *fixture, id string) error {
			_, err := f.runs.Phase(f.ctx, id, worker, run.Initializing, "", "")
			return err
		}},
		{"phase planning", func(f *fixture, id string) error {
			_, err := f.runs.Phase(f.ctx, id, worker, run.Planning, "", "")
			return err
		}},
		{"handoff", func(f *fixture, id string) error { _, err := f.runs.HandOff(f.ctx, id, worker); return err }},
		{"finish ok", func(f *fixture, id string) error { _, err := f.runs.Finish(f.ctx, id, worker, true, ""); return err }},
		{"finish failed", func(f *fixture, id string) error { _, err := f.runs.Finish(f.ctx, id, worker, false, "x"); return err }},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, state := range []string{run.Finished, run.Failed, run.Discarded, run.Canceled, run.Stopped} {
			t.Run(state, func(t *testing.T) {
				r, _ := f.runIn(t, state)
				before, _ := f.runs.Transitions(f.ctx, r.ID)
				for _, m := range msgs {
					if err := m.do(f, r.ID); !errs.Is(err, errs.Conflict) {
						t.Errorf("%s on a %s run: %v, want Conflict", m.name, state, err)
					}
				}
				// A plan report again: the worker whose report ended the run
				// gets its answer again (it was lost), others a Conflict.
				next, _, err := f.runs.Planned(f.ctx, r.ID, worker, true, run.Delta{}, true)
				if r.HasDelta && r.WorkerID == worker {
					if err != nil || next != run.NextDone {
						t.Errorf("planned again on a %s run: %q, %v; want done", state, next, err)
					}
				} else if !errs.Is(err, errs.Conflict) {
					t.Errorf("planned on a %s run: %v, want Conflict", state, err)
				}
				b, err := f.runs.Heartbeat(f.ctx, r.ID, worker)
				if err != nil || !b.Stop || b.State != state {
					t.Errorf("heartbeat of a %s run = %+v %v, want stop and the state", state, b, err)
				}
				after := f.wantState(t, r.ID, state)
				if after.Reason != r.Reason {
					t.Errorf("reason changed from %q to %q", r.Reason, after.Reason)
				}
				if tr, _ := f.runs.Transitions(f.ctx, r.ID); len(tr) != len(before) {
					t.Errorf("transitions grew from %d to %d", len(before), len(tr))
				}
				if c, _ := f.runs.Claim(f.ctx, "pool-"+r.StackID, worker); c != nil {
					t.Errorf("claimed the %s run", state)
				}
			})
		}
	})
}

func TestWorkerSteps(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Preparing)
		tests := []struct {
			name string
			do   func() error
			kind errs.Kind
		}{
			{"skip initializing", func() error { _, err := f.runs.Phase(f.ctx, r.ID, worker, run.Planning, "", ""); return err }, errs.Conflict},
			{"performing on a tracked run", func() error { _, err := f.runs.Phase(f.ctx, r.ID, worker, run.Performing, "", ""); return err }, errs.Conflict},
			{"unknown phase", func() error { _, err := f.runs.Phase(f.ctx, r.ID, worker, "BOGUS", "", ""); return err }, errs.Conflict},
			{"planned before planning", func() error {
				_, _, err := f.runs.Planned(f.ctx, r.ID, worker, true, run.Delta{}, false)
				return err
			}, errs.Conflict},
			{"handoff before planning", func() error { _, err := f.runs.HandOff(f.ctx, r.ID, worker); return err }, errs.Conflict},
			{"another worker", func() error { _, err := f.runs.Phase(f.ctx, r.ID, "wrk-other", run.Initializing, "", ""); return err }, errs.Conflict},
			{"missing run", func() error {
				_, err := f.runs.Phase(f.ctx, "run-missing", worker, run.Initializing, "", "")
				return err
			}, errs.NotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantKind(t, tt.do(), tt.kind)
				f.wantState(t, r.ID, run.Preparing)
			})
		}
		// Once planning, handing off without changes is refused.
		f.phase(t, r.ID, run.Initializing)
		f.phase(t, r.ID, run.Planning)
		if err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactWorkspace, []byte("ws")); err != nil {
			t.Fatal(err)
		}
		_, err := f.runs.HandOff(f.ctx, r.ID, worker) // Planned was never reported
		wantKind(t, err, errs.Conflict)
		// A failed plan ends the run.
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, ""); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Failed); got.Reason == "" {
			t.Errorf("failed run has no reason")
		}
	})
}

func TestTask(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, ok := range []bool{true, false} {
			st := f.isolated(t, false)
			r := f.create(t, st.ID, run.Task)
			c := f.claim(t, st.WorkerPool, worker)
			if c.Kind != run.KindTask || c.Run.Command != "tofu state list" {
				t.Fatalf("claim = kind %s command %q", c.Kind, c.Run.Command)
			}
			f.phase(t, r.ID, run.Initializing)
			_, err := f.runs.Phase(f.ctx, r.ID, worker, run.Planning, "", "")
			wantKind(t, err, errs.Conflict)
			f.phase(t, r.ID, run.Performing)
			_, _, err = f.runs.Planned(f.ctx, r.ID, worker, true, run.Delta{}, true)
			wantKind(t, err, errs.Conflict)
			if _, err := f.runs.Finish(f.ctx, r.ID, worker, ok, "exit status 3"); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			want := run.Finished
			if !ok {
				want = run.Failed
			}
			tr, _ := f.runs.Transitions(f.ctx, r.ID)
			var tos []string
			for _, x := range tr {
				tos = append(tos, x.To)
			}
			if wantTos := []string{run.Queued, run.Ready, run.Preparing, run.Initializing, run.Performing, want}; !reflect.DeepEqual(tos, wantTos) {
				t.Fatalf("task transitions = %q, want %q", tos, wantTos)
			}
			if got := f.wantState(t, r.ID, want); got.Reason != "exit status 3" {
				t.Errorf("reason = %q", got.Reason)
			}
		}
	})
}

func TestAuthenticate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, c := f.runIn(t, run.Preparing)
		other, oc := f.runIn(t, run.Preparing)
		secret := c.Token[strings.LastIndexByte(c.Token, '_')+1:]
		tampered := []byte(c.Token)
		if tampered[len(tampered)-1] == 'a' {
			tampered[len(tampered)-1] = 'b'
		} else {
			tampered[len(tampered)-1] = 'a'
		}
		tests := []struct {
			name   string
			token  string
			wantID string // "" for refused
		}{
			{"own token", c.Token, r.ID},
			{"other run's own token", oc.Token, other.ID},
			{"tampered", string(tampered), ""},
			{"secret moved to another run", "gjt_" + other.ID + "_" + secret, ""},
			{"no prefix", strings.TrimPrefix(c.Token, "gjt_"), ""},
			{"worker token prefix", "gwt_" + strings.TrimPrefix(c.Token, "gjt_"), ""},
			{"state token prefix", "gst_" + strings.TrimPrefix(c.Token, "gjt_"), ""},
			{"no secret", "gjt_" + r.ID, ""},
			{"empty secret", "gjt_" + r.ID + "_", ""},
			{"empty", "", ""},
			{"missing run", "gjt_run-missing_" + secret, ""},
		}
		for _, tt := range tests {
			for _, allowEnded := range []bool{false, true} {
				got, err := f.runs.Authenticate(f.ctx, tt.token, allowEnded)
				if tt.wantID == "" {
					if !errs.Is(err, errs.Unauthenticated) {
						t.Errorf("%s: Authenticate = %s, %v; want Unauthenticated", tt.name, got.ID, err)
					}
					continue
				}
				if err != nil || got.ID != tt.wantID {
					t.Errorf("%s: Authenticate = %s, %v; want %s", tt.name, got.ID, err, tt.wantID)
				}
			}
		}
		if id, ok := run.RunIDFromToken(c.Token); !ok || id != r.ID {
			t.Errorf("RunIDFromToken = %q %v", id, ok)
		}

		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "done"); err != nil {
			t.Fatal(err)
		}
		_, err := f.runs.Authenticate(f.ctx, c.Token, false)
		wantKind(t, err, errs.Unauthenticated)
		if got, err := f.runs.Authenticate(f.ctx, c.Token, true); err != nil || got.State != run.Failed {
			t.Fatalf("Authenticate(allowEnded) of a finished run = %s, %v", got.State, err)
		}
		if got, err := f.runs.Authenticate(f.ctx, oc.Token, false); err != nil || got.ID != other.ID {
			t.Fatalf("another job's token stopped working: %v", err)
		}
	})
}

func TestFailLost(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		var terminal []string
		f.runs.OnTerminal = func(_ context.Context, r run.Run) error {
			terminal = append(terminal, r.ID+" "+r.State)
			return nil
		}
		stale, _ := f.runIn(t, run.Planning)
		staleApply, _ := f.runIn(t, run.Applying)
		listed, _ := f.runIn(t, run.Initializing)
		fresh, _ := f.runIn(t, run.Planning)
		waiting, _ := f.runIn(t, run.Unconfirmed)
		ready, _ := f.runIn(t, run.Ready)
		queued := f.create(t, stale.StackID, run.Tracked)

		old := f.get(t, fresh.ID).HeartbeatAt.Add(-time.Hour)
		for _, id := range []string{stale.ID, staleApply.ID, waiting.ID, ready.ID} {
			if _, err := d.Exec(f.ctx, `UPDATE runs SET heartbeat_at = $2 WHERE id = $1`, id, old.UnixNano()); err != nil {
				t.Fatal(err)
			}
		}
		// listed's worker is named as lost although its heartbeat is fresh.
		if _, err := d.Exec(f.ctx, `UPDATE runs SET worker_id = 'wrk-lost' WHERE id = $1`, listed.ID); err != nil {
			t.Fatal(err)
		}
		terminal = nil
		n, err := f.runs.FailLost(f.ctx, run.Lost{Before: time.Now().Add(-time.Minute), Workers: []string{"wrk-lost", "wrk-unknown"}})
		if err != nil || n != 3 {
			t.Fatalf("FailLost = %d, %v; want 3", n, err)
		}
		got := f.wantState(t, stale.ID, run.Failed)
		if !strings.Contains(got.Reason, "worker "+worker+" lost") {
			t.Errorf("reason = %q", got.Reason)
		}
		if got := f.wantState(t, staleApply.ID, run.Failed); !strings.Contains(got.Reason, "during apply") {
			t.Errorf("reason of a run lost while applying = %q", got.Reason)
		}
		if got := f.wantState(t, listed.ID, run.Failed); !strings.Contains(got.Reason, "wrk-lost") {
			t.Errorf("reason of a listed worker's run = %q", got.Reason)
		}
		f.wantState(t, fresh.ID, run.Planning)
		f.wantState(t, waiting.ID, run.Unconfirmed)
		f.wantState(t, ready.ID, run.Ready)
		f.wantState(t, queued.ID, run.Ready)
		if len(terminal) != 3 {
			t.Errorf("OnTerminal calls = %q, want the 3 failed runs", terminal)
		}
		tr, _ := f.runs.Transitions(f.ctx, stale.ID)
		if last := tr[len(tr)-1]; last.To != run.Failed || last.Actor != "gantry" {
			t.Errorf("last transition = %+v", last)
		}

		// With a reason given, it is used as is; nothing is failed twice.
		r2, _ := f.runIn(t, run.Preparing)
		n, err = f.runs.FailLost(f.ctx, run.Lost{Workers: []string{worker}, Reason: "the server restarted"})
		if err != nil || n != 2 { // r2 and fresh share the worker
			t.Fatalf("FailLost(listed) = %d, %v; want 2", n, err)
		}
		if got := f.wantState(t, r2.ID, run.Failed); got.Reason != "the server restarted" {
			t.Errorf("reason = %q", got.Reason)
		}
		if n, err := f.runs.FailLost(f.ctx, run.Lost{Before: time.Now().Add(-time.Hour), Workers: []string{worker}, Reason: "again"}); err != nil || n != 0 {
			t.Fatalf("FailLost with nothing to fail = %d, %v", n, err)
		}
	})
}

func TestOnTerminal(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		queued := f.create(t, r.StackID, run.Tracked)
		boom := errors.New("boom")
		var calls []run.Run
		f.runs.OnTerminal = func(ctx context.Context, x run.Run) error {
			calls = append(calls, x)
			if len(calls) == 1 {
				return boom
			}
			return nil
		}
		// A failing hook rolls the transition back.
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "plan failed"); !errors.Is(err, boom) {
			t.Fatalf("Finish with a failing hook = %v, want boom", err)
		}
		f.wantState(t, r.ID, run.Planning)
		f.wantState(t, queued.ID, run.Queued)
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "plan failed"); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if len(calls) != 2 || calls[1].ID != r.ID || calls[1].State != run.Failed || calls[1].Reason != "plan failed" {
			t.Fatalf("OnTerminal calls = %+v", calls)
		}
		f.wantState(t, queued.ID, run.Ready)
		// Non-terminal transitions do not call it.
		f.claim(t, "pool-"+r.StackID, worker)
		f.phase(t, queued.ID, run.Initializing)
		if len(calls) != 2 {
			t.Fatalf("OnTerminal called for a non-terminal transition: %d calls", len(calls))
		}
	})
}

// A run claimed by a worker that left before receiving the job is given
// back, claimable again, instead of waiting for the reaper.
func TestUnclaim(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.isolated(t, false)
		r, err := f.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Tracked, TriggeredBy: "t"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.runs.Claim(f.ctx, st.WorkerPool, "gone")
		if err != nil || c == nil {
			t.Fatalf("claim: %v %v", c, err)
		}
		back, err := f.runs.Unclaim(f.ctx, r.ID, "gone")
		if err != nil || back.State != run.Ready || back.WorkerID != "" {
			t.Fatalf("unclaim = %+v, %v", back, err)
		}
		if _, err := f.runs.Authenticate(f.ctx, c.Token, false); err == nil {
			t.Fatal("the given back job token still works")
		}
		c2, err := f.runs.Claim(f.ctx, st.WorkerPool, "other")
		if err != nil || c2 == nil || c2.Run.ID != r.ID {
			t.Fatalf("second claim: %v %v", c2, err)
		}
		if _, err := f.runs.Unclaim(f.ctx, r.ID, "gone"); err == nil {
			t.Fatal("a worker that does not hold the run gave it back")
		}
	})
}

// OnPlanEnd runs when a run leaves PLANNING for a state that is not
// terminal: at the hand-off (UNCONFIRMED) and when autodeploy moves it on
// to APPLYING; not when the plan ends the run (OnTerminal does), nor at
// other transitions.
func TestOnPlanEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		var calls []string
		f.runs.OnPlanEnd = func(_ context.Context, x run.Run) error {
			calls = append(calls, x.ID+" "+x.State)
			return nil
		}
		handed, _ := f.runIn(t, run.Planning)
		if next := f.planned(t, handed.ID, true, false); next != run.NextSave {
			t.Fatalf("Planned = %q", next)
		}
		if len(calls) != 0 {
			t.Fatalf("OnPlanEnd calls before the hand-off = %q", calls)
		}
		f.handOff(t, handed.ID)
		auto, _ := f.runIn(t, run.Applying)
		ended, _ := f.runIn(t, run.Planning)
		f.planned(t, ended.ID, false, false)
		want := []string{handed.ID + " " + run.Unconfirmed, auto.ID + " " + run.Applying}
		if !slices.Equal(calls, want) {
			t.Fatalf("OnPlanEnd calls = %q, want %q", calls, want)
		}
		// A failing hook undoes the transition.
		boom := errors.New("boom")
		f.runs.OnPlanEnd = func(context.Context, run.Run) error { return boom }
		r, _ := f.runIn(t, run.Planning)
		if _, _, err := f.runs.Planned(f.ctx, r.ID, worker, true, run.Delta{Add: 1}, true); !errors.Is(err, boom) {
			t.Fatalf("Planned with a failing hook = %v, want boom", err)
		}
		f.wantState(t, r.ID, run.Planning)
	})
}
