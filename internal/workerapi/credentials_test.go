package workerapi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

// stubIntegrations mints a region and a revocable token for every stack,
// except that the cloud refuses the stack:scope pairs in refuse; it keeps
// the tokens discarded.
type stubIntegrations struct {
	refuse    map[string]bool
	mu        sync.Mutex
	minted    []string
	discarded []string
}

func (s *stubIntegrations) Credentials(ctx context.Context, st stack.Stack, r integration.Request) (integration.Minted, error) {
	if r.Ready != nil {
		if err := r.Ready(); err != nil {
			return integration.Minted{}, err
		}
	}
	if s.refuse[st.ID+":"+r.Scope] {
		return integration.Minted{}, errs.E(errs.Invalid, "%s", refusal)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := fmt.Sprintf("hvs.%d", len(s.minted))
	s.minted = append(s.minted, tok)
	return integration.Minted{Env: []integration.EnvVar{{Name: "AWS_REGION", Value: "eu-west-1"}, {Name: "VAULT_TOKEN", Value: tok, Secret: true}},
		Revoke: []integration.Revoke{{Kind: integration.RevokeVault, Address: "http://vault", TokenVar: "VAULT_TOKEN", Token: tok}}}, nil
}

func (s *stubIntegrations) Discard(ctx context.Context, m integration.Minted) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rv := range m.Revoke {
		s.discarded = append(s.discarded, rv.Token)
	}
	return nil
}

func (s *stubIntegrations) state() (minted, discarded []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.minted), slices.Clone(s.discarded)
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
		f.handler.Integrations = &stubIntegrations{refuse: map[string]bool{refused.ID + ":read": true}}

		r1 := f.create(t, refused.ID, run.Proposed)
		r2 := f.create(t, fine.ID, run.Proposed)
		job, err := c.Claim(f.ctx, 0)
		if err != nil || job == nil || job.RunID != r2.ID {
			t.Fatalf("Claim = %+v, %v; want the job of run %s (the next one)", job, err, r2.ID)
		}
		if got := f.wantState(t, r1.ID, run.Failed); got.Reason != "preparing the job failed: "+refusal {
			t.Errorf("reason = %q", got.Reason)
		}
		// No worker wrote the run's log: it says why the run failed.
		if log, _, err := f.runs.ReadLog(f.ctx, r1.ID, 0, 1<<20, 0); err != nil || string(log) != "[gantry] Run failed: preparing the job failed: "+refusal+"\n" {
			t.Errorf("log of the run = %q, %v; want its closing line", log, err)
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
		f.handler.Integrations = &stubIntegrations{refuse: map[string]bool{st.ID + ":write": true}}
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

// TestUnsentCredentialsDiscarded: credentials minted for a job that no
// worker gets (here because sealing the job fails) are revoked by the
// server, at the claim and at the apply.
func TestUnsentCredentialsDiscarded(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		stub := &stubIntegrations{}
		f.handler.Integrations = stub
		// A pool key that cannot be parsed: sealing fails.
		var brokenKey atomic.Bool
		f.handler.PoolKey = func(context.Context, string) (string, error) {
			if brokenKey.Load() {
				return "not-a-key", nil
			}
			return "", nil
		}
		c := workerapi.NewClient(f.url, builtinToken)
		if _, err := c.Register(f.ctx, workerapi.RegisterRequest{Name: "w", Version: workerapi.Version}); err != nil {
			t.Fatal(err)
		}
		st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = true })

		// The apply's credentials: minted, then the answer cannot be sealed.
		r := f.create(t, st.ID, run.Tracked)
		job := claim(t, c)
		for _, p := range []string{run.Initializing, run.Planning} {
			if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
				t.Fatalf("Phase %s: %v", p, err)
			}
		}
		brokenKey.Store(true)
		if resp, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1}); err == nil {
			t.Fatalf("Planned = %+v with a pool key that cannot seal", resp)
		}
		minted, discarded := stub.state()
		if len(minted) != 2 || !slices.Equal(discarded, minted[1:]) {
			t.Errorf("minted %v, discarded %v; want the apply's discarded", minted, discarded)
		}
		if err := c.Finish(f.ctx, job, workerapi.FinishRequest{Reason: "x"}); err != nil {
			t.Fatal(err)
		}
		f.wantState(t, r.ID, run.Failed)

		// The claim's: the job cannot be sealed, the run fails.
		r = f.create(t, st.ID, run.Proposed)
		c2 := workerapi.NewClient(f.url, builtinToken)
		if _, err := c2.Register(f.ctx, workerapi.RegisterRequest{Name: "w2", Version: workerapi.Version, PublicKey: "not-a-key"}); err != nil {
			t.Fatal(err)
		}
		if job, err := c2.Claim(f.ctx, 0); err != nil || job != nil {
			t.Fatalf("Claim = %+v, %v; want no job", job, err)
		}
		f.wantState(t, r.ID, run.Failed)
		minted, discarded = stub.state()
		if len(minted) != 3 || !slices.Equal(discarded, minted[1:]) {
			t.Errorf("minted %v, discarded %v; want the claim's discarded too", minted, discarded)
		}
	})
}
