package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// recoveryFixture is the part of a server that restart recovery and the
// reaper use, over a real database.
type recoveryFixture struct {
	ctx    context.Context
	s      *Server
	stacks *stack.Service
	log    *bytes.Buffer
}

// stackSeq numbers the fixtures' stacks (one database may hold several
// fixtures').
var stackSeq atomic.Int64

func newRecoveryFixture(t *testing.T, d *db.DB) *recoveryFixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	hub := events.NewHub()
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{DataDir: t.TempDir(), WorkerTimeout: 10 * time.Second}, log: log, db: d, hub: hub,
		runs: run.NewService(d, hub, box, log), registry: workerapi.NewRegistry(d), pools: workerpool.NewService(d, spaces, hub)}
	return &recoveryFixture{ctx: context.Background(), s: s, stacks: stack.NewService(d, box), log: &logs}
}

// held registers a worker of pool (instance: the server instance it names)
// and makes it claim a new run of a new stack of that pool.
func (f *recoveryFixture) held(t *testing.T, pool, instance string) (workerID string, r run.Run) {
	t.Helper()
	if pool != "" {
		// The pool must exist for a stack to name it; a second call for
		// the same pool finds it there.
		if _, err := f.s.pools.Get(f.ctx, pool); errs.Is(err, errs.NotFound) {
			if _, _, err := f.s.pools.Create(f.ctx, workerpool.Pool{ID: pool, Space: "root"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := f.stacks.Create(f.ctx, stack.Stack{ID: fmt.Sprintf("st-%d", stackSeq.Add(1)), Repository: "https://example.com/infra.git", WorkerPool: pool})
	if err != nil {
		t.Fatal(err)
	}
	w, _, err := f.s.registry.Register(f.ctx, pool, workerapi.RegisterRequest{Name: "w", Version: workerapi.Version, Instance: instance}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err = f.s.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Tracked, TriggeredBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	cl, err := f.s.runs.Claim(f.ctx, pool, w.ID)
	if err != nil || cl == nil || cl.Run.ID != r.ID {
		t.Fatalf("Claim = %+v, %v; want run %s", cl, err, r.ID)
	}
	return w.ID, cl.Run
}

func (f *recoveryFixture) state(t *testing.T, runID string) run.Run {
	t.Helper()
	r, err := f.s.runs.Get(f.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// An instance-id file left empty or blank (a crash while an older server
// wrote it in place) or holding no valid id is replaced by a new id,
// written whole; recovery then fails no run and forgets no worker: private
// workers, which have no instance, are never taken for the server's own.
// A valid id still recovers the runs of its built-in workers.
func TestRecoverInstanceBlankID(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		for _, content := range []string{"", " \n", "srv bad id\n", "\x00\x00"} {
			f := newRecoveryFixture(t, d)
			worker, r := f.held(t, "pool-p", "")
			path := filepath.Join(f.s.cfg.DataDir, instanceFile)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := f.s.recoverInstance(f.ctx); err != nil {
				t.Fatalf("%q: recoverInstance: %v", content, err)
			}
			if got := f.state(t, r.ID); got.State != run.Preparing {
				t.Errorf("%q: the private worker's run is %s (%s), want it left PREPARING", content, got.State, got.Reason)
			}
			if _, err := f.s.registry.Pool(f.ctx, worker); err != nil {
				t.Errorf("%q: the private worker was forgotten: %v", content, err)
			}
			raw, err := os.ReadFile(path)
			if err != nil || strings.TrimSpace(string(raw)) != f.s.instance || !validInstance(f.s.instance) {
				t.Errorf("%q: instance-id holds %q (%v), instance %q: want the new valid id", content, raw, err, f.s.instance)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%q: instance-id mode %v (%v), want 0600", content, fi.Mode().Perm(), err)
			}
			if tmp, _ := filepath.Glob(filepath.Join(f.s.cfg.DataDir, ".instance-id*")); len(tmp) != 0 {
				t.Errorf("%q: temporary files left: %v", content, tmp)
			}
			if !strings.Contains(f.log.String(), "held no valid id") {
				t.Errorf("%q: no warning about the replaced id:\n%s", content, f.log.String())
			}
		}

		// A valid id: its built-in workers' runs fail, the others' do not.
		f := newRecoveryFixture(t, d)
		builtin, lost := f.held(t, "", "srv-test")
		private, kept := f.held(t, "pool-x", "srv-test")
		if err := os.WriteFile(filepath.Join(f.s.cfg.DataDir, instanceFile), []byte("srv-test\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := f.s.recoverInstance(f.ctx); err != nil {
			t.Fatal(err)
		}
		if got := f.state(t, lost.ID); got.State != run.Failed || !strings.Contains(got.Reason, "the server restarted") {
			t.Errorf("the built-in worker's run is %s (%q), want FAILED: the server restarted", got.State, got.Reason)
		}
		if got := f.state(t, kept.ID); got.State != run.Preparing {
			t.Errorf("the private worker's run is %s (%q), want PREPARING", got.State, got.Reason)
		}
		if _, err := f.s.registry.Pool(f.ctx, builtin); err == nil {
			t.Error("the lost built-in worker is still registered")
		}
		if _, err := f.s.registry.Pool(f.ctx, private); err != nil {
			t.Errorf("the private worker was forgotten: %v", err)
		}
	})
}
