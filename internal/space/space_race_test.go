package space_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// replica is what one server does to spaces and what they hold.
type replica struct {
	spaces *space.Service
	add    map[string]func(ctx context.Context, spaceID, id string) error
}

func newReplica(t *testing.T, d *db.DB) replica {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	hub := events.NewHub()
	spaces := space.NewService(d)
	stacks := stack.NewService(d, box)
	policies := policy.NewService(d, spaces, stacks, nil, nil, hub, log)
	pools := workerpool.NewService(d, spaces, hub)
	ctxs := contexts.NewService(d, box, spaces, stacks)
	integrations := integration.New(d, spaces, stacks)
	notifications := notify.NewService(d, box, log)
	roles := auth.NewRoles(d)
	return replica{spaces: spaces, add: map[string]func(ctx context.Context, spaceID, id string) error{
		"child space": func(ctx context.Context, sp, id string) error {
			_, err := spaces.Create(ctx, space.Space{ID: id, Parent: sp})
			return err
		},
		"stack": func(ctx context.Context, sp, id string) error {
			_, err := stacks.Create(ctx, stack.Stack{ID: id, Space: sp, Repository: "https://git.example/x.git"})
			return err
		},
		"policy": func(ctx context.Context, sp, id string) error {
			_, err := policies.Create(ctx, policy.Policy{ID: id, Space: sp, Type: "PLAN", Body: "package spacelift\n"})
			return err
		},
		"worker pool": func(ctx context.Context, sp, id string) error {
			_, _, err := pools.Create(ctx, workerpool.Pool{ID: id, Space: sp})
			return err
		},
		"context": func(ctx context.Context, sp, id string) error {
			_, err := ctxs.Create(ctx, contexts.Context{ID: id, Space: sp})
			return err
		},
		"integration": func(ctx context.Context, sp, id string) error {
			_, err := integrations.Create(ctx, integration.Integration{ID: id, Space: sp, Type: "oidc", Config: map[string]string{"audience": "https://ci.example"}})
			return err
		},
		"role binding": func(ctx context.Context, sp, id string) error {
			_, _, err := roles.Bind(ctx, auth.Binding{Role: auth.RoleReader, Space: sp, ActorType: auth.ActorGroup, ActorID: id})
			return err
		},
		"notification endpoint": func(ctx context.Context, sp, id string) error {
			_, err := notifications.CreateEndpoint(ctx, notify.Endpoint{ID: id, SpaceID: sp, Kind: notify.KindWebhook, URL: "http://127.0.0.1:1/hook", Enabled: true})
			return err
		},
	}}
}

// orphans are the queries that find something naming a space that does
// not exist.
var orphans = []string{
	`SELECT COUNT(*) FROM spaces WHERE parent_id IS NOT NULL AND parent_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM stacks WHERE space_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM policies WHERE space_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM worker_pools WHERE space_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM contexts WHERE space_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM integrations WHERE space_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM role_bindings WHERE space_id NOT IN (SELECT id FROM spaces)`,
	`SELECT COUNT(*) FROM notify_endpoints WHERE space_id NOT IN (SELECT id FROM spaces)`,
}

// Adding anything to a space while another replica deletes the space:
// one of the two is refused by the domain (a clean 400, 404 or 409, not a
// constraint violation the database caught, which was a 500), and nothing
// is left in a deleted space. A notification endpoint goes with its
// space, so there both may succeed.
func TestDeleteRaceAdd(t *testing.T) {
	const rounds = 80
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		ra, rb := newReplica(t, a), newReplica(t, b)
		if err := ra.spaces.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		n := 0
		for what, add := range ra.add {
			t.Run(what, func(t *testing.T) {
				for i := range rounds {
					n++
					sp, id := fmt.Sprintf("sp%d", n), fmt.Sprintf("x%d", n)
					if _, err := ra.spaces.Create(ctx, space.Space{ID: sp}); err != nil {
						t.Fatal(err)
					}
					got := dbtest.Race(func() error { return add(ctx, sp, id) }, func() error { return rb.spaces.Delete(ctx, sp) })
					for j, err := range got {
						if err := dbtest.Lost(err); err != nil {
							t.Fatalf("round %d: %s: %v", i, []string{"adding", "deleting the space"}[j], err)
						}
					}
					both := got[0] == nil && got[1] == nil
					if got[0] != nil && got[1] != nil || both && what != "notification endpoint" {
						t.Fatalf("round %d: adding: %v; deleting the space: %v; want exactly one to succeed", i, got[0], got[1])
					}
					for _, q := range orphans {
						var k int
						if err := a.QueryRow(ctx, q).Scan(&k); err != nil {
							t.Fatal(err)
						}
						if k > 0 {
							t.Fatalf("round %d: %s: %d", i, q, k)
						}
					}
				}
			})
		}
	})
}

// Two updates of different fields of a space on two replicas at once:
// neither undoes the other.
func TestUpdateRace(t *testing.T) {
	const rounds = 40
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		sa, sb := space.NewService(a), space.NewService(b)
		if err := sa.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range rounds {
			id := fmt.Sprintf("up%d", i)
			if _, err := sa.Create(ctx, space.Space{ID: id}); err != nil {
				t.Fatal(err)
			}
			got := dbtest.Race(
				func() error {
					_, err := sa.Update(ctx, id, func(s *space.Space) error { s.Name = "renamed"; return nil })
					return err
				},
				func() error {
					_, err := sb.Update(ctx, id, func(s *space.Space) error { s.Description = "described"; return nil })
					return err
				})
			if got[0] != nil || got[1] != nil {
				t.Fatalf("round %d: %v, %v", i, got[0], got[1])
			}
			after, err := sa.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if after.Name != "renamed" || after.Description != "described" {
				t.Fatalf("round %d: name %q, description %q: one update undid the other", i, after.Name, after.Description)
			}
		}
	})
}
