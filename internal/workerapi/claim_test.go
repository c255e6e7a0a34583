package workerapi_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

func TestClaimLongPoll(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, reg := f.worker(t, builtinToken)
		st := f.stack(t, nil)

		ctx, cancel := context.WithTimeout(f.ctx, 2*patience)
		defer cancel()
		type result struct {
			job *workerapi.Job
			err error
			at  time.Time
		}
		got := make(chan result, 1)
		go func() {
			job, err := c.Claim(ctx, patience)
			got <- result{job, err, time.Now()}
		}()
		// Wait until the claim reached the server (it records the worker
		// as seen before it starts waiting).
		for {
			var seen bool
			if err := d.QueryRow(f.ctx, `SELECT last_seen_at > registered_at FROM workers WHERE id = $1`, reg.WorkerID).Scan(&seen); err != nil {
				t.Fatal(err)
			}
			if seen {
				break
			}
			select {
			case res := <-got:
				t.Fatalf("Claim returned before any run existed: %+v, %v", res.job, res.err)
			case <-ctx.Done():
				t.Fatal("the claim never reached the server")
			case <-time.After(5 * time.Millisecond):
			}
		}
		created := time.Now()
		r := f.create(t, st.ID, run.Tracked)
		select {
		case res := <-got:
			if res.err != nil || res.job == nil || res.job.RunID != r.ID {
				t.Fatalf("Claim = %+v, %v; want the job of run %s", res.job, res.err, r.ID)
			}
			if waited := res.at.Sub(created); waited > patience/2 {
				t.Fatalf("Claim returned %v after the run was created, with %v of wait left: the long poll was not woken", waited, patience)
			}
		case <-ctx.Done():
			t.Fatal("Claim did not return")
		}
		f.wantState(t, r.ID, run.Preparing)

		// A wait longer than the server's maximum is cut to the maximum.
		f.handler.MaxClaimWait = 50 * time.Millisecond
		if job, err := c.Claim(ctx, time.Hour); err != nil || job != nil {
			t.Fatalf("Claim with nothing to do = %+v, %v", job, err)
		}
		if ctx.Err() != nil {
			t.Fatal("Claim waited longer than MaxClaimWait")
		}
		// A draining server hands out no work.
		f.create(t, f.stack(t, nil).ID, run.Tracked)
		f.draining.Store(true)
		if job, err := c.Claim(ctx, 0); err != nil || job != nil {
			t.Fatalf("Claim while draining = %+v, %v", job, err)
		}
		f.draining.Store(false)
		claim(t, c)
	})
}

// A claim records the worker as seen only when it was last seen at least
// SeenEvery ago: long polls do not write to the database each time.
func TestClaimSeenEvery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, reg := f.worker(t, builtinToken)
		lastSeen := func() int64 {
			t.Helper()
			var at int64
			if err := d.QueryRow(f.ctx, `SELECT last_seen_at FROM workers WHERE id = $1`, reg.WorkerID).Scan(&at); err != nil {
				t.Fatal(err)
			}
			return at
		}
		f.handler.SeenEvery = time.Hour
		before := lastSeen()
		if job, err := c.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("Claim = %+v, %v", job, err)
		}
		if got := lastSeen(); got != before {
			t.Fatalf("a worker seen just now was written as seen again (%d -> %d)", before, got)
		}
		f.handler.SeenEvery = 0
		time.Sleep(time.Millisecond)
		if job, err := c.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("Claim = %+v, %v", job, err)
		}
		if got := lastSeen(); got <= before {
			t.Fatalf("a claim did not record the worker as seen (%d -> %d)", before, got)
		}
	})
}

func TestClaimPools(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		builtin, _ := f.worker(t, builtinToken)
		gpu, _ := f.worker(t, gpuToken)
		rg := f.create(t, f.stack(t, func(s *stack.Stack) { s.WorkerPool = "gpu" }).ID, run.Tracked)
		if job, err := builtin.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("built-in worker claimed %+v, %v", job, err)
		}
		rb := f.create(t, f.stack(t, nil).ID, run.Tracked)
		if job, err := gpu.Claim(f.ctx, 0); err != nil || job == nil || job.RunID != rg.ID {
			t.Fatalf("gpu worker claimed %+v, %v; want %s", job, err, rg.ID)
		}
		if job, err := gpu.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("gpu worker claimed %+v, %v; want nothing", job, err)
		}
		if job := claim(t, builtin); job.RunID != rb.ID {
			t.Fatalf("built-in worker claimed %s, want %s", job.RunID, rb.ID)
		}
	})
}

// A worker that does not name the targets feature at register (one built
// before targeted runs, which would plan everything) gets no targeted run;
// a worker that does gets it, and any worker gets the others.
func TestClaimNeedsFeatures(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		old := workerapi.NewClient(f.url+"/", builtinToken)
		if _, err := old.Register(f.ctx, workerapi.RegisterRequest{Name: "old-worker", Version: workerapi.Version}); err != nil {
			t.Fatal(err)
		}
		current := workerapi.NewClient(f.url+"/", builtinToken)
		if _, err := current.Register(f.ctx, workerapi.RegisterRequest{Name: "new-worker", Version: workerapi.Version, Features: workerapi.Features}); err != nil {
			t.Fatal(err)
		}
		targeted, err := f.runs.Create(f.ctx, run.New{StackID: f.stack(t, nil).ID, Type: run.Tracked, TriggeredBy: "alice", CommitSHA: "0123abcd",
			Targets: []string{"terraform_data.a"}})
		if err != nil {
			t.Fatal(err)
		}
		if job, err := old.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("a worker without the targets feature claimed %+v (%v)", job, err)
		}
		if job := claim(t, current); job.RunID != targeted.ID || !slices.Equal(job.Targets, []string{"terraform_data.a"}) {
			t.Fatalf("claimed %s with targets %v, want %s", job.RunID, job.Targets, targeted.ID)
		}
		plain := f.create(t, f.stack(t, nil).ID, run.Tracked)
		if job := claim(t, old); job.RunID != plain.ID {
			t.Fatalf("the old worker claimed %s, want %s", job.RunID, plain.ID)
		}
	})
}
