package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/id"
)

// TestRecreatedSpaceInheritsNoNotifications: the inbox items and
// deliveries of a deleted space go with it; a reader of a new space of the
// same id sees none of the old ones.
func TestRecreatedSpaceInheritsNoNotifications(t *testing.T) {
	e := newRBACEnv(t)
	ctx := context.Background()
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "proj"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "merger-x", "space": "proj", "repository": pinnedRepo}), http.StatusCreated, nil)
	var rn apiv1.Run
	e.must(e.do("POST", "/api/v1/stacks/merger-x/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &rn)
	now := time.Now().UnixNano()
	if _, err := e.db.Exec(ctx, `INSERT INTO notify_inbox (id, space_id, run_id, stack_id, event, title, body, severity, created_at)
		VALUES ($1, 'proj', $2, 'merger-x', 'run_updated', 'Run of merger-x: FAILED', 'confidential project merger-x', 'ERROR', $3)`, id.New("ntf"), rn.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(ctx, `INSERT INTO notify_deliveries (id, kind, endpoint_id, space_id, run_id, stack_id, method, body, status, created_at, updated_at)
		VALUES ($1, 'webhook', 'hook', 'proj', $2, 'merger-x', 'POST', '{"stack":"merger-x"}', 'FAILED', $3, $3)`, id.New("dlv"), rn.ID, now); err != nil {
		t.Fatal(err)
	}
	e.must(e.do("POST", "/api/v1/runs/"+rn.ID+"/cancel", nil), http.StatusOK, nil)
	e.must(e.do("DELETE", "/api/v1/stacks/merger-x", nil), http.StatusNoContent, nil)
	e.must(e.do("DELETE", "/api/v1/spaces/proj", nil), http.StatusNoContent, nil)

	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "elsewhere"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "proj", "parent": "elsewhere"}), http.StatusCreated, nil)
	reader := e.actor("new-proj-reader", "proj", []string{auth.SpaceRead})
	for _, path := range []string{"/api/v1/notifications?space=proj", "/api/v1/deliveries?space=proj", "/api/v1/deliveries"} {
		r := e.as(reader, "GET", path, nil)
		if r.status != http.StatusOK || strings.Contains(string(r.body), "merger-x") {
			t.Errorf("reader of the new proj: GET %s = %s, want 200 without the old space's items", path, r)
		}
	}
}
