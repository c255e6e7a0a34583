package workerapi_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
)

// failHeartbeatWrites makes the database refuse to record heartbeats, as
// a full disk would; the returned function undoes it.
func failHeartbeatWrites(t *testing.T, f *fixture) (undo func()) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER hb_fail BEFORE UPDATE OF heartbeat_at ON runs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`}
	drop := []string{`DROP TRIGGER hb_fail`}
	if f.d.Dialect == db.Postgres {
		stmts = []string{
			`CREATE FUNCTION hb_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER hb_fail BEFORE UPDATE OF heartbeat_at ON runs FOR EACH ROW EXECUTE FUNCTION hb_fail()`,
		}
		drop = []string{`DROP TRIGGER hb_fail ON runs`, `DROP FUNCTION hb_fail()`}
	}
	for _, q := range stmts {
		if _, err := f.d.Exec(f.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() {
		for _, q := range drop {
			if _, err := f.d.Exec(f.ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
}

// A heartbeat the server cannot record (its database down or full) is
// answered 5xx, so the worker goes on and retries, and the server is told
// (HeartbeatFailed): its reaper must not take the worker for lost. A
// heartbeat refused for the worker's own reasons (a wrong token) is not a
// failure of the server's.
func TestHeartbeatStoreFailureIsReported(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		var failures atomic.Int32
		f.handler.HeartbeatFailed = func() { failures.Add(1) }
		c, _ := f.worker(t, builtinToken)
		f.create(t, f.stack(t, nil).ID, run.Tracked)
		job := claim(t, c)

		if _, err := c.Heartbeat(f.ctx, job); err != nil || failures.Load() != 0 {
			t.Fatalf("a recorded heartbeat: %v, %d failures reported", err, failures.Load())
		}
		undo := failHeartbeatWrites(t, f)
		_, err := c.Heartbeat(f.ctx, job)
		wantStatus(t, err, http.StatusInternalServerError)
		if n := failures.Load(); n != 1 {
			t.Fatalf("failures reported = %d, want 1", n)
		}
		undo()

		bad := *job
		bad.Token = job.Token + "x"
		_, err = c.Heartbeat(f.ctx, &bad)
		wantStatus(t, err, http.StatusUnauthorized)
		if resp, err := c.Heartbeat(f.ctx, job); err != nil || resp.Stop {
			t.Fatalf("heartbeat after the failure: %+v, %v", resp, err)
		}
		if n := failures.Load(); n != 1 {
			t.Errorf("failures reported = %d, want still 1", n)
		}
	})
}
