package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/space"
)

// TestLoginPolicySamplesAdminOnly: the samples of a LOGIN policy hold
// every sign-in's login, email, groups and address; listing or reading
// them, simulating or replaying the policy takes an admin, as writing it
// does. policy:update is enough for other policies.
func TestLoginPolicySamplesAdminOnly(t *testing.T) {
	e := newRBACEnv(t)
	ctx := context.Background()
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": "who", "type": "LOGIN", "body": "package spacelift\nallow := true\n"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": "plan", "type": "PLAN", "body": "package spacelift\ndeny contains \"no\" if false\n"}), http.StatusCreated, nil)
	now := time.Now().UnixNano()
	if _, err := e.db.Exec(ctx, `INSERT INTO policy_inputs (key, type, input, created_at) VALUES ('in-1', 'LOGIN', $1, $2)`,
		`{"session":{"login":"alice","email":"alice@example.com","teams":["ops"],"creator_ip":"10.1.2.3"}}`, now); err != nil {
		t.Fatal(err)
	}
	for _, pol := range []string{"who", "plan"} {
		if _, err := e.db.Exec(ctx, `INSERT INTO policy_samples (key, policy_id, policy_version, type, run_id, explicit, outcome, input_key, result, created_at)
			VALUES ($1, $2, 1, 'LOGIN', '', FALSE, 'allow', 'in-1', '{}', $3)`, "smp-"+pol, pol, now); err != nil {
			t.Fatal(err)
		}
	}
	editor := e.actor("policy-editor", space.Root, []string{auth.SpaceRead, auth.PolicyUpdate})
	calls := func(pol string) [][3]any {
		return [][3]any{
			{"GET", "/api/v1/policies/" + pol + "/samples", nil},
			{"GET", "/api/v1/policies/" + pol + "/samples/smp-" + pol, nil},
			{"POST", "/api/v1/policies/" + pol + "/simulate", map[string]any{"sample": "smp-" + pol}},
			{"POST", "/api/v1/policies/" + pol + "/replay", map[string]any{"body": "package spacelift\nallow := true\n"}},
		}
	}
	for _, c := range calls("who") {
		r := e.as(editor, c[0].(string), c[1].(string), c[2])
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "LOGIN") || strings.Contains(string(r.body), "alice") {
			t.Errorf("policy:update holder, %s %s of a LOGIN policy: %s, want 403", c[0], c[1], r)
		}
		if r := e.as(e.token, c[0].(string), c[1].(string), c[2]); r.status != http.StatusOK {
			t.Errorf("admin, %s %s of a LOGIN policy: %s, want 200", c[0], c[1], r)
		}
	}
	for _, c := range calls("plan") {
		if r := e.as(editor, c[0].(string), c[1].(string), c[2]); r.status != http.StatusOK {
			t.Errorf("policy:update holder, %s %s of a PLAN policy: %s, want 200", c[0], c[1], r)
		}
	}
}
