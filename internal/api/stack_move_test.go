package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
)

// An explicit integration attachment stops applying while its stack is in
// a space that does not see the integration's (as contexts and policies
// do); moving the stack back, where it applies again, is attaching it: it
// takes integration:attach there, as a label that auto-attaches one does.
func TestStackMoveBackReattachingAnIntegrationNeedsAttach(t *testing.T) {
	e := newRBACEnv(t)
	f1, f2 := e.fixture(1), e.fixture(2) // aws1 in sp1, attached to st1
	actions := []string{auth.SpaceRead, auth.StackCreate, auth.StackUpdate}
	mover := e.actor("mover", "root", actions)
	lead := e.actor("lead", "root", append(actions, auth.IntegrationAttach))
	move := func(token, space string) response {
		t.Helper()
		return e.as(token, "PATCH", "/api/v1/stacks/"+f1.stack, map[string]any{"space": space})
	}
	// Away: the integration stops applying, which takes nothing.
	if r := move(mover, f2.space); r.status != http.StatusOK {
		t.Fatalf("moving the stack away: %v", r)
	}
	// Back: it would apply again.
	if r := move(mover, f1.space); r.status != http.StatusForbidden || !strings.Contains(string(r.body), f1.integration) ||
		!strings.Contains(string(r.body), auth.IntegrationAttach) {
		t.Errorf("moving the stack back without %s: %v, want 403 naming the integration", auth.IntegrationAttach, r)
	}
	if r := move(lead, f1.space); r.status != http.StatusOK {
		t.Errorf("moving the stack back with %s: %v", auth.IntegrationAttach, r)
	}
}

// Moving a stack to a space the caller holds nothing in answers as if that
// space did not exist (404), except the root space, which is no secret: a
// space admin elsewhere moving a stack to root is told the missing action
// (403), as when creating a stack there.
func TestStackMoveToRootRefusedVisibly(t *testing.T) {
	e := newRBACEnv(t)
	f1, f2 := e.fixture(1), e.fixture(2)
	adminA := e.actor("admin-a", f1.space, []string{auth.SpaceRead, auth.StackCreate, auth.StackUpdate})
	r := e.as(adminA, "PATCH", "/api/v1/stacks/"+f1.stack, map[string]any{"space": "root"})
	d := wantError(t, r, http.StatusForbidden, "forbidden")
	if !strings.Contains(d.Message, auth.StackCreate) || !strings.Contains(d.Message, "root") {
		t.Errorf("moving to root: %v, want the missing action %s in root named", r, auth.StackCreate)
	}
	r = e.as(adminA, "PATCH", "/api/v1/stacks/"+f1.stack, map[string]any{"space": f2.space})
	if d := wantError(t, r, http.StatusNotFound, "not_found"); !strings.Contains(d.Message, `space "`+f2.space+`" not found`) {
		t.Errorf("moving to a space the caller cannot see: %v, want that space not found", r)
	}
	r = e.as(adminA, "PATCH", "/api/v1/stacks/"+f1.stack, map[string]any{"space": "no-such-space"})
	wantError(t, r, http.StatusNotFound, "not_found")
}
