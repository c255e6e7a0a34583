package workerapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// Pool tokens the test server knows.
const (
	builtinToken = "pool-token-builtin"
	gpuToken     = "pool-token-gpu"
)

// patience bounds waits for things that should happen at once.
const patience = 20 * time.Second

// fixture is a real Handler over a real database, served by httptest.
type fixture struct {
	ctx      context.Context
	d        *db.DB
	stacks   *stack.Service
	runs     *run.Service
	handler  *workerapi.Handler
	draining atomic.Bool
	url      string
	n        int
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub := events.NewHub()
	f := &fixture{ctx: context.Background(), d: d, stacks: stack.NewService(d, box), runs: run.NewService(d, hub, box, log)}
	if err := space.NewService(d).EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	ensurePool(t, d, "gpu", "")
	f.handler = &workerapi.Handler{
		Runs: f.runs, Stacks: f.stacks, Registry: workerapi.NewRegistry(d), Hub: hub, Log: log,
		MaxClaimWait: patience,
		PoolForToken: func(_ context.Context, token string) (string, bool, error) {
			pool, ok := map[string]string{builtinToken: "", gpuToken: "gpu"}[token]
			return pool, ok, nil
		},
		Draining: f.draining.Load,
	}
	mux := http.NewServeMux()
	f.handler.Routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// worker returns a client registered with the pool token.
func (f *fixture) worker(t *testing.T, poolToken string) (*workerapi.Client, workerapi.RegisterResponse) {
	t.Helper()
	c := workerapi.NewClient(f.url+"/", poolToken)
	resp, err := c.Register(f.ctx, workerapi.RegisterRequest{Name: "test-worker", Version: workerapi.Version})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return c, resp
}

// stack creates a stack; mod may change it first.
func (f *fixture) stack(t *testing.T, mod func(*stack.Stack)) stack.Stack {
	t.Helper()
	f.n++
	st := stack.Stack{ID: fmt.Sprintf("st-%d", f.n), Repository: "https://example.com/infra.git"}
	if mod != nil {
		mod(&st)
	}
	ensurePool(t, f.d, st.WorkerPool, st.Space)
	got, err := f.stacks.Create(f.ctx, st)
	if err != nil {
		t.Fatalf("create stack: %v", err)
	}
	return got
}

func (f *fixture) create(t *testing.T, stackID, typ string) run.Run {
	t.Helper()
	r, err := f.runs.Create(f.ctx, run.New{StackID: stackID, Type: typ, TriggeredBy: "alice", CommitSHA: "0123abcd"})
	if err != nil {
		t.Fatalf("create run: %v", err)
	}
	return r
}

// claim claims a job at once; it fails the test when there is none.
func claim(t *testing.T, c *workerapi.Client) *workerapi.Job {
	t.Helper()
	job, err := c.Claim(context.Background(), 0)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if job == nil {
		t.Fatal("Claim found no job")
	}
	return job
}

func (f *fixture) get(t *testing.T, runID string) run.Run {
	t.Helper()
	r, err := f.runs.Get(f.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *fixture) wantState(t *testing.T, runID, state string) run.Run {
	t.Helper()
	r, err := f.runs.Get(f.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != state {
		t.Fatalf("run %s is %s, want %s (reason %q)", runID, r.State, state, r.Reason)
	}
	return r
}

// wantStatus fails the test unless err is a StatusError with status.
func wantStatus(t *testing.T, err error, status int) *workerapi.StatusError {
	t.Helper()
	var se *workerapi.StatusError
	if !errors.As(err, &se) || se.Status != status {
		t.Fatalf("error = %v, want HTTP %d", err, status)
	}
	return se
}

// ensurePool makes the row of worker pool id in space spaceID ("" for
// root) unless it exists: a stack names only a pool that exists.
func ensurePool(t *testing.T, d *db.DB, id, spaceID string) {
	t.Helper()
	if id == "" {
		return
	}
	if spaceID == "" {
		spaceID = "root"
	}
	if _, err := d.Exec(context.Background(), `INSERT INTO worker_pools (id, name, space_id, token_hash, created_at, updated_at)
		VALUES ($1, $1, $2, '', 1, 1) ON CONFLICT (id) DO NOTHING`, id, spaceID); err != nil {
		t.Fatalf("pool %s: %v", id, err)
	}
}

// putArtifact uploads data as an artifact of job.
func putArtifact(c *workerapi.Client, ctx context.Context, job *workerapi.Job, name string, data []byte) error {
	return c.PutArtifact(ctx, job, name, bytes.NewReader(data), int64(len(data)))
}
