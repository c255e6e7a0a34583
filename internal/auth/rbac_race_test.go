package auth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/space"
)

// raceRounds is how often each race below is run: enough for the
// unlocked check-then-act to lose on PostgreSQL within a few rounds.
const raceRounds = 60

// cleanly fails the test unless err is success or a clean refusal.
func cleanly(t *testing.T, what string, err error) {
	t.Helper()
	if err := dbtest.Lost(err); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Binding a role while another replica deletes it: never both succeed,
// and no binding is left naming no role (a later role of the same id
// would give the binding its actions).
func TestBindRaceDeleteRole(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		if err := space.NewService(a).EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		ra, rb := auth.NewRoles(a), auth.NewRoles(b)
		for i := range raceRounds {
			role := fmt.Sprintf("fr%d", i)
			if _, err := ra.CreateRole(ctx, auth.Role{ID: role, Actions: []string{auth.SpaceRead}}, "test"); err != nil {
				t.Fatal(err)
			}
			got := dbtest.Race(
				func() error {
					_, _, err := ra.Bind(ctx, auth.Binding{Role: role, Space: space.Root, ActorType: auth.ActorAPIKey, ActorID: "fresh"})
					return err
				},
				func() error { _, err := rb.DeleteRole(ctx, role); return err })
			cleanly(t, "bind", got[0])
			cleanly(t, "delete role", got[1])
			if got[0] == nil && got[1] == nil || got[0] != nil && got[1] != nil {
				t.Fatalf("round %d: bind %v, delete %v: want exactly one to succeed", i, got[0], got[1])
			}
			var dangling int
			if err := a.QueryRow(ctx, `SELECT COUNT(*) FROM role_bindings WHERE role_id = $1 AND role_id NOT IN (SELECT id FROM roles)`, role).Scan(&dangling); err != nil {
				t.Fatal(err)
			}
			if dangling > 0 {
				t.Fatalf("round %d: a binding names the deleted role %s", i, role)
			}
		}
	})
}

// Binding a role in a space while another replica deletes the space:
// never both succeed, and no binding is left in a deleted space (it
// would apply to a later space of the same id).
func TestBindRaceDeleteSpace(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		sa, sb := space.NewService(a), space.NewService(b)
		if err := sa.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		ra := auth.NewRoles(a)
		for i := range raceRounds {
			sp := fmt.Sprintf("os%d", i)
			if _, err := sa.Create(ctx, space.Space{ID: sp}); err != nil {
				t.Fatal(err)
			}
			got := dbtest.Race(
				func() error {
					_, _, err := ra.Bind(ctx, auth.Binding{Role: auth.RoleWriter, Space: sp, ActorType: auth.ActorAPIKey, ActorID: "orph"})
					return err
				},
				func() error { return sb.Delete(ctx, sp) })
			cleanly(t, "bind", got[0])
			cleanly(t, "delete space", got[1])
			if got[0] == nil && got[1] == nil || got[0] != nil && got[1] != nil {
				t.Fatalf("round %d: bind %v, delete %v: want exactly one to succeed", i, got[0], got[1])
			}
			var dangling int
			if err := a.QueryRow(ctx, `SELECT COUNT(*) FROM role_bindings WHERE space_id NOT IN (SELECT id FROM spaces)`).Scan(&dangling); err != nil {
				t.Fatal(err)
			}
			if dangling > 0 {
				t.Fatalf("round %d: a binding is left in the deleted space %s", i, sp)
			}
		}
	})
}

// Binding the same role to the same actor in the same space on two
// replicas at once (two requests on each): all succeed, with one binding,
// which exactly one of them created ("binding twice returns the existing
// one").
func TestBindTwiceConcurrently(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		if err := space.NewService(a).EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		replicas := []*auth.Roles{auth.NewRoles(a), auth.NewRoles(b), auth.NewRoles(a), auth.NewRoles(b)}
		for i := range raceRounds {
			in := auth.Binding{Role: auth.RoleReader, Space: space.Root, ActorType: auth.ActorGroup, ActorID: fmt.Sprintf("twice-%d", i)}
			out := make([]auth.Binding, len(replicas))
			created := make([]bool, len(replicas))
			var fns []func() error
			for j, rs := range replicas {
				fns = append(fns, func() (err error) { out[j], created[j], err = rs.Bind(ctx, in); return err })
			}
			n := 0
			for j, err := range dbtest.Race(fns...) {
				if err != nil {
					t.Fatalf("round %d: binding %d of the same at once: %v; want all to succeed", i, j, err)
				}
				if created[j] {
					n++
				}
				if out[j].ID != out[0].ID {
					t.Fatalf("round %d: bindings %s and %s: want one", i, out[0].ID, out[j].ID)
				}
			}
			if n != 1 {
				t.Fatalf("round %d: %d requests created the binding, want 1", i, n)
			}
		}
	})
}

// Giving a user a session or an own API key while another replica
// disables the user: afterwards the user has no session or own key that
// is not revoked (one made meanwhile would work again once the user is
// enabled), and a refusal is clean.
func TestNewSessionRaceDisable(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		ua, ub := auth.NewUsers(a), auth.NewUsers(b)
		keys := auth.NewKeys(a)
		for i := range raceRounds {
			u, err := ua.SignedIn(ctx, auth.User{Issuer: "https://idp", Subject: fmt.Sprintf("s-%d", i), Login: fmt.Sprintf("u%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			got := dbtest.Race(
				func() error { _, _, err := ua.NewSession(ctx, u.ID, "browser", "127.0.0.1", time.Hour); return err },
				func() error {
					_, _, err := keys.NewKey(ctx, auth.KeySpec{Name: fmt.Sprintf("own-%d", i), OwnerUser: u.ID})
					return err
				},
				func() error { _, err := ub.SetDisabled(ctx, u.ID, true, nil); return err })
			for j, err := range got {
				if err := dbtest.Lost(err); err != nil && !errs.Is(err, errs.Forbidden) {
					t.Fatalf("round %d, request %d: %v", i, j, err)
				}
			}
			if got[2] != nil {
				t.Fatalf("round %d: disabling: %v", i, got[2])
			}
			var live int
			if err := a.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at = 0)
				+ (SELECT COUNT(*) FROM api_tokens WHERE owner_user = $1 AND revoked_at = 0)`, u.ID).Scan(&live); err != nil {
				t.Fatal(err)
			}
			if live > 0 {
				t.Fatalf("round %d: the disabled user kept %d session(s) or key(s) not revoked", i, live)
			}
		}
	})
}
