package cli

import (
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// The ACTOR column names an actor as whoami and the audit trail do
// (api_key::ci), not by its type and id; -o json keeps the id too.
func TestRoleBindingsActor(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"GET /api/v1/role-bindings": ok(apiv1.List[apiv1.RoleBinding]{Items: []apiv1.RoleBinding{
		{ID: "rbd-1", Role: "deployer", Space: "prod", ActorType: "api_key", ActorID: "key-01M8", Actor: "api_key::ci", CreatedBy: "api_key::admin"},
		{ID: "rbd-2", Role: "space-reader", Space: "root", ActorType: "group", ActorID: "platform"}, // an older server: no actor
	}})})
	code, out, errOut := runMain("role", "bindings", "--url", api.srv.URL, "--token", "t")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"api_key::ci", "group::platform"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "key-01M8") || strings.Contains(out, "api_key:key") {
		t.Errorf("table shows the key's id as its actor:\n%s", out)
	}
	code, out, _ = runMain("role", "bindings", "-o", "json", "--url", api.srv.URL, "--token", "t")
	if code != 0 || !strings.Contains(out, `"actor_id": "key-01M8"`) || !strings.Contains(out, `"actor": "api_key::ci"`) {
		t.Errorf("json: exit %d\n%s", code, out)
	}
}
