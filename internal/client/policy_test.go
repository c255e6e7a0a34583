package client

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
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// policyClient is a client of the real API, with policies, over SQLite.
func policyClient(t *testing.T) *Client {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	box, _ := secrets.NewBox(bytes.Repeat([]byte{9}, 32))
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	keys := auth.NewKeys(d)
	token, err := keys.Create(ctx, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	hub := events.NewHub()
	stacks, runs, n := stack.NewService(d, box), run.NewService(d, hub, box, log), notify.NewService(d, box, log)
	pols := policy.NewService(d, spaces, stacks, runs, n, hub, log)
	runs.Policies = pols
	a := &api.API{Spaces: spaces, Stacks: stacks, Runs: runs, State: state.NewService(d, box), Keys: keys, Log: log,
		Notify: n, Policies: pols}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(mux))
	t.Cleanup(srv.Close)
	return New(srv.URL, token)
}

// must takes a call's results and returns a function that fails the test
// on its error and returns its value: must(c.GetPolicy(ctx, id))(t).
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

const waitsForReview = `package spacelift

reject if count(input.reviews.current.rejections) > 0
`

func TestPolicyLifecycle(t *testing.T) {
	ctx := context.Background()
	c := policyClient(t)

	_, err := c.CreatePolicy(ctx, apiv1.PolicyCreate{ID: "bad", Type: "PLAN", Body: "package spacelift\n\ndeny[msg {\n"})
	if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "bad.rego:3:") {
		t.Errorf("bad body: %v, want invalid with the line", err)
	}

	p := must(c.CreatePolicy(ctx, apiv1.PolicyCreate{ID: "review", Type: "APPROVAL", Body: waitsForReview, Labels: []string{"team"}}))(t)
	if p.Engine != "rego_v1" || p.Version != 1 || p.Space != "root" || p.Name != "review" {
		t.Errorf("created %+v", p)
	}
	desc := "waits"
	p = must(c.UpdatePolicy(ctx, "review", apiv1.PolicyUpdate{Description: &desc, Labels: &[]string{}}))(t)
	if p.Description != "waits" || len(p.Labels) != 0 {
		t.Errorf("updated %+v", p)
	}
	if got := must(c.GetPolicy(ctx, "review"))(t); got.Body != waitsForReview {
		t.Errorf("body %q", got.Body)
	}
	if l := must(c.ListPolicies(ctx, ListOptions{Limit: 10}, "root", "APPROVAL"))(t); len(l.Items) != 1 || l.Items[0].ID != "review" {
		t.Errorf("list %+v", l)
	}
	if l := must(c.ListPolicies(ctx, ListOptions{}, "", "PLAN"))(t); len(l.Items) != 0 {
		t.Errorf("list PLAN %+v", l)
	}

	must(c.CreateStack(ctx, apiv1.StackCreate{ID: "app", Repository: "https://git.example.com/app.git"}))(t)
	if at := must(c.AttachPolicy(ctx, "review", "app"))(t); at.Stack != "app" || at.Via != "explicit" {
		t.Errorf("attach %+v", at)
	}
	if l := must(c.PolicyAttachments(ctx, "review"))(t); len(l.Items) != 1 {
		t.Errorf("attachments %+v", l)
	}

	r := must(c.CreateRun(ctx, "app", apiv1.RunCreate{}))(t)
	if r.State != apiv1.StatePendingReview {
		t.Fatalf("run %s, want PENDING_REVIEW", r.State)
	}
	r = must(c.ReviewRun(ctx, r.ID, apiv1.ReviewCreate{Decision: "REJECT", Note: "no"}))(t)
	if r.State != apiv1.StateFailed {
		t.Errorf("after reject: %s", r.State)
	}
	if l := must(c.RunReviews(ctx, r.ID))(t); len(l.Items) != 1 || l.Items[0].Decision != "REJECT" || l.Items[0].Note != "no" {
		t.Errorf("reviews %+v", l)
	}
	if l := must(c.RunPolicyReceipts(ctx, r.ID))(t); len(l.Items) != 2 || l.Items[1].Outcome != "reject" {
		t.Errorf("receipts %+v", l)
	}

	samples := must(c.PolicySamples(ctx, "review", 1))(t)
	if len(samples.Items) != 1 || samples.Items[0].Run != r.ID {
		t.Fatalf("samples %+v", samples)
	}
	sm := must(c.PolicySample(ctx, "review", samples.Items[0].Key))(t)
	if len(sm.Input) == 0 || len(sm.Result) == 0 {
		t.Errorf("sample %+v", sm)
	}
	sim := must(c.SimulatePolicy(ctx, "review", apiv1.PolicySimulate{Sample: sm.Key}))(t)
	if sim.Recorded == nil || len(sim.Changes) != 0 || sim.Decision.Outcome != sim.Recorded.Outcome {
		t.Errorf("simulate sample %+v", sim)
	}
	sim = must(c.SimulatePolicy(ctx, "review", apiv1.PolicySimulate{Input: []byte(`{"reviews":{"current":{"rejections":[{}]}}}`)}))(t)
	if sim.Decision.Outcome != "reject" || sim.Recorded != nil {
		t.Errorf("simulate input %+v", sim)
	}
	rep := must(c.ReplayPolicy(ctx, "review", apiv1.PolicyReplay{Body: "package spacelift\n\napprove := true\n", Since: "1h"}))(t)
	if rep.Evaluated != 2 || len(rep.Changed) != 2 || rep.Changed[0].After != "approve" {
		t.Errorf("replay %+v", rep)
	}

	if err := c.DetachPolicy(ctx, "review", "app"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePolicy(ctx, "review"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx, "review"); !errs.Is(err, errs.NotFound) {
		t.Errorf("get deleted: %v", err)
	}
}

