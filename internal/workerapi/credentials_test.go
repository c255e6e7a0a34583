package workerapi_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// refusal is what the stub's cloud answers.
const refusal = "integration aws: AWS refused AssumeRoleWithWebIdentity for arn:aws:iam::123456789012:role/x: AccessDenied: Not authorized"

// stubIntegrations mints a region and a key for every stack, except that
// the cloud refuses the stack:scope pairs in refuse.
type stubIntegrations struct {
	refuse map[string]bool
}

func (s stubIntegrations) Credentials(ctx context.Context, st stack.Stack, r integration.Request) (integration.Minted, error) {
	if r.Ready != nil {
		if err := r.Ready(); err != nil {
			return integration.Minted{}, err
		}
	}
	if s.refuse[st.ID+":"+r.Scope] {
		return integration.Minted{}, errs.E(errs.Invalid, "%s", refusal)
	}
	return integration.Minted{Env: []integration.EnvVar{{Name: "AWS_REGION", Value: "eu-west-1"},
		{Name: "AWS_SECRET_ACCESS_KEY", Value: "key-" + r.Scope}}}, nil
}

// TestClaimCredentialsRefused: a cloud that refuses a run's credentials
// fails that run at PREPARING with its reason, and the claim goes on as if
// the run had not been there: the worker gets the next job, or nothing,
// never an error (an error answer stopped the worker that drew the run).
func TestClaimCredentialsRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		refused, fine := f.stack(t, nil), f.stack(t, nil)
		f.handler.Integrations = stubIntegrations{refuse: map[string]bool{refused.ID + ":read": true}}

		r1 := f.create(t, refused.ID, run.Proposed)
		r2 := f.create(t, fine.ID, run.Proposed)
		job, err := c.Claim(f.ctx, 0)
		if err != nil || job == nil || job.RunID != r2.ID {
			t.Fatalf("Claim = %+v, %v; want the job of run %s (the next one)", job, err, r2.ID)
		}
		if got := f.wantState(t, r1.ID, run.Failed); got.Reason != "preparing the job failed: "+refusal {
			t.Errorf("reason = %q", got.Reason)
		}
		if !slices.ContainsFunc(job.Env, func(v workerapi.EnvVar) bool { return v.Name == "AWS_REGION" }) {
			t.Errorf("the next job lacks its credentials: %+v", job.Env)
		}

		// Alone in the queue: the claim answers that there is no job.
		r3 := f.create(t, refused.ID, run.Proposed)
		if job, err := c.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("Claim = %+v, %v; want no job and no error", job, err)
		}
		f.wantState(t, r3.ID, run.Failed)
	})
}

// TestPlannedApplyCredentialsRefused: a cloud that refuses the apply's
// credentials fails the run with its reason; the worker is told the job
// is over (done, with the reason for the log), not that it erred.
func TestPlannedApplyCredentialsRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = true })
		f.handler.Integrations = stubIntegrations{refuse: map[string]bool{st.ID + ":write": true}}
		r := f.create(t, st.ID, run.Tracked)
		job := claim(t, c)
		for _, p := range []string{run.Initializing, run.Planning} {
			if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
				t.Fatalf("Phase %s: %v", p, err)
			}
		}
		resp, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1})
		want := "minting the apply's credentials failed: " + refusal
		if err != nil || resp.Next != run.NextDone || len(resp.Env) != 0 || !slices.Contains(resp.Log, want) {
			t.Fatalf("Planned = %+v, %v; want done with the reason", resp, err)
		}
		if got := f.wantState(t, r.ID, run.Failed); got.Reason != want {
			t.Errorf("reason = %q", got.Reason)
		}
		if hb, err := c.Heartbeat(f.ctx, job); err != nil || !hb.Stop || !strings.Contains(hb.Reason, run.Failed) {
			t.Errorf("Heartbeat = %+v, %v; want stop", hb, err)
		}
	})
}
