package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/policy"
)

// TestLoginDenyAdminDropsAdminGrants: deny_admin is not bypassed by a
// grant that makes an admin: space-admin in the root space (the account
// admin) or, in root, a role holding a root-only account action. Other
// grants stay.
func TestLoginDenyAdminDropsAdminGrants(t *testing.T) {
	e := newRBACEnv(t)
	ctx := context.Background()
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/roles", map[string]any{"id": "auditor", "actions": []string{auth.SpaceRead, auth.AuditRead}}), http.StatusCreated, nil)
	body := `package spacelift
admin if "ops" in input.session.teams
deny_admin if input.session.login == "mallory"
space_admin contains "root" if "ops" in input.session.teams
space_admin contains "team" if "ops" in input.session.teams
space_read contains "root" if "ops" in input.session.teams
roles["root"]["auditor"] if "ops" in input.session.teams
`
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": "who", "type": "LOGIN", "body": body}), http.StatusCreated, nil)
	roles, err := e.a.Roles.ListRoles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	decide := func(login string) (map[string][]string, bool) {
		out, err := e.a.Policies.Login(ctx, policy.LoginRequest{Login: login, Teams: []string{"ops"}})
		if err != nil {
			t.Fatal(err)
		}
		grants := out.Grants
		if out.DenyAdmin {
			grants = auth.WithoutAdminGrants(grants, roles)
		}
		_, admin, err := e.a.Roles.Resolve(ctx, nil, grants)
		if err != nil {
			t.Fatal(err)
		}
		return grants, admin || out.Admin
	}
	if _, admin := decide("alice"); !admin {
		t.Errorf("alice (ops) is no admin")
	}
	grants, admin := decide("mallory")
	if admin {
		t.Errorf("mallory (deny_admin) is an admin: grants %v", grants)
	}
	if slices.Contains(grants["root"], auth.RoleAdmin) || slices.Contains(grants["root"], "auditor") {
		t.Errorf("mallory keeps admin-like root grants: %v", grants)
	}
	if !slices.Contains(grants["root"], auth.RoleReader) || !slices.Contains(grants["team"], auth.RoleAdmin) {
		t.Errorf("mallory lost other grants: %v", grants)
	}
}
