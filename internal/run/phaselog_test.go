package run_test

import (
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
)

// TestPhaseLog: where each phase begins is recorded with its transition,
// from the worker's offset (even ahead of the log it sent) or the log's
// size for the server's own transitions, and a phase's log is cut there.
func TestPhaseLog(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.isolated(t, false)
		r := f.create(t, st.ID, run.Tracked)
		f.claim(t, st.WorkerPool, worker)
		app := func(off int64, s string) {
			t.Helper()
			if _, err := f.runs.AppendLog(f.ctx, r.ID, off, []byte(s)); err != nil {
				t.Fatalf("AppendLog: %v", err)
			}
		}
		app(0, "cloning\n") // 8 bytes of PREPARING
		// INITIALIZING reported before the last line of PREPARING arrived.
		if _, err := f.runs.PhaseAt(f.ctx, r.ID, worker, run.Initializing, run.Commit{}, 13); err != nil {
			t.Fatal(err)
		}
		app(8, "done\n")
		app(13, "tofu init\n")
		if _, err := f.runs.PhaseAt(f.ctx, r.ID, worker, run.Planning, run.Commit{}, 23); err != nil {
			t.Fatal(err)
		}
		app(23, "plan: 1 to add\n")
		f.planned(t, r.ID, true, false) // UNCONFIRMED: the server's, at the log's size
		ts, err := f.runs.Transitions(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{run.Queued: -1, run.Ready: 0, run.Preparing: 0, run.Initializing: 13, run.Planning: 23, run.Unconfirmed: 38}
		for _, tr := range ts {
			if w, ok := want[tr.To]; ok && tr.LogOffset != w {
				t.Errorf("%s begins at %d, want %d", tr.To, tr.LogOffset, w)
			}
		}
		for _, c := range []struct {
			state, want string
			max         int
			omitted     int64
		}{
			{run.Preparing, "cloning\ndone\n", 1000, 0},
			{run.Initializing, "tofu init\n", 1000, 0},
			{run.Planning, "plan: 1 to add\n", 1000, 0},
			{run.Planning, "add\n", 4, 11},
			{run.Applying, "", 1000, 0},
		} {
			got, omitted, ok, err := f.runs.PhaseLog(f.ctx, r.ID, c.state, c.max)
			if err != nil || !ok || string(got) != c.want || omitted != c.omitted {
				t.Errorf("PhaseLog(%s, %d) = %q, %d, %v, %v; want %q, %d", c.state, c.max, got, omitted, ok, err, c.want, c.omitted)
			}
		}
	})
}

// TestPhaseLogUnknown: a phase reported without an offset (an older
// worker) has no known log.
func TestPhaseLogUnknown(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		if _, _, ok, err := f.runs.PhaseLog(f.ctx, r.ID, run.Planning, 100); ok || err != nil {
			t.Fatalf("PhaseLog = ok %v, %v; want unknown", ok, err)
		}
		// PREPARING ends where INITIALIZING, reported alike, begins.
		if _, _, ok, err := f.runs.PhaseLog(f.ctx, r.ID, run.Preparing, 100); ok || err != nil {
			t.Fatalf("PhaseLog(PREPARING) = ok %v, %v; want unknown", ok, err)
		}
		if got, _, ok, err := f.runs.PhaseLog(f.ctx, r.ID, run.Applying, 100); !ok || err != nil || len(got) != 0 {
			t.Fatalf("PhaseLog(APPLYING) = %q, ok %v, %v; want empty (never entered)", got, ok, err)
		}
	})
}
