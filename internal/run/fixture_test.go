package run_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// worker is the worker id the fixture claims with.
const worker = "wrk-test"

// fixture holds the services of one database.
type fixture struct {
	ctx    context.Context
	d      *db.DB
	hub    *events.Hub
	spaces *space.Service
	stacks *stack.Service
	runs   *run.Service
	n      int // stacks made so far
}

func testBox(t *testing.T) *secrets.Box {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box := testBox(t)
	hub := events.NewHub()
	f := &fixture{
		ctx: context.Background(), d: d, hub: hub,
		spaces: space.NewService(d), stacks: stack.NewService(d, box),
		runs: run.NewService(d, hub, box, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}
	if err := f.spaces.EnsureRoot(f.ctx); err != nil {
		t.Fatalf("EnsureRoot: %v", err)
	}
	return f
}

// stack creates a stack named st-N; mod may change it first.
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

// isolated creates a stack in a worker pool of its own, so that claims of
// that pool see only its runs.
func (f *fixture) isolated(t *testing.T, autodeploy bool) stack.Stack {
	t.Helper()
	return f.stack(t, func(s *stack.Stack) {
		s.WorkerPool = "pool-" + s.ID
		s.Autodeploy = autodeploy
	})
}

func (f *fixture) create(t *testing.T, stackID, typ string) run.Run {
	t.Helper()
	in := run.New{StackID: stackID, Type: typ, TriggeredBy: "alice"}
	if typ == run.Task {
		in.Command = "tofu state list"
	}
	r, err := f.runs.Create(f.ctx, in)
	if err != nil {
		t.Fatalf("create %s run: %v", typ, err)
	}
	return r
}

func (f *fixture) claim(t *testing.T, pool, workerID string) *run.Claimed {
	t.Helper()
	c, err := f.runs.Claim(f.ctx, pool, workerID)
	if err != nil {
		t.Fatalf("Claim(%q): %v", pool, err)
	}
	if c == nil {
		t.Fatalf("Claim(%q) found nothing", pool)
	}
	return c
}

func (f *fixture) get(t *testing.T, runID string) run.Run {
	t.Helper()
	r, err := f.runs.Get(f.ctx, runID)
	if err != nil {
		t.Fatalf("Get(%s): %v", runID, err)
	}
	return r
}

// wantState fails the test unless the stored run is in state.
func (f *fixture) wantState(t *testing.T, runID, state string) run.Run {
	t.Helper()
	r := f.get(t, runID)
	if r.State != state {
		t.Fatalf("run %s is %s, want %s (reason %q)", runID, r.State, state, r.Reason)
	}
	return r
}

func (f *fixture) phase(t *testing.T, runID, to string) {
	t.Helper()
	if _, err := f.runs.Phase(f.ctx, runID, worker, to, "", ""); err != nil {
		t.Fatalf("Phase(%s): %v", to, err)
	}
}

func (f *fixture) planned(t *testing.T, runID string, changes, autodeploy bool) string {
	t.Helper()
	next, _, err := f.runs.Planned(f.ctx, runID, worker, changes, run.Delta{Add: 1}, autodeploy)
	if err != nil {
		t.Fatalf("Planned: %v", err)
	}
	return next
}

// handOff saves a workspace and hands the planned run off.
func (f *fixture) handOff(t *testing.T, runID string) {
	t.Helper()
	if err := f.runs.PutArtifact(f.ctx, runID, run.ArtifactWorkspace, []byte("workspace tarball")); err != nil {
		t.Fatalf("PutArtifact: %v", err)
	}
	if _, err := f.runs.HandOff(f.ctx, runID, worker); err != nil {
		t.Fatalf("HandOff: %v", err)
	}
}

// stop stops a running run as a person and its worker would: the person
// asks, the worker learns it from its heartbeat and reports the end of its
// job (RUNS.md: the run is then STOPPED, whether the server recorded that
// at once or at the worker's report).
func (f *fixture) stop(t *testing.T, runID, actor string) run.Run {
	t.Helper()
	if _, err := f.runs.Stop(f.ctx, runID, actor); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	b, err := f.runs.Heartbeat(f.ctx, runID, worker)
	if err != nil || !b.Stop || !strings.Contains(b.Reason, actor) || b.State != run.Stopped {
		t.Fatalf("heartbeat after stop = %+v %v; want stop, naming %s, ending STOPPED", b, err, actor)
	}
	if r := f.get(t, runID); !run.Terminal(r.State) {
		if _, err := f.runs.Finish(f.ctx, runID, worker, true, ""); err != nil {
			t.Fatalf("the stopped worker's Finish: %v", err)
		}
	}
	return f.wantState(t, runID, run.Stopped)
}

// reachable lists the states runIn can put a run in.
var reachable = []string{
	run.Queued, run.Ready, run.Preparing, run.Initializing, run.Planning, run.Performing,
	run.Unconfirmed, run.Confirmed, run.Applying,
	run.Finished, run.Failed, run.Discarded, run.Canceled, run.Stopped,
}

// runIn returns a run, on a stack and pool of its own, driven into state
// through the service's own operations, and the claim of its job (nil if
// it was never claimed).
func (f *fixture) runIn(t *testing.T, state string) (run.Run, *run.Claimed) {
	t.Helper()
	st := f.isolated(t, state == run.Applying)
	typ := run.Tracked
	if state == run.Performing {
		typ = run.Task
	}
	if state == run.Queued {
		f.create(t, st.ID, run.Tracked) // holds the stack
	}
	r := f.create(t, st.ID, typ)
	var c *run.Claimed
	step := func(s string) {
		t.Helper()
		switch s {
		case "claim":
			c = f.claim(t, st.WorkerPool, worker)
		case "cancel":
			if _, err := f.runs.Cancel(f.ctx, r.ID, "bob"); err != nil {
				t.Fatal(err)
			}
		case "stop":
			f.stop(t, r.ID, "bob")
		case "fail":
			if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "boom"); err != nil {
				t.Fatal(err)
			}
		case "confirm":
			if _, err := f.runs.Confirm(f.ctx, r.ID, "bob"); err != nil {
				t.Fatal(err)
			}
		case "discard":
			if _, err := f.runs.Discard(f.ctx, r.ID, "bob"); err != nil {
				t.Fatal(err)
			}
		case "handoff":
			f.handOff(t, r.ID)
		case "no changes":
			f.planned(t, r.ID, false, false)
		case "autodeploy":
			f.planned(t, r.ID, true, true)
		case "save":
			if next := f.planned(t, r.ID, true, false); next != run.NextSave {
				t.Fatalf("Planned said %q, want %q", next, run.NextSave)
			}
		default:
			f.phase(t, r.ID, s)
		}
	}
	paths := map[string][]string{
		run.Queued:       nil,
		run.Ready:        nil,
		run.Canceled:     {"cancel"},
		run.Preparing:    {"claim"},
		run.Stopped:      {"claim", "stop"},
		run.Failed:       {"claim", "fail"},
		run.Initializing: {"claim", run.Initializing},
		run.Performing:   {"claim", run.Initializing, run.Performing},
		run.Planning:     {"claim", run.Initializing, run.Planning},
		run.Finished:     {"claim", run.Initializing, run.Planning, "no changes"},
		run.Applying:     {"claim", run.Initializing, run.Planning, "autodeploy"},
		run.Unconfirmed:  {"claim", run.Initializing, run.Planning, "save", "handoff"},
		run.Confirmed:    {"claim", run.Initializing, run.Planning, "save", "handoff", "confirm"},
		run.Discarded:    {"claim", run.Initializing, run.Planning, "save", "handoff", "discard"},
	}
	path, ok := paths[state]
	if !ok {
		t.Fatalf("runIn: cannot reach %s", state)
	}
	for _, s := range path {
		step(s)
	}
	if r = f.get(t, r.ID); r.State != state {
		t.Fatalf("runIn(%s): run is %s", state, r.State)
	}
	return r, c
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("error = %v (kind %s), want kind %s", err, errs.KindOf(err), k)
	}
}

func runIDs(list []run.Run) []string {
	out := []string{}
	for _, r := range list {
		out = append(out, r.ID)
	}
	return out
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
