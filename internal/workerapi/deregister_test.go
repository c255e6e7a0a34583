package workerapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// A worker that says goodbye is forgotten at once: gone from its pool's
// workers and its connected count, its token refused. A run it still
// held (its end never reported) fails now rather than a worker timeout
// later. Other workers are not touched.
func TestDeregister(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		pools := workerpool.NewService(d, space.NewService(d), events.NewHub())
		listed := func(workerID string) bool { return poolStatus(t, f, pools, workerID) != "absent" }
		connected := func() int {
			t.Helper()
			n, err := pools.Connected(f.ctx, "gpu")
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		leaving, lr := f.worker(t, gpuToken)
		staying, sr := f.worker(t, gpuToken)
		if !listed(lr.WorkerID) || !listed(sr.WorkerID) || connected() != 2 {
			t.Fatalf("before: listed %v %v, connected %d", listed(lr.WorkerID), listed(sr.WorkerID), connected())
		}
		if err := leaving.Deregister(f.ctx); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		if listed(lr.WorkerID) || !listed(sr.WorkerID) || connected() != 1 {
			t.Fatalf("after: listed %v %v, connected %d; want only the worker that stayed", listed(lr.WorkerID), listed(sr.WorkerID), connected())
		}
		_, err := leaving.Claim(f.ctx, 0)
		wantStatus(t, err, http.StatusUnauthorized)
		wantStatus(t, leaving.Deregister(f.ctx), http.StatusUnauthorized) // said once
		if _, err := staying.Claim(f.ctx, 0); err != nil {
			t.Fatalf("the other worker's claim: %v", err)
		}

		// A worker that leaves a run behind: the run fails at once.
		st := f.stack(t, func(s *stack.Stack) { s.WorkerPool = "gpu" })
		r := f.create(t, st.ID, run.Tracked)
		job := claim(t, staying)
		if job.RunID != r.ID {
			t.Fatalf("claimed %s, want %s", job.RunID, r.ID)
		}
		if err := staying.Deregister(f.ctx); err != nil {
			t.Fatalf("Deregister with a run: %v", err)
		}
		got := f.wantState(t, r.ID, run.Failed)
		if want := "worker " + sr.WorkerID + " (test-worker) stopped without reporting how the job ended"; got.Reason != want {
			t.Errorf("reason = %q, want %q", got.Reason, want)
		}
		if listed(sr.WorkerID) || connected() != 0 {
			t.Errorf("the worker that left a run is still listed (%v) or connected (%d)", listed(sr.WorkerID), connected())
		}

		// Only a worker token says goodbye.
		for _, token := range []string{"", gpuToken, job.Token, "gwt_wrk-nobody_secret"} {
			req, _ := http.NewRequest("POST", f.url+workerapi.Prefix+"/deregister", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("deregister with token %q: HTTP %d, want 401", token, resp.StatusCode)
			}
		}
	})
}

// A server of a release before the goodbye answers 404 (or 405): the
// client says so with Unsupported, which the worker takes as nothing to
// worry about.
func TestDeregisterOlderServer(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusMethodNotAllowed} {
		mux := http.NewServeMux()
		mux.HandleFunc("POST "+workerapi.Prefix+"/register", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"worker_id":"wrk-1","token":"gwt_wrk-1_secret","pool":""}`))
		})
		mux.HandleFunc(workerapi.Prefix+"/deregister", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no such route", status)
		})
		srv := httptest.NewServer(mux)
		c := workerapi.NewClient(srv.URL, "gpt_builtin_x")
		if err := c.Deregister(t.Context()); err != nil {
			t.Errorf("Deregister before Register = %v, want nil (nothing to say)", err)
		}
		if _, err := c.Register(t.Context(), workerapi.RegisterRequest{Name: "w", Version: workerapi.Version}); err != nil {
			t.Fatal(err)
		}
		err := c.Deregister(t.Context())
		if !workerapi.Unsupported(err) || !strings.Contains(err.Error(), "server answered") {
			t.Errorf("Deregister against an older server (%d) = %v, want Unsupported", status, err)
		}
		srv.Close()
	}
	if workerapi.Unsupported(&workerapi.StatusError{Status: http.StatusUnauthorized}) {
		t.Error("Unsupported(401) = true")
	}
}

// Registry.Remove keeps a worker that still holds a run in a job in
// progress, drained (no new job), and removes it once the run ended.
func TestRegistryRemoveKeepsAWorkerHoldingARun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, reg := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		job := claim(t, c)
		removed, err := f.handler.Registry.Remove(f.ctx, reg.WorkerID)
		if err != nil || removed {
			t.Fatalf("Remove with a run held = %v, %v; want kept", removed, err)
		}
		if drained, err := f.handler.Registry.Drained(f.ctx, reg.WorkerID); err != nil || !drained {
			t.Fatalf("Drained = %v, %v; want true", drained, err)
		}
		if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "x"}); err != nil {
			t.Fatal(err)
		}
		f.wantState(t, r.ID, run.Failed)
		if removed, err := f.handler.Registry.Remove(f.ctx, reg.WorkerID); err != nil || !removed {
			t.Fatalf("Remove after the run ended = %v, %v; want removed", removed, err)
		}
	})
}

// A worker stopping while its jobs run on says it drains: listed DRAINED,
// no longer counted as connected (a waiting run says so), given no new
// job; the run it holds goes on, and its token still works for it.
func TestDrain(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		pools := workerpool.NewService(d, space.NewService(d), events.NewHub())
		status := func(workerID string) string { return poolStatus(t, f, pools, workerID) }
		draining, dr := f.worker(t, gpuToken)
		st := f.stack(t, func(s *stack.Stack) { s.WorkerPool = "gpu" })
		r := f.create(t, st.ID, run.Tracked)
		if job := claim(t, draining); job.RunID != r.ID {
			t.Fatalf("claimed %s, want %s", job.RunID, r.ID)
		}
		if err := draining.Drain(f.ctx); err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if got := status(dr.WorkerID); got != workerpool.Drained {
			t.Errorf("status after Drain = %s, want %s", got, workerpool.Drained)
		}
		if n, err := pools.Connected(f.ctx, "gpu"); err != nil || n != 0 {
			t.Errorf("connected = %d, %v; want the draining worker not counted", n, err)
		}
		f.create(t, f.stack(t, func(s *stack.Stack) { s.WorkerPool = "gpu" }).ID, run.Tracked)
		if job, err := draining.Claim(f.ctx, 0); err == nil && job != nil {
			t.Errorf("a draining worker was given run %s", job.RunID)
		}
		if got := f.get(t, r.ID); got.State != run.Preparing || got.WorkerID != dr.WorkerID {
			t.Errorf("the run it holds: %s by %s, want it going on", got.State, got.WorkerID)
		}
		_, other := f.worker(t, gpuToken)
		if got := status(other.WorkerID); got == workerpool.Drained {
			t.Errorf("another worker of the pool is %s", got)
		}
	})
}

// poolStatus is the status of a worker in the list of pool gpu's workers,
// "absent" when it is not listed.
func poolStatus(t *testing.T, f *fixture, pools *workerpool.Service, workerID string) string {
	t.Helper()
	ws, err := pools.Workers(f.ctx, "gpu")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.ID == workerID {
			return w.Status
		}
	}
	return "absent"
}
