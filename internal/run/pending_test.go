package run_test

import (
	"testing"

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
