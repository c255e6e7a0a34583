package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/space"
)

// spaceTree makes root -> team (inherits) -> app (inherits), and root ->
// other (does not inherit) -> leaf (inherits).
func spaceTree(t *testing.T, d *db.DB) {
	t.Helper()
	ctx := context.Background()
	s := space.NewService(d)
	if err := s.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sp := range []space.Space{{ID: "team", Parent: "root", Inherit: true}, {ID: "app", Parent: "team", Inherit: true},
		{ID: "other", Parent: "root"}, {ID: "leaf", Parent: "other", Inherit: true}} {
		sp.Name = sp.ID
		if _, err := s.Create(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBindingsInheritance(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		spaceTree(t, d)
		rs := auth.NewRoles(d)
		bind := func(role, sp, actorType, actorID string) {
			t.Helper()
			if _, _, err := rs.Bind(ctx, auth.Binding{Role: role, Space: sp, ActorType: actorType, ActorID: actorID}); err != nil {
				t.Fatal(err)
			}
		}
		principal := func(p auth.Principal) auth.Principal {
			t.Helper()
			perms, admin, err := rs.Resolve(ctx, p.Actors(), p.Grants)
			if err != nil {
				t.Fatal(err)
			}
			p.Perms, p.Admin = perms, p.Admin || admin
			return p
		}

		// A writer in team writes in team and its descendant app, not in
		// root or other.
		bind(auth.RoleWriter, "team", auth.ActorAPIKey, "key-w")
		w := principal(auth.Principal{Kind: "api_key", ID: "key-w", Name: "w"})
		for sp, want := range map[string]bool{"team": true, "app": true, "root": false, "other": false, "leaf": false} {
			if got := w.Can(auth.RunTrigger, sp); got != want {
				t.Errorf("writer in team: run:trigger in %s = %v, want %v", sp, got, want)
			}
		}
		if w.Can(auth.StackCreate, "team") {
			t.Error("a writer may create stacks")
		}
		// team inherits: any role in team gives read on root, nothing else.
		if !w.Can(auth.SpaceRead, "root") || w.Can(auth.RunTrigger, "root") {
			t.Error("team inherits from root: its writer reads root, and only reads")
		}
		// 403 names the action and the space.
		err := auth.Authorize(w, auth.StackDelete, "app")
		if !errs.Is(err, errs.Forbidden) || errors.Is(err, auth.ErrHidden) || !strings.Contains(errs.Public(err), "missing action stack:delete") {
			t.Errorf("writer deleting: %v", err)
		}
		// Nothing in other: refusals there are hidden.
		if err := auth.Authorize(w, auth.SpaceRead, "other"); !errors.Is(err, auth.ErrHidden) {
			t.Errorf("writer reading other: %v, want hidden", err)
		}

		// leaf inherits from other, other not from root: a reader in leaf
		// reads other, not root.
		bind(auth.RoleReader, "leaf", auth.ActorGroup, "leafers")
		g := principal(auth.Principal{Kind: "user", ID: "ses-1", Name: "u", User: "usr-1", Groups: []string{"leafers"}})
		if !g.Can(auth.SpaceRead, "leaf") || !g.Can(auth.SpaceRead, "other") || g.Can(auth.SpaceRead, "root") {
			t.Error("a reader in leaf: reads leaf and other (inherit), not root")
		}
		if !slices.Equal(g.Perms.Roles(), []string{"space-reader@leaf"}) {
			t.Errorf("roles = %v", g.Perms.Roles())
		}

		// Login policy grants count like bindings; unknown roles grant nothing.
		lp := principal(auth.Principal{Kind: "user", ID: "ses-2", Name: "v", User: "usr-2",
			Grants: map[string][]string{"other": {auth.RoleAdmin}, "team": {"no-such-role"}}})
		if !lp.Can(auth.StackDelete, "leaf") || lp.Can(auth.SpaceRead, "team") {
			t.Error("a login policy space-admin grant in other: admin of other and leaf only")
		}

		// space-admin in root is the account admin; custom roles hold what they list.
		bind(auth.RoleAdmin, "root", auth.ActorUser, "usr-admin")
		if a := principal(auth.Principal{Kind: "user", User: "usr-admin"}); !a.Admin || !a.Can(auth.AuditRead, "root") {
			t.Error("space-admin in root is not the account admin")
		}
		if _, err := rs.CreateRole(ctx, auth.Role{ID: "auditor", Actions: []string{auth.AuditRead, auth.AuditRead}}, "test"); err != nil {
			t.Fatal(err)
		}
		bind("auditor", "root", auth.ActorAPIKey, "key-a")
		au := principal(auth.Principal{Kind: "api_key", ID: "key-a"})
		if !au.Can(auth.AuditRead, "root") || au.Can(auth.SpaceRead, "root") || au.Admin {
			t.Error("auditor: audit:read only")
		}

		// A review's author_roles: the roles held in a space or its
		// ancestors; an admin is a space-admin everywhere.
		both := principal(auth.Principal{Kind: "user", ID: "ses-3", Name: "x", User: "usr-3", Groups: []string{"leafers"},
			Grants: map[string][]string{"other": {auth.RoleAdmin}, "team": {auth.RoleWriter}}})
		if got := both.RolesIn("leaf"); !slices.Equal(got, []string{auth.RoleAdmin, auth.RoleReader}) {
			t.Errorf("roles in leaf = %v, want space-admin (other) and space-reader (leaf)", got)
		}
		if got := both.RolesIn("root"); len(got) != 0 {
			t.Errorf("roles in root = %v, want none", got)
		}
		if got := principal(auth.Principal{Kind: "user", User: "usr-admin"}).RolesIn("leaf"); !slices.Equal(got, []string{auth.RoleAdmin}) {
			t.Errorf("the admin's roles in leaf = %v", got)
		}

		// Role store errors.
		if _, err := rs.CreateRole(ctx, auth.Role{ID: "Bad Id", Actions: []string{auth.SpaceRead}}, ""); !errs.Is(err, errs.Invalid) {
			t.Errorf("bad id: %v", err)
		}
		if _, err := rs.CreateRole(ctx, auth.Role{ID: "x", Actions: []string{"stack:fly"}}, ""); !errs.Is(err, errs.Invalid) {
			t.Errorf("unknown action: %v", err)
		}
		if _, err := rs.CreateRole(ctx, auth.Role{ID: auth.RoleReader, Actions: []string{auth.SpaceRead}}, ""); !errs.Is(err, errs.Conflict) {
			t.Errorf("built-in id: %v", err)
		}
		if _, err := rs.DeleteRole(ctx, "auditor"); !errs.Is(err, errs.Conflict) {
			t.Errorf("deleting a bound role: %v", err)
		}
		if _, _, err := rs.Bind(ctx, auth.Binding{Role: auth.RoleReader, Space: "nowhere", ActorType: auth.ActorGroup, ActorID: "g"}); !errs.Is(err, errs.NotFound) {
			t.Errorf("binding in a missing space: %v", err)
		}
		if _, created, err := rs.Bind(ctx, auth.Binding{Role: auth.RoleWriter, Space: "team", ActorType: auth.ActorAPIKey, ActorID: "key-w"}); err != nil || created {
			t.Errorf("binding twice: created %v, %v", created, err)
		}
	})
}

func TestSessions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		us := auth.NewUsers(d)
		u, err := us.SignedIn(ctx, auth.User{Issuer: "https://idp", Subject: "s-1", Login: "alice", Groups: []string{"devs"}})
		if err != nil {
			t.Fatal(err)
		}
		// A second login updates the user, same id.
		u2, err := us.SignedIn(ctx, auth.User{Issuer: "https://idp", Subject: "s-1", Login: "alice", Groups: []string{"ops"}, Admin: true})
		if err != nil || u2.ID != u.ID || !slices.Equal(u2.Groups, []string{"ops"}) || !u2.Admin {
			t.Fatalf("second login = %+v, %v", u2, err)
		}
		sess, token, err := us.NewSession(ctx, u.ID, "browser", "127.0.0.1", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p, err := us.Authenticate(ctx, token)
		if err != nil || p.Kind != "user" || p.User != u.ID || p.String() != "user::alice" || !p.Admin || p.ID != sess.ID {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}
		if err := us.RevokeSession(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := us.Authenticate(ctx, token); !errs.Is(err, errs.Unauthenticated) || !strings.Contains(errs.Public(err), "signed out") {
			t.Errorf("after logout: %v", err)
		}
		// Expiry.
		_, short, err := us.NewSession(ctx, u.ID, "cli", "127.0.0.1", 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := us.Authenticate(ctx, short); err != nil {
			t.Fatalf("fresh session: %v", err)
		}
		time.Sleep(80 * time.Millisecond)
		if _, err := us.Authenticate(ctx, short); !errs.Is(err, errs.Unauthenticated) || !strings.Contains(errs.Public(err), "expired") {
			t.Errorf("expired session: %v", err)
		}
		if _, err := us.Authenticate(ctx, auth.SessionPrefix+"nope"); !errs.Is(err, errs.Unauthenticated) {
			t.Errorf("unknown session: %v", err)
		}
		// Cookies: signed with a key shared through the database.
		key, err := us.CookieKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := auth.NewUsers(d).CookieKey(ctx)
		if string(key) != string(again) || len(key) != 32 {
			t.Fatal("cookie key not stable")
		}
		v := auth.SignCookie(key, token)
		if got, ok := auth.VerifyCookie(key, v); !ok || got != token {
			t.Error("a signed cookie does not verify")
		}
		for _, bad := range []string{token, v + "x", "a" + v, strings.Replace(v, ".", ".A", 1)} {
			if _, ok := auth.VerifyCookie(key, bad); ok {
				t.Errorf("cookie %q verified", bad)
			}
		}
	})
}

// A user's own API key keeps what single sign-on gave the user (groups,
// login policy grants, admin) only within GrantsMaxAge of their last
// sign-in: someone removed from a group at the IdP who never signs in
// again loses it on their keys too. A new sign-in restores it.
func TestOwnKeysGrantsLapse(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		us := auth.NewUsers(d)
		us.GrantsMaxAge = 30 * 24 * time.Hour
		sso := auth.User{Issuer: "https://idp.example", Subject: "alice-sub", Login: "alice",
			Groups: []string{"platform"}, Grants: map[string][]string{"team": {"space-writer"}}, Admin: true}
		u, err := us.SignedIn(ctx, sso)
		if err != nil {
			t.Fatal(err)
		}
		key := auth.Principal{Kind: "api_key", ID: "key-1", Name: "laptop", User: u.ID}
		p, err := us.ActAs(ctx, key)
		if err != nil || !p.Admin || !slices.Equal(p.Groups, []string{"platform"}) || len(p.Grants["team"]) != 1 {
			t.Fatalf("fresh sign-in: %+v, %v", p, err)
		}
		if _, err := d.Exec(ctx, `UPDATE users SET last_login_at = $2 WHERE id = $1`, u.ID, time.Now().Add(-31*24*time.Hour).UnixNano()); err != nil {
			t.Fatal(err)
		}
		p, err = us.ActAs(ctx, key)
		if err != nil || p.Admin || len(p.Groups) != 0 || len(p.Grants) != 0 || p.User != u.ID {
			t.Fatalf("31 days after the last sign-in: %+v, %v; want the user without SSO grants", p, err)
		}
		if _, err := us.SignedIn(ctx, sso); err != nil {
			t.Fatal(err)
		}
		if p, _ = us.ActAs(ctx, key); !p.Admin {
			t.Fatalf("after signing in again: %+v", p)
		}
		// Without a bound, the grants never lapse.
		forever := auth.NewUsers(d)
		if _, err := d.Exec(ctx, `UPDATE users SET last_login_at = $2 WHERE id = $1`, u.ID, time.Now().Add(-365*24*time.Hour).UnixNano()); err != nil {
			t.Fatal(err)
		}
		if p, _ = forever.ActAs(ctx, key); !p.Admin {
			t.Fatalf("without GrantsMaxAge: %+v", p)
		}
	})
}
