package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// newPoolEnv is newAPIEnv with the worker pool service wired in, logging
// everything (to check that no token is logged). It also returns the worker
// registry, to register workers as `gantry worker` does. Without pools the
// API runs without the pool service.
func newPoolEnv(t *testing.T, withPools bool) (*apiEnv, *workerpool.Service, *workerapi.Registry) {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	hub := events.NewHub()
	pools := workerpool.NewService(d, spaces, hub)
	e := &apiEnv{t: t, stacks: stack.NewService(d, box), runs: run.NewService(d, hub, box, log),
		state: state.NewService(d, box), logs: logs}
	keys := auth.NewKeys(d)
	if e.token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	a := &api.API{Spaces: spaces, Stacks: e.stacks, Runs: e.runs, State: e.state, Keys: keys, Log: log}
	if withPools {
		a.Pools = pools
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(httpx.Adapter{Log: log}.Recover(mux)))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e, pools, workerapi.NewRegistry(d)
}

func TestWorkerPoolsAPI(t *testing.T) {
	e, pools, reg := newPoolEnv(t, true)
	ctx := context.Background()

	var created apiv1.WorkerPoolToken
	e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": "eu", "name": "EU", "labels": []string{"b", "a"},
		"description": "private"}), http.StatusCreated, &created)
	if created.ID != "eu" || created.Name != "EU" || created.Space != "root" || strings.Join(created.Labels, ",") != "a,b" ||
		!strings.HasPrefix(created.Token, workerpool.TokenPrefix) || created.CreatedAt.IsZero() {
		t.Fatalf("created = %+v", created)
	}
	token := created.Token
	if got, ok, _ := pools.Authenticate(ctx, token); !ok || got != "eu" {
		t.Fatalf("Authenticate(created token) = %q, %v", got, ok)
	}

	// The token is shown once: never in any other answer.
	for _, path := range []string{"/api/v1/worker-pools", "/api/v1/worker-pools/eu", "/api/v1/worker-pools?space=root"} {
		r := e.do("GET", path, nil)
		e.must(r, http.StatusOK, nil)
		if bytes.Contains(r.body, []byte(token)) || bytes.Contains(r.body, []byte(`"token"`)) {
			t.Errorf("GET %s shows the token: %s", path, r.body)
		}
	}
	var list apiv1.List[apiv1.WorkerPool]
	e.must(e.do("GET", "/api/v1/worker-pools?space=root", nil), http.StatusOK, &list)
	if len(list.Items) != 1 || list.Items[0].ID != "eu" {
		t.Errorf("list = %+v", list)
	}
	e.must(e.do("GET", "/api/v1/worker-pools?space=nope", nil), http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Errorf("list of another space = %+v", list)
	}

	// Bad requests.
	for _, tc := range []struct {
		body   any
		status int
		code   string
	}{
		{map[string]any{"id": "eu"}, http.StatusConflict, "conflict"},
		{map[string]any{"id": "builtin"}, http.StatusBadRequest, "invalid"},
		{map[string]any{"id": "Bad_ID"}, http.StatusBadRequest, "invalid"},
		{map[string]any{}, http.StatusBadRequest, "invalid"},
		{map[string]any{"id": "x", "space": "nope"}, http.StatusBadRequest, "invalid"},
		{map[string]any{"id": "x", "token": "mine"}, http.StatusBadRequest, "invalid"},
	} {
		wantError(t, e.do("POST", "/api/v1/worker-pools", tc.body), tc.status, tc.code)
	}
	wantError(t, e.do("GET", "/api/v1/worker-pools/nope", nil), http.StatusNotFound, "not_found")
	wantError(t, e.send(request{method: "GET", path: "/api/v1/worker-pools"}), http.StatusUnauthorized, "unauthenticated")
	// A pool token is no API key.
	wantError(t, e.send(request{method: "GET", path: "/api/v1/worker-pools", token: token}), http.StatusUnauthorized, "unauthenticated")

	// Update.
	var upd apiv1.WorkerPool
	e.must(e.do("PATCH", "/api/v1/worker-pools/eu", map[string]any{"name": "Europe", "labels": []string{}}), http.StatusOK, &upd)
	if upd.Name != "Europe" || len(upd.Labels) != 0 || upd.Description != "private" || upd.Space != "root" {
		t.Errorf("updated = %+v", upd)
	}
	wantError(t, e.do("PATCH", "/api/v1/worker-pools/eu", map[string]any{"space": "other"}), http.StatusBadRequest, "invalid")

	// Workers: none yet; then one registers with the pool's token.
	var workers apiv1.List[apiv1.Worker]
	e.must(e.do("GET", "/api/v1/worker-pools/eu/workers", nil), http.StatusOK, &workers)
	if len(workers.Items) != 0 {
		t.Errorf("workers = %+v", workers)
	}
	w, _, err := reg.Register(ctx, "eu", workerapi.RegisterRequest{Name: "box-1", Labels: map[string]string{"region": "eu"},
		Tools: map[string]string{"opentofu": "1.10.7"}, Concurrency: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.must(e.do("GET", "/api/v1/worker-pools/eu/workers", nil), http.StatusOK, &workers)
	if len(workers.Items) != 1 {
		t.Fatalf("workers = %+v", workers)
	}
	got := workers.Items[0]
	if got.ID != w.ID || got.Name != "box-1" || got.Status != apiv1.WorkerIdle || got.Labels["region"] != "eu" ||
		got.Tools["opentofu"] != "1.10.7" || got.Concurrency != 2 || got.Jobs == nil || got.RegisteredAt.IsZero() || got.LastSeenAt.IsZero() {
		t.Errorf("worker = %+v", got)
	}

	// Drain.
	r := e.do("POST", "/api/v1/worker-pools/eu/workers/"+w.ID+"/drain", nil)
	e.must(r, http.StatusNoContent, nil)
	e.must(e.do("GET", "/api/v1/worker-pools/eu/workers", nil), http.StatusOK, &workers)
	if len(workers.Items) != 1 || workers.Items[0].Status != apiv1.WorkerDrained {
		t.Errorf("after drain: %+v", workers)
	}
	wantError(t, e.do("POST", "/api/v1/worker-pools/eu/workers/wrk-nope/drain", nil), http.StatusNotFound, "not_found")
	wantError(t, e.do("POST", "/api/v1/worker-pools/nope/workers/"+w.ID+"/drain", nil), http.StatusNotFound, "not_found")
	// A worker of one pool cannot be drained through another.
	wantError(t, e.do("POST", "/api/v1/worker-pools/builtin/workers/"+w.ID+"/drain", nil), http.StatusNotFound, "not_found")

	// The built-in pool.
	bw, _, err := reg.Register(ctx, "", workerapi.RegisterRequest{Name: "server-1", Instance: "srv"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.must(e.do("GET", "/api/v1/worker-pools/builtin/workers", nil), http.StatusOK, &workers)
	if len(workers.Items) != 1 || workers.Items[0].ID != bw.ID || workers.Items[0].Concurrency != 1 {
		t.Errorf("builtin workers = %+v", workers)
	}
	e.must(e.do("POST", "/api/v1/worker-pools/builtin/workers/"+bw.ID+"/drain", nil), http.StatusNoContent, nil)

	// Reset: a new token; the old one no longer authenticates and the
	// workers registered with it are gone.
	var reset apiv1.WorkerPoolToken
	e.must(e.do("POST", "/api/v1/worker-pools/eu/reset", nil), http.StatusOK, &reset)
	if reset.ID != "eu" || reset.Name != "Europe" || !strings.HasPrefix(reset.Token, workerpool.TokenPrefix) || reset.Token == token {
		t.Fatalf("reset = %+v", reset)
	}
	if _, ok, _ := pools.Authenticate(ctx, token); ok {
		t.Errorf("the old token still authenticates after reset")
	}
	if got, ok, _ := pools.Authenticate(ctx, reset.Token); !ok || got != "eu" {
		t.Errorf("Authenticate(new token) = %q, %v", got, ok)
	}
	e.must(e.do("GET", "/api/v1/worker-pools/eu/workers", nil), http.StatusOK, &workers)
	if len(workers.Items) != 0 {
		t.Errorf("workers after reset = %+v", workers)
	}
	wantError(t, e.do("POST", "/api/v1/worker-pools/nope/reset", nil), http.StatusNotFound, "not_found")

	// Delete.
	e.must(e.do("DELETE", "/api/v1/worker-pools/eu", nil), http.StatusNoContent, nil)
	wantError(t, e.do("GET", "/api/v1/worker-pools/eu", nil), http.StatusNotFound, "not_found")
	wantError(t, e.do("DELETE", "/api/v1/worker-pools/eu", nil), http.StatusNotFound, "not_found")

	// No token ever reaches the logs.
	for _, tok := range []string{token, reset.Token} {
		if strings.Contains(e.logs.String(), tok) {
			t.Errorf("the logs hold a pool token:\n%s", e.logs.String())
		}
	}
}

func TestStackWorkerPool(t *testing.T) {
	e, _, _ := newPoolEnv(t, true)
	// root ─┬─ prod (inherits) ── prod-eu (inherits)
	//       ├─ iso (does not inherit)
	//       └─ dev (inherits)
	for _, sp := range []map[string]any{
		{"id": "prod", "inherit": true}, {"id": "prod-eu", "parent": "prod", "inherit": true},
		{"id": "iso"}, {"id": "dev", "inherit": true},
	} {
		e.must(e.do("POST", "/api/v1/spaces", sp), http.StatusCreated, nil)
	}
	e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": "shared"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": "prod-pool", "space": "prod"}), http.StatusCreated, nil)

	// Usable: the pools of the stack's space and of the ancestors it inherits from.
	if st := e.createStack("a", map[string]any{"space": "prod-eu", "worker_pool": "prod-pool"}); st.WorkerPool != "prod-pool" {
		t.Errorf("stack a = %+v", st)
	}
	if st := e.createStack("b", map[string]any{"space": "prod", "worker_pool": "shared"}); st.WorkerPool != "shared" {
		t.Errorf("stack b = %+v", st)
	}
	if st := e.createStack("c", nil); st.WorkerPool != "" {
		t.Errorf("stack c = %+v, want the built-in pool", st)
	}
	// Unusable: a pool of a space the stack's does not inherit from, or none.
	for _, tc := range []map[string]any{
		{"space": "iso", "worker_pool": "shared"},
		{"space": "dev", "worker_pool": "prod-pool"},
		{"space": "root", "worker_pool": "prod-pool"},
		{"space": "prod", "worker_pool": "nope"},
		{"space": "nope", "worker_pool": "shared"},
	} {
		in := map[string]any{"id": "x", "repository": testRepo}
		for k, v := range tc {
			in[k] = v
		}
		er := wantError(t, e.do("POST", "/api/v1/stacks", in), http.StatusBadRequest, "invalid")
		if tc["worker_pool"] != "nope" && tc["space"] != "nope" && !strings.Contains(er.Message, "inherit") {
			t.Errorf("%v: message %q does not explain inheritance", tc, er.Message)
		}
	}
	wantError(t, e.do("GET", "/api/v1/stacks/x", nil), http.StatusNotFound, "not_found")

	// Update: changing the pool, and moving the stack to another space, are checked.
	var st apiv1.Stack
	wantError(t, e.do("PATCH", "/api/v1/stacks/c", map[string]any{"worker_pool": "prod-pool"}), http.StatusBadRequest, "invalid")
	e.must(e.do("PATCH", "/api/v1/stacks/c", map[string]any{"worker_pool": "shared"}), http.StatusOK, &st)
	if st.WorkerPool != "shared" {
		t.Errorf("after update: %+v", st)
	}
	wantError(t, e.do("PATCH", "/api/v1/stacks/c", map[string]any{"space": "iso"}), http.StatusBadRequest, "invalid")
	wantError(t, e.do("PATCH", "/api/v1/stacks/a", map[string]any{"space": "dev"}), http.StatusBadRequest, "invalid")
	e.must(e.do("PATCH", "/api/v1/stacks/a", map[string]any{"space": "prod"}), http.StatusOK, &st)
	if st.Space != "prod" || st.WorkerPool != "prod-pool" {
		t.Errorf("after move: %+v", st)
	}
	e.must(e.do("PATCH", "/api/v1/stacks/a", map[string]any{"space": "iso", "worker_pool": ""}), http.StatusOK, &st)
	if st.Space != "iso" || st.WorkerPool != "" {
		t.Errorf("after move to the built-in pool: %+v", st)
	}
	e.must(e.do("GET", "/api/v1/stacks/b", nil), http.StatusOK, &st)
	if st.WorkerPool != "shared" {
		t.Errorf("GET stack b = %+v", st)
	}

	// A pool in use cannot be deleted.
	er := wantError(t, e.do("DELETE", "/api/v1/worker-pools/shared", nil), http.StatusConflict, "conflict")
	if !strings.Contains(er.Message, "used by 2 stacks") {
		t.Errorf("message %q", er.Message)
	}
	e.must(e.do("PATCH", "/api/v1/stacks/b", map[string]any{"worker_pool": ""}), http.StatusOK, nil)
	e.must(e.do("PATCH", "/api/v1/stacks/c", map[string]any{"worker_pool": ""}), http.StatusOK, nil)
	e.must(e.do("DELETE", "/api/v1/worker-pools/shared", nil), http.StatusNoContent, nil)
}

func TestWorkerPoolsUnavailable(t *testing.T) {
	e, _, _ := newPoolEnv(t, false)
	wantError(t, e.do("GET", "/api/v1/worker-pools", nil), http.StatusServiceUnavailable, "unavailable")
	wantError(t, e.do("GET", "/api/v1/worker-pools/builtin/workers", nil), http.StatusServiceUnavailable, "unavailable")
	wantError(t, e.do("POST", "/api/v1/stacks", map[string]any{"id": "s", "repository": testRepo, "worker_pool": "eu"}),
		http.StatusServiceUnavailable, "unavailable")
	e.createStack("s", nil) // the built-in pool needs no pool service
}
