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

// TestDisableAdminNeedsAdmin: role:manage in root disables and enables
// users, but only an admin disables or enables an admin (whether the login
// policy made them one, a space-admin binding in root of theirs or of a
// group of theirs, or a login policy grant), as only an admin removes an
// admin binding.
func TestDisableAdminNeedsAdmin(t *testing.T) {
	e := newRBACEnv(t)
	ctx := context.Background()
	user := func(id, groups, grants string, admin bool) {
		t.Helper()
		if _, err := e.db.Exec(ctx, `INSERT INTO users (id, issuer, subject, login, groups_json, grants, admin, created_at) VALUES ($1, 'https://idp', $1, $1, $2, $3, $4, $5)`,
			id, groups, grants, admin, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	user("plain", `["devs"]`, `{}`, false)
	user("policy-admin", `[]`, `{}`, true)
	user("bound-admin", `[]`, `{}`, false)
	user("group-admin", `["ops-admins"]`, `{}`, false)
	user("granted-admin", `[]`, `{"root":["space-admin"]}`, false)
	user("team-admin", `[]`, `{}`, false)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "user": "bound-admin"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "group": "ops-admins"}), http.StatusCreated, nil)
	// space-admin of another space than root is no admin.
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "space": "team", "user": "team-admin"}), http.StatusCreated, nil)

	rm := e.actor("role-manager", space.Root, []string{auth.SpaceRead, auth.RoleManage})
	for _, u := range []string{"plain", "team-admin"} {
		e.must(e.as(rm, "POST", "/api/v1/users/"+u+"/disable", nil), http.StatusOK, nil)
		e.must(e.as(rm, "POST", "/api/v1/users/"+u+"/enable", nil), http.StatusOK, nil)
	}
	for _, u := range []string{"policy-admin", "bound-admin", "group-admin", "granted-admin"} {
		r := e.as(rm, "POST", "/api/v1/users/"+u+"/disable", nil)
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "only an admin") {
			t.Errorf("role manager disabling %s: %s, want 403", u, r)
		}
		e.must(e.do("POST", "/api/v1/users/"+u+"/disable", nil), http.StatusOK, nil)
		if r := e.as(rm, "POST", "/api/v1/users/"+u+"/enable", nil); r.status != http.StatusForbidden {
			t.Errorf("role manager enabling %s: %s, want 403", u, r)
		}
		e.must(e.do("POST", "/api/v1/users/"+u+"/enable", nil), http.StatusOK, nil)
	}
}
