package run_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
)

// A plan reported with its JSON pending goes on to APPLYING at once on an
// autodeploy stack; the counts arrive later, once.
func TestPlannedPendingAutodeploy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		next, got, err := f.runs.PlannedPending(f.ctx, r.ID, worker, true)
		if err != nil || next != run.NextApply || got.State != run.Applying || !got.HasChanges || got.HasDelta {
			t.Fatalf("PlannedPending = %q %s changes=%v delta=%v, %v", next, got.State, got.HasChanges, got.HasDelta, err)
		}
		if _, err := f.runs.RecordDelta(f.ctx, r.ID, worker, run.Delta{Add: 2, Destroy: 1}); err != nil {
			t.Fatal(err)
		}
		if got := f.get(t, r.ID); !got.HasDelta || got.Delta != (run.Delta{Add: 2, Destroy: 1}) {
			t.Fatalf("delta = %v %+v", got.HasDelta, got.Delta)
		}
		_, err = f.runs.RecordDelta(f.ctx, r.ID, worker, run.Delta{Add: 9})
		wantKind(t, err, errs.Conflict)
		_, err = f.runs.RecordDelta(f.ctx, r.ID, "another-worker", run.Delta{Add: 9})
		wantKind(t, err, errs.Conflict)
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, true, ""); err != nil {
			t.Fatal(err)
		}
		f.wantState(t, r.ID, run.Finished)
	})
}

// Without autodeploy (or for a proposed run) the server wants the plan
// first: the run stays PLANNING until the full report.
func TestPlannedPendingNeedsThePlan(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		next, got, err := f.runs.PlannedPending(f.ctx, r.ID, worker, false)
		if err != nil || next != run.NextPlan || got.State != run.Planning {
			t.Fatalf("PlannedPending = %q %s, %v", next, got.State, err)
		}
		if next := f.planned(t, r.ID, true, false); next != run.NextSave {
			t.Fatalf("then Planned = %q", next)
		}

		st := f.isolated(t, true)
		p := f.create(t, st.ID, run.Proposed)
		f.claim(t, st.WorkerPool, worker)
		f.phase(t, p.ID, run.Initializing)
		f.phase(t, p.ID, run.Planning)
		if next, got, err := f.runs.PlannedPending(f.ctx, p.ID, worker, true); err != nil || next != run.NextPlan || got.State != run.Planning {
			t.Fatalf("proposed: PlannedPending = %q %s, %v", next, got.State, err)
		}
	})
}

// A pending plan report whose answer was lost (a proxy's 502, a failure
// after the report committed) is retried by its worker: the retry gets the
// same answer, and nothing is recorded twice. Also when the report ended
// the run (a stop asked meanwhile), or the run ended after it (the apply's
// credentials refused).
func TestPlannedPendingReplayed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)

		r, _ := f.runIn(t, run.Planning)
		if next, _, err := f.runs.PlannedPending(f.ctx, r.ID, worker, true); err != nil || next != run.NextApply {
			t.Fatalf("PlannedPending = %q, %v", next, err)
		}
		moves := len(f.transitions(t, r.ID))
		for i := 0; i < 2; i++ {
			next, got, err := f.runs.PlannedPending(f.ctx, r.ID, worker, true)
			if err != nil || next != run.NextApply || got.State != run.Applying {
				t.Fatalf("retry %d: PlannedPending = %q %s, %v; want apply", i, next, got.State, err)
			}
		}
		if n := len(f.transitions(t, r.ID)); n != moves {
			t.Errorf("%d transitions after the retries, want %d", n, moves)
		}
		// Another worker (a job token of another job) is not answered.
		_, _, err := f.runs.PlannedPending(f.ctx, r.ID, "another-worker", true)
		wantKind(t, err, errs.Conflict)
		if _, err := f.runs.RecordDelta(f.ctx, r.ID, worker, run.Delta{Add: 1}); err != nil {
			t.Fatal(err)
		}
		if next, _, err := f.runs.PlannedPending(f.ctx, r.ID, worker, true); err != nil || next != run.NextApply {
			t.Fatalf("retry after the counts: PlannedPending = %q, %v", next, err)
		}
		// The run ended after the report (credentials refused): done.
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "minting the apply's credentials failed"); err != nil {
			t.Fatal(err)
		}
		if next, got, err := f.runs.PlannedPending(f.ctx, r.ID, worker, true); err != nil || next != run.NextDone || got.State != run.Failed {
			t.Fatalf("retry after the run failed: PlannedPending = %q %s, %v; want done", next, got.State, err)
		}

		// Stopped by the report.
		r, _ = f.runIn(t, run.Planning)
		if _, err := f.runs.Stop(f.ctx, r.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			next, got, err := f.runs.PlannedPending(f.ctx, r.ID, worker, true)
			if err != nil || next != run.NextDone || got.State != run.Stopped {
				t.Fatalf("attempt %d: PlannedPending = %q %s, %v; want done, STOPPED", i, next, got.State, err)
			}
		}

		// An apply job's run (CONFIRMED by a person) is no replay.
		r, _ = f.runIn(t, run.Confirmed)
		f.claim(t, r.Pool, worker)
		_, _, err = f.runs.PlannedPending(f.ctx, r.ID, worker, true)
		wantKind(t, err, errs.Conflict)
	})
}

