package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// signedInUser stores a user as a sign-in would and returns a session
// token of theirs.
func (e *rbacEnv) signedInUser(login, groups string) (string, string) {
	e.t.Helper()
	ctx := context.Background()
	uid := "usr_" + login
	if _, err := e.db.Exec(ctx, `INSERT INTO users (id, issuer, subject, login, groups_json, grants, admin, created_at, last_login_at) VALUES ($1, 'https://idp', $2, $2, $3, '{}', false, $4, $4)`,
		uid, login, groups, time.Now().UnixNano()); err != nil {
		e.t.Fatal(err)
	}
	_, token, err := e.a.Users.NewSession(ctx, uid, "cli", "127.0.0.1", time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return uid, token
}

// TestBindingPersonalKeyOrSelf: a right held through an IdP group cannot
// be made permanent by its holder: a user's own key takes no bindings
// (it acts as the user, never more), and nobody binds a role to their own
// user or key. Automation keys stay bindable by others.
func TestBindingPersonalKeyOrSelf(t *testing.T) {
	e := newRBACEnv(t)
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "space": "team", "group": "teamadmins"}), http.StatusCreated, nil)
	_, alice := e.signedInUser("alice", `["teamadmins"]`)
	var own apiv1.APIKeyCreated
	e.must(e.as(alice, "POST", "/api/v1/api-keys", map[string]any{"name": "alice-k2"}), http.StatusCreated, &own)

	// Her own key, by her session, by her key, or by an admin: refused.
	for _, tok := range []string{alice, own.Token, e.token} {
		r := e.as(tok, "POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "space": "team", "api_key": "alice-k2"})
		if tok == e.token {
			wantError(t, r, http.StatusBadRequest, "invalid")
		} else if r.status != http.StatusBadRequest && r.status != http.StatusForbidden {
			t.Errorf("binding a personal key: %s, want 400 or 403", r)
		}
	}
	// Herself, by login or id, with her session or her key.
	for _, tok := range []string{alice, own.Token} {
		for _, ref := range []string{"alice", "usr_alice"} {
			r := e.as(tok, "POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "space": "team", "user": ref})
			if d := wantError(t, r, http.StatusForbidden, "forbidden"); !strings.Contains(d.Message, "themselves") {
				t.Errorf("self-binding: %s", r)
			}
		}
	}
	// An automation key binding a role to itself.
	auto := e.actor("rm", "team", []string{auth.SpaceRead, auth.RoleManage, auth.SpaceWrite})
	r := e.as(auto, "POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "space": "team", "api_key": "rm"})
	wantError(t, r, http.StatusForbidden, "forbidden")
	// Others may still bind alice, and automation keys.
	var ci apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "ci"}), http.StatusCreated, &ci)
	e.must(e.as(alice, "POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "space": "team", "api_key": "ci"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "space": "team", "user": "alice"}), http.StatusCreated, nil)

	// A binding to a personal key stored before this rule gives it nothing.
	var sp apiv1.Space
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "other"}), http.StatusCreated, &sp)
	if _, err := e.db.Exec(context.Background(), `INSERT INTO role_bindings (id, role_id, space_id, actor_type, actor_id, created_by, created_at) VALUES ('rb_old', $1, 'other', $2, $3, 'x', $4)`,
		auth.RoleAdmin, auth.ActorAPIKey, own.ID, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	if r := e.as(own.Token, "GET", "/api/v1/spaces/other", nil); r.status != http.StatusNotFound {
		t.Errorf("personal key with a stale binding reads space other: %s", r)
	}
}
