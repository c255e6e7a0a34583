package run_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/state"
)

// An apply failed because its worker is lost says what of its state is
// kept, and only what is true: the last state version it saved, or that
// it saved none (the stack's state is the one from before the apply).
func TestFailLostApplyReasonSaysWhatIsKept(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		states := state.NewService(d, testBox(t))
		f.runs.StateSaved = states.LastOfRun

		saved, _ := f.runIn(t, run.Applying)
		for serial := 1; serial <= 2; serial++ {
			doc := fmt.Sprintf(`{"version":4,"serial":%d,"lineage":"l-1","resources":[]}`, serial)
			if _, err := states.Write(f.ctx, saved.StackID, []byte(doc), "", saved.ID, "worker:"+worker); err != nil {
				t.Fatal(err)
			}
		}
		none, _ := f.runIn(t, run.Applying)
		n, err := f.runs.FailLost(f.ctx, run.Lost{Before: time.Now().Add(time.Hour)})
		if err != nil || n != 2 {
			t.Fatalf("FailLost = %d, %v; want 2", n, err)
		}
		got := f.wantState(t, saved.ID, run.Failed).Reason
		if !strings.Contains(got, "the last state it saved, serial 2, is kept") || strings.Contains(got, "saved no state") {
			t.Errorf("reason of an apply that saved states = %q", got)
		}
		got = f.wantState(t, none.ID, run.Failed).Reason
		if !strings.Contains(got, "it saved no state") || strings.Contains(got, "is kept") {
			t.Errorf("reason of an apply that saved no state = %q", got)
		}
		for _, r := range []string{saved.ID, none.ID} {
			if reason := f.get(t, r).Reason; strings.Contains(reason, "written so far is kept") {
				t.Errorf("reason claims the state written so far is kept: %q", reason)
			}
		}
	})
}

// A run its worker reports failed says the last state version its run
// token stored, if any: OpenTofu's "Failed to upload state" (a full disk)
// does not know that a later retry, or the push of the state it kept,
// stored the state after all. A run that stored none keeps its reason.
func TestFinishFailedReasonSaysStateSaved(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		states := state.NewService(d, testBox(t))
		f.runs.StateSaved = states.LastOfRun
		const upload = "Error: Failed to upload state: POST http://127.0.0.1:8080/api/v1/stacks/x/tfstate?ID=1 giving up after 15 attempt(s)"

		saved, _ := f.runIn(t, run.Applying)
		for serial := 1; serial <= 3; serial++ {
			doc := fmt.Sprintf(`{"version":4,"serial":%d,"lineage":"l-1","resources":[]}`, serial)
			if _, err := states.Write(f.ctx, saved.StackID, []byte(doc), "", saved.ID, "worker:"+worker); err != nil {
				t.Fatal(err)
			}
		}
		none, _ := f.runIn(t, run.Applying)
		for _, r := range []run.Run{saved, none} {
			if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, upload); err != nil {
				t.Fatal(err)
			}
		}
		want := upload + " (the last state this run saved, serial 3, is kept: check whether it holds all of the run's changes before the next run)"
		if got := f.wantState(t, saved.ID, run.Failed).Reason; got != want {
			t.Errorf("reason of a run that saved states = %q, want %q", got, want)
		}
		if got := f.wantState(t, none.ID, run.Failed).Reason; got != upload {
			t.Errorf("reason of a run that saved no state = %q, want the worker's", got)
		}
	})
}

// Keep spares the runs whose worker is known to be alive (a server's own
// built-in workers), however old their heartbeat.
func TestFailLostKeep(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		kept, _ := f.runIn(t, run.Planning)
		lost, _ := f.runIn(t, run.Planning)
		n, err := f.runs.FailLost(f.ctx, run.Lost{Before: time.Now().Add(time.Hour), Keep: func(id string) bool { return id == kept.ID }})
		if err != nil || n != 1 {
			t.Fatalf("FailLost = %d, %v; want 1", n, err)
		}
		f.wantState(t, kept.ID, run.Planning)
		f.wantState(t, lost.ID, run.Failed)
	})
}
