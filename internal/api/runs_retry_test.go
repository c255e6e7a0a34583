package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// TestRetryNeedsWhatStartingTakes: run:retry alone does not start a run
// its holder could not start afresh: a task's command again needs
// task:create, any other run run:trigger. space-writer retries both.
func TestRetryNeedsWhatStartingTakes(t *testing.T) {
	e := newRBACEnv(t)
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "x", "space": "team", "repository": pinnedRepo}), http.StatusCreated, nil)
	failed := func(path string, body any) string {
		t.Helper()
		var rn apiv1.Run
		e.must(e.do("POST", path, body), http.StatusCreated, &rn)
		if _, err := e.db.Exec(context.Background(), `UPDATE runs SET state = 'FAILED' WHERE id = $1`, rn.ID); err != nil {
			t.Fatal(err)
		}
		return rn.ID
	}
	task := failed("/api/v1/stacks/x/tasks", map[string]any{"command": "tofu state rm aws_instance.x", "sha": pinnedSHA})
	tracked := failed("/api/v1/stacks/x/runs", map[string]any{"type": "TRACKED", "sha": pinnedSHA})

	retrier := e.actor("retrier", "team", []string{auth.SpaceRead, auth.RunRetry})
	if r := e.as(retrier, "POST", "/api/v1/stacks/x/tasks", map[string]any{"command": "true", "sha": pinnedSHA}); r.status != http.StatusForbidden {
		t.Fatalf("task without task:create: %s", r)
	}
	for rn, action := range map[string]string{task: auth.TaskCreate, tracked: auth.RunTrigger} {
		r := e.as(retrier, "POST", "/api/v1/runs/"+rn+"/retry", nil)
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), action) {
			t.Errorf("retry of %s with run:retry alone: %s, want 403 naming %s", rn, r, action)
		}
	}
	trigger := e.actor("trigger-retrier", "team", []string{auth.SpaceRead, auth.RunRetry, auth.RunTrigger})
	if r := e.as(trigger, "POST", "/api/v1/runs/"+task+"/retry", nil); r.status != http.StatusForbidden || !strings.Contains(string(r.body), auth.TaskCreate) {
		t.Errorf("retry of a task without task:create: %s, want 403", r)
	}
	var again apiv1.Run
	e.must(e.as(trigger, "POST", "/api/v1/runs/"+tracked+"/retry", nil), http.StatusCreated, &again)
	if again.Type != "TRACKED" {
		t.Errorf("retried run = %+v", again)
	}
	e.must(e.do("POST", "/api/v1/runs/"+again.ID+"/cancel", nil), http.StatusOK, nil)

	// The built-in space-writer holds both: it retries what it could start.
	var key apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "writer"}), http.StatusCreated, &key)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleWriter, "space": "team", "api_key": key.ID}), http.StatusCreated, nil)
	for _, rn := range []string{task, tracked} {
		var out apiv1.Run
		e.must(e.as(key.Token, "POST", "/api/v1/runs/"+rn+"/retry", nil), http.StatusCreated, &out)
		e.must(e.do("POST", "/api/v1/runs/"+out.ID+"/cancel", nil), http.StatusOK, nil)
	}
}
