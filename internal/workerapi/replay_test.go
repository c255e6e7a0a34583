package workerapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// flakyTokens issues real run tokens, but handing out the first one of
// scope write fails once fail is set (the database refusing the audit
// event's transaction: too many clients); issued counts the issuances
// recorded, by scope.
type flakyTokens struct {
	*runtoken.Service
	fail   atomic.Bool
	mu     sync.Mutex
	issued map[string][]string // scope -> jti
}

func (f *flakyTokens) Hand(ctx context.Context, p runtoken.Prepared) (string, time.Time, error) {
	if f.fail.CompareAndSwap(true, false) {
		return "", time.Time{}, errors.New("db: begin transaction: FATAL: sorry, too many clients already (SQLSTATE 53300)")
	}
	return f.Service.Hand(ctx, p)
}

func (f *flakyTokens) byScope(scope string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.issued[scope])
}

func newFlakyTokens(t *testing.T, d *db.DB) *flakyTokens {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := runtoken.New(d, box, runtoken.Config{Issuer: "https://gantry.example"})
	if err != nil {
		t.Fatal(err)
	}
	ft := &flakyTokens{Service: rt, issued: map[string][]string{}}
	rt.Audit = func(_ context.Context, action, _, _, _ string, _, after any) error {
		view, _ := after.(map[string]any)
		if action == "oidc_token.issue" && view != nil {
			ft.mu.Lock()
			scope, _ := view["scope"].(string)
			jti, _ := view["jti"].(string)
			ft.issued[scope] = append(ft.issued[scope], jti)
			ft.mu.Unlock()
		}
		return nil
	}
	if err := rt.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ft
}

// dropFirstPlanned is a reverse proxy to target that replaces the answer
// to the first `planned` report of each run with a 502, as a load
// balancer timing out would: the server made the report, the worker does
// not know.
func dropFirstPlanned(t *testing.T, target string) (proxyURL string, dropped *atomic.Int32) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	dropped = &atomic.Int32{}
	var mu sync.Mutex
	seen := map[string]bool{}
	p := httputil.NewSingleHostReverseProxy(u)
	p.ModifyResponse = func(resp *http.Response) error {
		path := resp.Request.URL.Path
		if resp.Request.Method != http.MethodPost || !strings.HasSuffix(path, "/planned") {
			return nil
		}
		mu.Lock()
		first := !seen[path]
		seen[path] = true
		mu.Unlock()
		if !first {
			return nil
		}
		dropped.Add(1)
		resp.Body.Close()
		resp.StatusCode, resp.Status = http.StatusBadGateway, "502 Bad Gateway"
		resp.Header = http.Header{"Content-Type": {"text/plain"}}
		resp.Body = io.NopCloser(strings.NewReader("upstream timed out"))
		resp.ContentLength = -1
		return nil
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL, dropped
}

