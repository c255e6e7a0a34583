package server

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
)

// The reaper takes a worker for lost only when this server has been able
// to record heartbeats for a whole worker timeout and none came: not in
// the first timeout after it started, nor in the timeout after a
// heartbeat could not be recorded (the database down, a full disk). The
// runs of this process's own built-in workers are never failed while it
// runs them. The clock is the test's.
func TestReaperGrace(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newRecoveryFixture(t, d)
		s := f.s
		timeout := s.cfg.WorkerTimeout
		start := time.Now()
		clock := start
		s.now = func() time.Time { return clock }
		s.live = newLiveness(start)

		_, private := f.held(t, "pool-p", "")
		_, builtin := f.held(t, "", "")
		// Both were last heard of long before this server started (it was
		// down, or its database was).
		if _, err := d.Exec(f.ctx, `UPDATE runs SET heartbeat_at = $1`, start.Add(-time.Hour).UnixNano()); err != nil {
			t.Fatal(err)
		}
		done := s.holding(builtin.ID)
		wantState := func(when string, runID, want string) {
			t.Helper()
			if got := f.state(t, runID); got.State != want {
				t.Fatalf("%s: run is %s (%q), want %s", when, got.State, got.Reason, want)
			}
		}

		for _, at := range []time.Duration{0, timeout / 4, timeout - time.Millisecond} {
			clock = start.Add(at)
			s.reap(f.ctx, clock)
			wantState("in the first worker timeout after the start", private.ID, run.Preparing)
		}
		// A heartbeat could not be recorded: a whole timeout again.
		s.heartbeatFailed()
		clock = clock.Add(timeout - time.Millisecond)
		s.reap(f.ctx, clock)
		wantState("within a worker timeout of a failed heartbeat", private.ID, run.Preparing)

		clock = clock.Add(time.Millisecond)
		s.reap(f.ctx, clock)
		lost := f.state(t, private.ID)
		if lost.State != run.Failed || !strings.Contains(lost.Reason, "lost: no heartbeat since") {
			t.Fatalf("after a whole worker timeout without heartbeats: run is %s (%q), want FAILED as lost", lost.State, lost.Reason)
		}
		wantState("a built-in worker of this process holds it", builtin.ID, run.Preparing)

		// Once its job has ended, the built-in worker's run is judged by
		// its heartbeats like any other.
		done()
		s.reap(f.ctx, clock)
		wantState("the built-in worker's job ended", builtin.ID, run.Failed)
	})
}