func TestPolicyLibraryAndPush(t *testing.T) {
	ctx := context.Background()
	c := policyClient(t)
	lib := must(c.PolicyLibrary(ctx))(t)
	if len(lib.Items) == 0 || lib.Items[0].Body == "" {
		t.Fatalf("library %+v", lib)
	}
	p := must(c.ImportLibraryPolicy(ctx, lib.Items[0].Name, apiv1.LibraryImport{ID: "imported"}))(t)
	if p.ID != "imported" || p.Type != lib.Items[0].Type || p.Body != lib.Items[0].Body {
		t.Errorf("imported %+v", p)
	}
	if _, err := c.ImportLibraryPolicy(ctx, "no-such", apiv1.LibraryImport{}); !errs.Is(err, errs.NotFound) {
		t.Errorf("import unknown: %v", err)
	}

	must(c.CreateStack(ctx, apiv1.StackCreate{ID: "web", Repository: "https://git.example.com/web.git"}))(t)
	// A short SHA is refused before anything is decided or created (a run
	// of it would only fail at checkout), as for a triggered run.
	if _, err := c.NotifyPush(ctx, "web", apiv1.PushEvent{Branch: "main", SHA: "4f1c0e", AffectedFiles: []string{"main.tf"}}); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "4f1c0e") {
		t.Errorf("push of a short SHA: %v, want invalid naming it", err)
	}
	if runs := must(c.ListRuns(ctx, RunListOptions{Stack: "web"}))(t); len(runs.Items) != 0 {
		t.Errorf("a refused push created runs: %+v", runs.Items)
	}
	res := must(c.NotifyPush(ctx, "web", apiv1.PushEvent{Branch: "main", SHA: strings.Repeat("a", 40), AffectedFiles: []string{"main.tf"}}))(t)
	if res.Action != "track" || !res.Default || res.Run == nil || res.Run.Type != apiv1.RunTracked {
		t.Errorf("push %+v", res)
	}
	res = must(c.NotifyPush(ctx, "web", apiv1.PushEvent{Branch: "main", SHA: strings.Repeat("b", 40)}))(t)
	if res.Action != "ignore" || res.Run != nil {
		t.Errorf("push without files %+v", res)
	}
}

func TestPolicyRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		call func(c *Client) error
		want recorded
	}{
		{"list with filters", func(c *Client) error {
			_, err := c.ListPolicies(ctx, ListOptions{Limit: 5, Cursor: "c"}, "dev", "PLAN")
			return err
		}, recorded{Method: "GET", Path: "/api/v1/policies", RawQuery: "cursor=c&limit=5&space=dev&type=PLAN"}},
		{"detach escapes", func(c *Client) error { return c.DetachPolicy(ctx, "p", "a/b") },
			recorded{Method: "DELETE", Path: "/api/v1/policies/p/attachments/a%2Fb"}},
		{"samples limit", func(c *Client) error { _, err := c.PolicySamples(ctx, "p", 3); return err },
			recorded{Method: "GET", Path: "/api/v1/policies/p/samples", RawQuery: "limit=3"}},
		{"review", func(c *Client) error {
			_, err := c.ReviewRun(ctx, "run-1", apiv1.ReviewCreate{Decision: "APPROVE"})
			return err
		}, recorded{Method: "POST", Path: "/api/v1/runs/run-1/reviews", Body: `{"decision":"APPROVE"}`}},
		{"import", func(c *Client) error {
			_, err := c.ImportLibraryPolicy(ctx, "plan-x", apiv1.LibraryImport{Space: "dev"})
			return err
		}, recorded{Method: "POST", Path: "/api/v1/policy-library/plan-x/import", Body: `{"space":"dev"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := fake(t, 200, `{}`)
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			tt.want.Auth = "Bearer tok"
			if *rec != tt.want {
				t.Errorf("request:\n got %+v\nwant %+v", *rec, tt.want)
			}
		})
	}
}