// TestPlannedAnswerLostReplayed: a plan report on an autodeploy stack that
// the server made (the run went on to APPLYING) but whose answer the worker
// did not get, because a proxy replaced it with a 502 or because handing
// out the apply's token failed after the report committed, is retried by
// the worker: the retry gets apply again, with a write token and the
// apply's credentials issued for it (each issuance recorded), and the run
// is not moved twice.
func TestPlannedAnswerLostReplayed(t *testing.T) {
	tests := []struct {
		name    string
		pending bool // reported before the plan JSON is made
		lost    string
	}{
		{"pending, answer dropped", true, "proxy"},
		{"pending, token failed", true, "token"},
		{"counts, answer dropped", false, "proxy"},
		{"counts, token failed", false, "token"},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		tokens := newFlakyTokens(t, d)
		f.handler.Tokens = tokens
		stub := &stubIntegrations{}
		f.handler.Integrations = stub
		proxy, dropped := dropFirstPlanned(t, f.url)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				base := f.url
				if tt.lost == "proxy" {
					base = proxy
				}
				c := workerapi.NewClient(base, builtinToken)
				if _, err := c.Register(f.ctx, workerapi.RegisterRequest{Name: "w", Version: workerapi.Version}); err != nil {
					t.Fatal(err)
				}
				st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = true })
				r := f.create(t, st.ID, run.Tracked)
				job := claim(t, c)
				for _, p := range []string{run.Initializing, run.Planning} {
					if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
						t.Fatalf("Phase %s: %v", p, err)
					}
				}
				req := workerapi.PlannedRequest{HasChanges: true, PlanPending: tt.pending}
				if !tt.pending {
					req.Add = 1
				}
				writes := len(tokens.byScope(runtoken.Write))
				drops := dropped.Load()
				tokens.fail.Store(tt.lost == "token")
				_, err := c.Planned(f.ctx, job, req)
				if tt.lost == "proxy" {
					wantStatus(t, err, http.StatusBadGateway)
					if dropped.Load() != drops+1 {
						t.Fatal("the proxy dropped no answer")
					}
				} else {
					wantStatus(t, err, http.StatusInternalServerError)
				}
				moves := f.transitions(t, r.ID)
				if got := f.wantState(t, r.ID, run.Applying); got.WorkerID == "" {
					t.Fatalf("the run is not held after the report")
				}
				for i := 0; i < 2; i++ {
					resp, err := c.Planned(f.ctx, job, req)
					if err != nil || resp.Next != run.NextApply {
						t.Fatalf("retry %d: Planned = %+v, %v; want apply", i, resp, err)
					}
					if resp.OIDCToken == "" || !slices.ContainsFunc(resp.Env, func(v workerapi.EnvVar) bool { return v.Name == "VAULT_TOKEN" }) {
						t.Fatalf("retry %d: the apply's answer lacks its token or credentials: %+v", i, resp)
					}
				}
				if again := f.transitions(t, r.ID); len(again) != len(moves) {
					t.Errorf("the retries moved the run: %d transitions, then %d", len(moves), len(again))
				}
				// Each answer's token is recorded, with its own id; the one
				// that failed to be handed out is not.
				want := 2
				if tt.lost == "proxy" {
					want = 3 // the dropped answer had one too
				}
				if jtis := tokens.byScope(runtoken.Write)[writes:]; len(jtis) != want || len(slices.Compact(slices.Sorted(slices.Values(jtis)))) != want {
					t.Errorf("write tokens recorded: %v; want %d distinct", jtis, want)
				}
				if tt.pending {
					if err := c.RecordDelta(f.ctx, job, workerapi.DeltaRequest{Add: 1}); err != nil {
						t.Fatalf("RecordDelta: %v", err)
					}
				}
				if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: true}); err != nil {
					t.Fatalf("Finish: %v", err)
				}
				if got := f.wantState(t, r.ID, run.Finished); !got.HasDelta || got.Delta.Add != 1 {
					t.Errorf("delta = %v %+v", got.HasDelta, got.Delta)
				}
			})
		}
	})
}

func (f *fixture) transitions(t *testing.T, runID string) []run.Transition {
	t.Helper()
	tr, err := f.runs.Transitions(f.ctx, runID)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestHandOffRetried: a hand-off's retry after the server took it (its
// answer lost) is refused for the job token the hand-off killed (401, which
// the worker takes for the hand-off made); the run waits, handed off once,
// and its approval policies were evaluated once.
func TestHandOffRetried(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		pols := &slowPolicies{outcome: run.OutcomeAllow}
		f.runs.Policies = &countedApprovals{slowPolicies: pols}
		c, _ := f.worker(t, builtinToken)
		st := f.stack(t, nil)
		r := f.create(t, st.ID, run.Tracked)
		job := claim(t, c)
		for _, p := range []string{run.Initializing, run.Planning} {
			if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: p}); err != nil {
				t.Fatalf("Phase %s: %v", p, err)
			}
		}
		if resp, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1}); err != nil || resp.Next != run.NextSave {
			t.Fatalf("Planned = %+v, %v", resp, err)
		}
		if err := putArtifact(c, f.ctx, job, "workspace", []byte("tarball")); err != nil {
			t.Fatal(err)
		}
		if err := c.HandOff(f.ctx, job); err != nil {
			t.Fatal(err)
		}
		moves := f.transitions(t, r.ID)
		wantStatus(t, c.HandOff(f.ctx, job), http.StatusUnauthorized)
		f.wantState(t, r.ID, run.Unconfirmed)
		if again := f.transitions(t, r.ID); len(again) != len(moves) {
			t.Errorf("the retry moved the run")
		}
		if n := f.runs.Policies.(*countedApprovals).n.Load(); n != 1 {
			t.Errorf("approval policies evaluated %d times, want once", n)
		}
	})
}

// countedApprovals counts the approval evaluations of slowPolicies for
// runs about to wait for confirmation.
type countedApprovals struct {
	*slowPolicies
	n atomic.Int32
}

func (p *countedApprovals) Approval(ctx context.Context, r run.Run, stage string) (run.Verdict, error) {
	if stage == run.Unconfirmed {
		p.n.Add(1)
	}
	return p.slowPolicies.Approval(ctx, r, stage)
}
