package run_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
)

// readAll reads a run's whole log.
func (f *fixture) readAll(t *testing.T, runID string) string {
	t.Helper()
	data, _, err := f.runs.ReadLog(f.ctx, runID, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func (f *fixture) appendLog(t *testing.T, runID string, offset int64, data string) {
	t.Helper()
	if _, err := f.runs.AppendLog(f.ctx, runID, offset, []byte(data)); err != nil {
		t.Fatalf("AppendLog(%d, %q): %v", offset, data, err)
	}
}

// When the server fails a run itself (the reaper, restart recovery), the
// log ends with "[gantry] Run failed: <reason>" as when the worker fails
// it. A worker that was still writing (taken for lost, but alive) goes on
// at its own offsets, which know nothing of that line: its bytes go after
// it, whole and in order, and its retries stay no-ops.
func TestFailLostClosesTheLog(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		f.appendLog(t, r.ID, 0, "$ tofu plan\n")
		f.appendLog(t, r.ID, 12, "[gantry] Hook before_plan: sleep 30\n")
		if n, err := f.runs.FailLost(f.ctx, run.Lost{Workers: []string{worker}, Reason: "the server restarted"}); err != nil || n != 1 {
			t.Fatalf("FailLost = %d, %v", n, err)
		}
		const closing = "[gantry] Run failed: the server restarted\n"
		want := "$ tofu plan\n[gantry] Hook before_plan: sleep 30\n" + closing
		if got := f.readAll(t, r.ID); got != want {
			t.Fatalf("log after the server failed the run:\n%q\nwant\n%q", got, want)
		}

		// The worker, alive, goes on: a retry of a chunk stored before the
		// closing line, one that resends stored bytes and adds new ones,
		// new chunks, and a retry of one of those.
		f.appendLog(t, r.ID, 12, "[gantry] Hook before_plan: sleep 30\n")
		f.appendLog(t, r.ID, 12, "[gantry] Hook before_plan: sleep 30\nStopping\n")
		f.appendLog(t, r.ID, 57, "[gantry] Run failed: run is FAILED\n")
		f.appendLog(t, r.ID, 57, "[gantry] Run failed: run is FAILED\n")
		want += "Stopping\n[gantry] Run failed: run is FAILED\n"
		if got := f.readAll(t, r.ID); got != want {
			t.Fatalf("log after the worker's late appends:\n%q\nwant\n%q", got, want)
		}
		if got := f.get(t, r.ID).LogSize; got != int64(len(want)) {
			t.Errorf("LogSize = %d, want %d", got, len(want))
		}

		// A log cut in mid-line gets the closing line on a line of its
		// own; the reaper's reason is the closing line.
		cut, _ := f.runIn(t, run.Planning)
		f.appendLog(t, cut.ID, 0, "Plan: 1 to add")
		if _, err := d.Exec(f.ctx, `UPDATE runs SET heartbeat_at = 0 WHERE id = $1`, cut.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := f.runs.FailLost(f.ctx, run.Lost{Before: time.Now().Add(-time.Minute)}); err != nil || n != 1 {
			t.Fatalf("FailLost = %d, %v", n, err)
		}
		got := f.readAll(t, cut.ID)
		reason := f.get(t, cut.ID).Reason
		if want := "Plan: 1 to add\n[gantry] Run failed: " + reason + "\n"; got != want || !strings.Contains(reason, "lost") {
			t.Errorf("log of a run lost in mid-line:\n%q\nwant\n%q", got, want)
		}
		// The worker's rest of that line goes after the closing line.
		f.appendLog(t, cut.ID, 14, ", 0 to change\n")
		if got := f.readAll(t, cut.ID); !strings.HasSuffix(got, "[gantry] Run failed: "+reason+"\n, 0 to change\n") {
			t.Errorf("log after the rest of the cut line:\n%q", got)
		}
	})
}
