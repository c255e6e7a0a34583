package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
)

// Drift detection queues runs (with reconcile, tracked runs that apply):
// turning it on takes run:trigger, as a scheduled run does, not only
// stack:update.
func TestDriftDetectionNeedsRunTrigger(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(1)
	updater := e.actor("updater", f.space, []string{auth.SpaceRead, auth.StackUpdate})
	trigger := e.actor("updater-trigger", f.space, []string{auth.SpaceRead, auth.StackUpdate, auth.RunTrigger})
	const body = `{"schedule": ["0 * * * *"], "reconcile": true}`
	r := e.send(request{method: "PUT", path: "/api/v1/stacks/" + f.stack + "/drift-detection", token: updater, body: strings.NewReader(body)})
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), auth.RunTrigger) {
		t.Errorf("stack:update alone: %v, want 403 naming %s", r, auth.RunTrigger)
	}
	r = e.send(request{method: "PUT", path: "/api/v1/stacks/" + f.stack + "/drift-detection", token: trigger, body: strings.NewReader(body)})
	if r.status != http.StatusOK {
		t.Errorf("stack:update and run:trigger: %v, want 200", r)
	}
}
