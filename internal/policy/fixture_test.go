package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const worker = "wrk-test"

type fixture struct {
	ctx      context.Context
	d        *db.DB
	spaces   *space.Service
	stacks   *stack.Service
	runs     *run.Service
	notify   *notify.Service
	policies *policy.Service
	n        int
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub := events.NewHub()
	f := &fixture{ctx: context.Background(), d: d, spaces: space.NewService(d), stacks: stack.NewService(d, box)}
	f.runs = run.NewService(d, hub, box, log)
	f.notify = notify.NewService(d, box, log)
	f.policies = policy.NewService(d, f.spaces, f.stacks, f.runs, f.notify, hub, log)
	f.runs.Policies = f.policies
	if err := f.spaces.EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// stack creates a stack in its own worker pool (so claims see only its runs).
func (f *fixture) stack(t *testing.T, mod func(*stack.Stack)) stack.Stack {
	t.Helper()
	f.n++
	st := stack.Stack{ID: fmt.Sprintf("st-%d", f.n), Repository: "https://example.com/infra.git", WorkerPool: fmt.Sprintf("pool-%d", f.n)}
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

func (f *fixture) policy(t *testing.T, id, typ, body string, labels ...string) policy.Policy {
	t.Helper()
	p, err := f.policies.Create(f.ctx, policy.Policy{ID: id, Type: typ, Body: body, Labels: labels})
	if err != nil {
		t.Fatalf("create policy %s: %v", id, err)
	}
	return p
}

func (f *fixture) attach(t *testing.T, policyID, stackID string) {
	t.Helper()
	if err := f.policies.Attach(f.ctx, policyID, stackID); err != nil {
		t.Fatalf("attach %s to %s: %v", policyID, stackID, err)
	}
}

func (f *fixture) create(t *testing.T, stackID, typ string) run.Run {
	t.Helper()
	r, err := f.runs.Create(f.ctx, run.New{StackID: stackID, Type: typ, TriggeredBy: "api_key::tester"})
	if err != nil {
		t.Fatalf("create run: %v", err)
	}
	return r
}

func (f *fixture) get(t *testing.T, runID string) run.Run {
	t.Helper()
	r, err := f.runs.Get(f.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantState(t *testing.T, r run.Run, state string) {
	t.Helper()
	if r.State != state {
		t.Fatalf("run %s is %s (%s), want %s", r.ID, r.State, r.Reason, state)
	}
}

// plan claims the stack's run, takes it to PLANNING, uploads plan and
// reports it as the worker does; it returns the worker's next step.
func (f *fixture) plan(t *testing.T, st stack.Stack, plan map[string]any) (string, run.Run) {
	t.Helper()
	c, err := f.runs.Claim(f.ctx, st.WorkerPool, worker)
	if err != nil || c == nil {
		t.Fatalf("claim: %v %v", c, err)
	}
	if _, err := f.runs.Phase(f.ctx, c.Run.ID, worker, run.Initializing, "0123456789012345678901234567890123456789", "msg"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.runs.Phase(f.ctx, c.Run.ID, worker, run.Planning, "", ""); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(plan)
	if err := f.runs.PutArtifact(f.ctx, c.Run.ID, run.ArtifactPlanJSON, data); err != nil {
		t.Fatal(err)
	}
	next, r, err := f.runs.Planned(f.ctx, c.Run.ID, worker, len(changesOf(plan)) > 0, run.Delta{Add: len(changesOf(plan))}, st.Autodeploy)
	if err != nil {
		t.Fatalf("planned: %v", err)
	}
	return next, r
}

func changesOf(plan map[string]any) []any {
	l, _ := plan["resource_changes"].([]any)
	return l
}

// bucketPlan is a plan creating S3 buckets with the given ACLs.
func bucketPlan(acls ...string) map[string]any {
	var rcs []any
	for i, acl := range acls {
		rcs = append(rcs, map[string]any{
			"address": fmt.Sprintf("aws_s3_bucket.b%d", i), "mode": "managed", "type": "aws_s3_bucket", "name": fmt.Sprintf("b%d", i),
			"provider_name": "registry.opentofu.org/hashicorp/aws",
			"change": map[string]any{"actions": []any{"create"}, "before": nil,
				"after":         map[string]any{"bucket": fmt.Sprintf("bucket-%d", i), "acl": acl, "tags": map[string]any{"team": "infra"}},
				"after_unknown": map[string]any{}, "before_sensitive": false, "after_sensitive": map[string]any{}},
		})
	}
	return map[string]any{"format_version": "1.2", "terraform_version": "1.10.7", "resource_changes": rcs}
}

// processEvents runs the policy events until none is due.
func (f *fixture) processEvents(t *testing.T) {
	t.Helper()
	for i := 0; i < 20; i++ {
		n, err := f.policies.ProcessEvents(f.ctx)
		if err != nil {
			t.Fatalf("process events: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("error = %v, want kind %s", err, k)
	}
}

var _ = time.Second

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
