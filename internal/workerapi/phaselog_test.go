package workerapi_test

import (
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// A phase report's log_offset marks where the phase begins in the log; a
// negative one is refused with 400.
func TestPhaseLogOffset(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Proposed)
		job := claim(t, c)
		neg := int64(-1)
		se := wantStatus(t, c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Initializing, LogOffset: &neg}), 400)
		if !strings.Contains(se.Error(), "log_offset") {
			t.Errorf("negative log_offset: %v, want a message naming it", se)
		}
		if err := c.AppendLog(f.ctx, job, job.LogOffset, []byte("cloned\n")); err != nil {
			t.Fatal(err)
		}
		at := job.LogOffset + 7
		if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Initializing, LogOffset: &at}); err != nil {
			t.Fatal(err)
		}
		if err := c.AppendLog(f.ctx, job, at, []byte("init\n")); err != nil {
			t.Fatal(err)
		}
		got, _, ok, err := f.runs.PhaseLog(f.ctx, r.ID, run.Initializing, 100)
		if err != nil || !ok || string(got) != "init\n" {
			t.Fatalf("INITIALIZING log = %q, %v, %v; want %q", got, ok, err, "init\n")
		}
	})
}
