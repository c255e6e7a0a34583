package workerpool_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// Setting a stack to a pool (creating it there, or moving it there) while
// another replica deletes the pool: one of the two is refused cleanly, and
// no stack is left naming a deleted pool (a later pool of that id, maybe
// another team's, would run its jobs).
func TestDeleteRaceStack(t *testing.T) {
	const rounds = 60
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		box, err := secrets.NewBox(bytes.Repeat([]byte{2}, 32))
		if err != nil {
			t.Fatal(err)
		}
		spaces := space.NewService(a)
		if err := spaces.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		stacks := stack.NewService(a, box)
		pa, pb := workerpool.NewService(a, spaces, events.NewHub()), workerpool.NewService(b, space.NewService(b), events.NewHub())
		set := map[string]func(pool, id string) error{
			"create": func(pool, id string) error {
				_, err := stacks.Create(ctx, stack.Stack{ID: id, Repository: "https://git.example/x.git", WorkerPool: pool})
				return err
			},
			"move": func(pool, id string) error {
				_, err := stacks.Update(ctx, "mover-"+id, func(s *stack.Stack) error { s.WorkerPool = pool; return nil })
				return err
			},
		}
		n := 0
		for what, fn := range set {
			t.Run(what, func(t *testing.T) {
				for i := range rounds {
					n++
					pool, id := fmt.Sprintf("wp%d", n), fmt.Sprintf("st%d", n)
					if _, _, err := pa.Create(ctx, workerpool.Pool{ID: pool}); err != nil {
						t.Fatal(err)
					}
					if _, err := stacks.Create(ctx, stack.Stack{ID: "mover-" + id, Repository: "https://git.example/x.git"}); err != nil {
						t.Fatal(err)
					}
					got := dbtest.Race(func() error { return fn(pool, id) }, func() error { return pb.Delete(ctx, pool) })
					for j, err := range got {
						if err := dbtest.Lost(err); err != nil {
							t.Fatalf("round %d: %s: %v", i, []string{"setting the stack's pool", "deleting the pool"}[j], err)
						}
					}
					if got[0] == nil && got[1] == nil || got[0] != nil && got[1] != nil {
						t.Fatalf("round %d: setting the stack's pool: %v; deleting the pool: %v; want exactly one to succeed", i, got[0], got[1])
					}
					var k int
					if err := a.QueryRow(ctx, `SELECT COUNT(*) FROM stacks WHERE worker_pool <> '' AND worker_pool NOT IN (SELECT id FROM worker_pools)`).Scan(&k); err != nil {
						t.Fatal(err)
					}
					if k > 0 {
						t.Fatalf("round %d: a stack names the deleted pool %s", i, pool)
					}
				}
			})
		}
	})
}

// Two updates of different fields of a pool on two replicas at once:
// neither undoes the other.
func TestUpdateRace(t *testing.T) {
	const rounds = 40
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		spaces := space.NewService(a)
		if err := spaces.EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		pa, pb := workerpool.NewService(a, spaces, events.NewHub()), workerpool.NewService(b, space.NewService(b), events.NewHub())
		for i := range rounds {
			id := fmt.Sprintf("up%d", i)
			if _, _, err := pa.Create(ctx, workerpool.Pool{ID: id}); err != nil {
				t.Fatal(err)
			}
			got := dbtest.Race(
				func() error {
					_, err := pa.Update(ctx, id, func(p *workerpool.Pool) error { p.Name = "renamed"; return nil })
					return err
				},
				func() error {
					_, err := pb.Update(ctx, id, func(p *workerpool.Pool) error { p.Description = "described"; return nil })
					return err
				})
			if got[0] != nil || got[1] != nil {
				t.Fatalf("round %d: %v, %v", i, got[0], got[1])
			}
			after, err := pa.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if after.Name != "renamed" || after.Description != "described" {
				t.Fatalf("round %d: name %q, description %q: one update undid the other", i, after.Name, after.Description)
			}
		}
	})
}
