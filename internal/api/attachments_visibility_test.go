package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// TestAttachmentListsHideUnreadableStacks: a context, policy or
// integration of root is readable from every space that inherits from it,
// but its attachment list names only the stacks the caller may read; a
// worker's jobs likewise name only runs of readable spaces.
func TestAttachmentListsHideUnreadableStacks(t *testing.T) {
	e := newRBACEnv(t)
	for _, sp := range []string{"teama", "teamb"} {
		e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": sp, "inherit": true}), http.StatusCreated, nil)
	}
	e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "secret-x", "space": "teama", "repository": pinnedRepo, "labels": []string{"guarded"}}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "public-y", "space": "teamb", "repository": pinnedRepo, "labels": []string{"guarded"}}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/contexts", map[string]any{"id": "shared"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": "plan-guard", "type": "PLAN",
		"body": "package spacelift\ndeny contains \"no\" if false\n"}), http.StatusCreated, nil)
	// Attached by label, not by hand.
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": "plan-auto", "type": "PLAN", "labels": []string{"autoattach:guarded"},
		"body": "package spacelift\ndeny contains \"no\" if false\n"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/integrations", map[string]any{"id": "aws-root", "type": "aws",
		"config": map[string]string{"role_arn": "arn:aws:iam::123456789012:role/gantry"}}), http.StatusCreated, nil)
	for _, st := range []string{"secret-x", "public-y"} {
		e.must(e.do("POST", "/api/v1/contexts/shared/attachments", map[string]any{"stack": st}), http.StatusOK, nil)
		e.must(e.do("POST", "/api/v1/policies/plan-guard/attachments", map[string]any{"stack": st}), http.StatusCreated, nil)
		e.must(e.do("POST", "/api/v1/integrations/aws-root/attachments", map[string]any{"stack": st, "read": true, "write": false}), http.StatusOK, nil)
	}
	reader := e.actor("teamb-reader", "teamb", []string{auth.SpaceRead})
	if r := e.as(reader, "GET", "/api/v1/stacks/secret-x", nil); r.status != http.StatusNotFound {
		t.Fatalf("reader of teamb reads secret-x: %s", r)
	}

	attached := func(token, path string) []string {
		t.Helper()
		var list apiv1.List[struct {
			Stack string `json:"stack"`
		}]
		e.must(e.as(token, "GET", path, nil), http.StatusOK, &list)
		var out []string
		for _, at := range list.Items {
			out = append(out, at.Stack)
		}
		slices.Sort(out)
		return out
	}
	for _, path := range []string{"/api/v1/contexts/shared/attachments", "/api/v1/policies/plan-guard/attachments",
		"/api/v1/policies/plan-auto/attachments", "/api/v1/integrations/aws-root/attachments"} {
		if got := attached(e.token, path); !slices.Equal(got, []string{"public-y", "secret-x"}) {
			t.Errorf("admin: %s = %v, want both stacks", path, got)
		}
		if got := attached(reader, path); !slices.Equal(got, []string{"public-y"}) {
			t.Errorf("reader of teamb: %s = %v, want only public-y", path, got)
		}
	}

	// A worker of the built-in pool (root) running one run of each space.
	ctx := context.Background()
	now := time.Now().UnixNano()
	if _, err := e.db.Exec(ctx, `INSERT INTO workers (id, pool_id, name, token_hash, registered_at, last_seen_at) VALUES ('wrk-1', '', 'w1', 'x', $1, $1)`, now); err != nil {
		t.Fatal(err)
	}
	runs := map[string]string{}
	for _, st := range []string{"secret-x", "public-y"} {
		var rn apiv1.Run
		e.must(e.do("POST", "/api/v1/stacks/"+st+"/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &rn)
		if _, err := e.db.Exec(ctx, `UPDATE runs SET worker_id = 'wrk-1', state = 'PLANNING', heartbeat_at = $2 WHERE id = $1`, rn.ID, now); err != nil {
			t.Fatal(err)
		}
		runs[st] = rn.ID
	}
	jobs := func(token string) []string {
		t.Helper()
		var list apiv1.List[apiv1.Worker]
		e.must(e.as(token, "GET", "/api/v1/worker-pools/"+apiv1.BuiltinPool+"/workers", nil), http.StatusOK, &list)
		if len(list.Items) != 1 {
			t.Fatalf("workers = %+v", list.Items)
		}
		if list.Items[0].Status != "BUSY" {
			t.Errorf("worker status = %q, want BUSY", list.Items[0].Status)
		}
		out := list.Items[0].Jobs
		slices.Sort(out)
		return out
	}
	all := []string{runs["secret-x"], runs["public-y"]}
	slices.Sort(all)
	if got := jobs(e.token); !slices.Equal(got, all) {
		t.Errorf("admin: jobs = %v, want %v", got, all)
	}
	if got := jobs(reader); !slices.Equal(got, []string{runs["public-y"]}) {
		t.Errorf("reader of teamb: jobs = %v, want only %s", got, runs["public-y"])
	}
}
