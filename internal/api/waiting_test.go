package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// A run of the built-in pool says why it may wait long only when the
// server runs no built-in worker: while the built-in workers of a server
// that has them start (the demo's first run), it says nothing.
func TestWaitingForBuiltinWorkers(t *testing.T) {
	for _, c := range []struct {
		workers int
		want    string
	}{
		{0, "no built-in worker is running (the server runs with --builtin-workers 0?) and the stack names no worker pool"},
		{2, ""},
	} {
		e := newRBACEnv(t, func(a *api.API) { a.BuiltinWorkers = c.workers })
		e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "web", "repository": pinnedRepo}), http.StatusCreated, nil)
		var rn apiv1.Run
		e.must(e.do("POST", "/api/v1/stacks/web/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &rn)
		if rn.State != "READY" || rn.WaitingFor != c.want {
			t.Errorf("%d built-in workers: run %s waiting for %q, want %q", c.workers, rn.State, rn.WaitingFor, c.want)
		}
	}
}

// A run needing a worker feature (a targeted run: "targets") that no
// connected worker of its pool has (workers of an older release) says so,
// rather than nothing: the claim would never give it to them. The other
// runs of the pool, and the pool's answer, are not confused by it.
func TestWaitingForWorkerFeatures(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newRBACEnvOn(t, d)
		ctx := context.Background()
		e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": "pool1"}), http.StatusCreated, nil)
		e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "web", "repository": pinnedRepo, "worker_pool": "pool1"}), http.StatusCreated, nil)
		targeted, err := e.runs.Create(ctx, run.New{StackID: "web", Type: run.Tracked, Targets: []string{"files_bucket.data"}, TriggeredBy: "test"})
		if err != nil {
			t.Fatal(err)
		}
		var plain apiv1.Run
		e.must(e.do("POST", "/api/v1/stacks/web/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &plain)

		check := func(when, wantTargeted, wantPlain string) {
			t.Helper()
			var one apiv1.Run
			e.must(e.do("GET", "/api/v1/runs/"+targeted.ID, nil), http.StatusOK, &one)
			if one.WaitingFor != wantTargeted {
				t.Errorf("%s: the targeted run (%s) waits for %q, want %q", when, one.State, one.WaitingFor, wantTargeted)
			}
			var list apiv1.List[apiv1.Run]
			e.must(e.do("GET", "/api/v1/runs?stack=web", nil), http.StatusOK, &list)
			if len(list.Items) != 2 {
				t.Fatalf("%s: runs = %+v", when, list.Items)
			}
			for _, r := range list.Items {
				want := map[string]string{targeted.ID: wantTargeted, plain.ID: wantPlain}[r.ID]
				if r.WaitingFor != want {
					t.Errorf("%s: in the list, run %s (targets %v) waits for %q, want %q", when, r.ID, r.Targets, r.WaitingFor, want)
				}
			}
		}
		check("no worker", "no worker in pool pool1", "no worker in pool pool1")

		// A worker of a release before targeted runs: it names no features.
		reg := workerapi.NewRegistry(d)
		if _, _, err := reg.Register(ctx, "pool1", workerapi.RegisterRequest{Name: "old", Version: workerapi.Version}, nil); err != nil {
			t.Fatal(err)
		}
		check("an old worker", "no worker in pool pool1 supports targeted runs (features: targets); upgrade the pool's workers", "")

		// An upgraded worker joins: the targeted run waits for nothing.
		if _, _, err := reg.Register(ctx, "pool1", workerapi.RegisterRequest{Name: "new", Version: workerapi.Version, Features: workerapi.Features}, nil); err != nil {
			t.Fatal(err)
		}
		check("an upgraded worker", "", "")
	})
}

// A pool's workers show the release each reported at register (in its
// tools, under "gantry"), on both databases; workers of releases that did
// not report it have none: so an operator sees which workers are old.
func TestWorkersShowRelease(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newRBACEnvOn(t, d)
		ctx := context.Background()
		e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": "pool1"}), http.StatusCreated, nil)
		reg := workerapi.NewRegistry(d)
		for _, w := range []workerapi.RegisterRequest{
			{Name: "new", Version: workerapi.Version, Tools: map[string]string{workerapi.ToolGantry: "dev-3f2a1c9 (2026-11-26T16:00:00Z, modified)"}},
			{Name: "old", Version: workerapi.Version},
		} {
			if _, _, err := reg.Register(ctx, "pool1", w, nil); err != nil {
				t.Fatal(err)
			}
		}
		var list apiv1.List[apiv1.Worker]
		e.must(e.do("GET", "/api/v1/worker-pools/pool1/workers", nil), http.StatusOK, &list)
		got := map[string]string{}
		for _, w := range list.Items {
			got[w.Name] = w.Version
		}
		if len(got) != 2 || got["new"] != "dev-3f2a1c9 (2026-11-26T16:00:00Z, modified)" || got["old"] != "" {
			t.Errorf("workers' versions = %q", got)
		}
	})
}
