package workerapi_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// slowPolicies are plan policies that take delay to evaluate and, as the
// engine's, are abandoned (an error) when the caller's context ends first.
type slowPolicies struct {
	delay   time.Duration
	outcome string
	plans   atomic.Int32
}

func (p *slowPolicies) Approval(context.Context, run.Run, string) (run.Verdict, error) {
	return run.Verdict{}, nil
}

func (p *slowPolicies) NeedsPlan(context.Context, run.Run) (bool, error) { return true, nil }

func (p *slowPolicies) Plan(ctx context.Context, _ run.Run) (run.Verdict, error) {
	p.plans.Add(1)
	select {
	case <-time.After(p.delay):
		return run.Verdict{Outcome: p.outcome, Messages: []string{"policy slow: " + p.outcome}}, nil
	case <-ctx.Done():
		return run.Verdict{}, fmt.Errorf("policy slow: evaluation abandoned: %w", ctx.Err())
	}
}

func (p *slowPolicies) Changed(context.Context, run.Run, string, time.Time, int) ([]string, error) {
	return nil, nil
}

// A plan report whose policies outlast the worker's patience (its timeout,
// a network failure) is carried through on the server; the worker's retry,
// arriving meanwhile or after, gets the same answer without the policies
// being evaluated again. The job says how long such reports may take.
func TestPlannedCarriedThroughAndReplayed(t *testing.T) {
	tests := []struct {
		outcome    string
		autodeploy bool
		next       string
		state      string
	}{
		{run.OutcomeDeny, false, run.NextDone, run.Failed},
		{run.OutcomeWarn, false, run.NextSave, run.Planning},
		{run.OutcomeAllow, true, run.NextApply, run.Applying},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.handler.ReportTimeout = 95 * time.Second
		c, _ := f.worker(t, builtinToken)
		for _, tt := range tests {
			t.Run(tt.outcome, func(t *testing.T) {
				pols := &slowPolicies{delay: 500 * time.Millisecond, outcome: tt.outcome}
				f.runs.Policies = pols
				st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = tt.autodeploy })
				r := f.create(t, st.ID, run.Tracked)
				job := claim(t, c)
				if job.ReportTimeoutMS != 95000 {
					t.Errorf("job.ReportTimeoutMS = %d, want 95000", job.ReportTimeoutMS)
				}
				for _, p := range []string{run.Initializing, run.Planning} {
					if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
						t.Fatalf("Phase %s: %v", p, err)
					}
				}
				req := workerapi.PlannedRequest{HasChanges: true, Add: 1}
				short, cancel := context.WithTimeout(f.ctx, 100*time.Millisecond)
				_, err := c.Planned(short, job, req)
				cancel()
				if err == nil {
					t.Fatal("Planned answered before its policies were evaluated")
				}
				// Two retries at once, while the first report is still evaluated.
				var wg sync.WaitGroup
				answers := make([]workerapi.PlannedResponse, 2)
				errs := make([]error, 2)
				for i := range answers {
					wg.Go(func() { answers[i], errs[i] = c.Planned(f.ctx, job, req) })
				}
				wg.Wait()
				for i := range answers {
					if errs[i] != nil || answers[i].Next != tt.next {
						t.Errorf("retry %d = %+v, %v; want %s", i, answers[i], errs[i], tt.next)
					}
				}
				// And one after.
				if again, err := c.Planned(f.ctx, job, req); err != nil || again.Next != tt.next {
					t.Errorf("retry after = %+v, %v; want %s", again, err, tt.next)
				}
				if n := pols.plans.Load(); n != 1 {
					t.Errorf("plan policies evaluated %d times, want once", n)
				}
				if got := f.wantState(t, r.ID, tt.state); tt.state == run.Failed && got.Reason != "denied by plan policy: policy slow: deny" {
					t.Errorf("reason = %q", got.Reason)
				}
				if tt.state != run.Failed {
					if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "test over"}); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
	})
}