// A plan report that went on to apply (autodeploy) and ended there is
// answered done when retried; one whose run another server recorded
// meanwhile is recorded once.
func TestPlannedReplayed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Applying)
		if next := f.planned(t, r.ID, true, true); next != run.NextApply {
			t.Fatalf("retry of Planned = %q, want apply", next)
		}
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "minting the apply's credentials failed"); err != nil {
			t.Fatal(err)
		}
		if next := f.planned(t, r.ID, true, true); next != run.NextDone {
			t.Fatalf("retry of Planned after the run failed = %q, want done", next)
		}

		// Two servers (each with its own lock) get the same report at once
		// (a retry sent to another replica while the first evaluates its
		// policies): both evaluate, one records, the other finds the
		// report recorded and answers as the first did.
		r, _ = f.runIn(t, run.Planning)
		pols := &barrierPolicies{arrived: make(chan struct{}, 2), release: make(chan struct{})}
		f.runs.Policies = pols
		other := run.NewService(d, f.hub, testBox(t), slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
		other.Policies = pols
		type answer struct {
			next string
			err  error
		}
		answers := make(chan answer, 2)
		for i, s := range []*run.Service{f.runs, other} {
			go func() {
				next, _, err := s.Planned(f.ctx, r.ID, worker, true, run.Delta{Add: 1 + i}, false)
				answers <- answer{next, err}
			}()
		}
		<-pols.arrived
		<-pols.arrived
		close(pols.release)
		for range 2 {
			if a := <-answers; a.err != nil || a.next != run.NextSave {
				t.Errorf("Planned = %q, %v; want save", a.next, a.err)
			}
		}
		if n := pols.recorded.Load(); n != 1 {
			t.Errorf("the plan policies' receipts recorded %d times, want once", n)
		}
	})
}

// barrierPolicies are plan policies whose evaluations wait until release
// is closed; arrived gets one value per evaluation. Their receipts count
// how often they are recorded.
type barrierPolicies struct {
	arrived  chan struct{}
	release  chan struct{}
	recorded atomic.Int32
}

func (p *barrierPolicies) Approval(context.Context, run.Run, string) (run.Verdict, error) {
	return run.Verdict{}, nil
}

func (p *barrierPolicies) NeedsPlan(context.Context, run.Run) (bool, error) { return true, nil }

func (p *barrierPolicies) Plan(context.Context, run.Run) (run.Verdict, error) {
	p.arrived <- struct{}{}
	<-p.release
	return run.Verdict{Outcome: run.OutcomeAllow, Record: func(context.Context, string) error {
		p.recorded.Add(1)
		return nil
	}}, nil
}

func (p *barrierPolicies) Changed(context.Context, run.Run, string, time.Time, int) ([]string, error) {
	return nil, nil
}

// A phase report retried after its answer was lost is answered again,
// with nothing recorded twice; a phase out of order is still refused.
func TestPhaseReplayed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Initializing)
		sha := strings.Repeat("a", 40)
		for i := 0; i < 2; i++ {
			if _, err := f.runs.Phase(f.ctx, r.ID, worker, run.Planning, sha, "msg"); err != nil {
				t.Fatalf("attempt %d: Phase: %v", i, err)
			}
		}
		n := 0
		for _, tr := range f.transitions(t, r.ID) {
			if tr.To == run.Planning {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d transitions to PLANNING, want 1", n)
		}
		_, err := f.runs.Phase(f.ctx, r.ID, worker, run.Initializing, "", "")
		wantKind(t, err, errs.Conflict)
		_, err = f.runs.Phase(f.ctx, r.ID, "another-worker", run.Planning, "", "")
		wantKind(t, err, errs.Conflict)
		// Another commit is no retry of the same report.
		_, err = f.runs.Phase(f.ctx, r.ID, worker, run.Planning, strings.Repeat("b", 40), "")
		wantKind(t, err, errs.Conflict)
	})
}

func (f *fixture) transitions(t *testing.T, runID string) []run.Transition {
	t.Helper()
	tr, err := f.runs.Transitions(f.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
