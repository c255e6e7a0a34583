package stack_test

import (
	"fmt"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Changes of one stack on two replicas at once: two updates of different
// fields (neither undoes the other), a variable set secret and plain (a
// plain value never replaces the secret one when both succeed), a
// variable set while the stack is deleted (refused by the domain if at
// all, never by a constraint the database caught).
func TestStackRaces(t *testing.T) {
	const rounds = 40
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		fa, fb := newFixture(t, a), newFixture(t, b)
		n := 0
		next := func(t *testing.T) string {
			n++
			return fa.create(t, stack.Stack{ID: fmt.Sprintf("s%d", n)}).ID
		}
		t.Run("two updates of different fields", func(t *testing.T) {
			for i := range rounds {
				id := next(t)
				got := dbtest.Race(
					func() error {
						_, err := fa.stacks.Update(fa.ctx, id, func(s *stack.Stack) error { s.Name = "renamed"; return nil })
						return err
					},
					func() error {
						_, err := fb.stacks.Update(fb.ctx, id, func(s *stack.Stack) error { s.Description = "described"; return nil })
						return err
					})
				if got[0] != nil || got[1] != nil {
					t.Fatalf("round %d: %v, %v", i, got[0], got[1])
				}
				after, err := fa.stacks.Get(fa.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if after.Name != "renamed" || after.Description != "described" {
					t.Fatalf("round %d: name %q, description %q: one update undid the other", i, after.Name, after.Description)
				}
			}
		})
		t.Run("set a variable secret and plain at once", func(t *testing.T) {
			for i := range rounds {
				id := next(t)
				got := dbtest.Race(
					func() error {
						_, err := fa.stacks.SetEnv(fa.ctx, id, stack.EnvVar{Name: "TOKEN", Value: "s3cret", Secret: true})
						return err
					},
					func() error {
						_, err := fb.stacks.SetEnv(fb.ctx, id, stack.EnvVar{Name: "TOKEN", Value: "plain"})
						return err
					})
				for _, err := range got {
					if err := dbtest.Lost(err); err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
				}
				vars, err := fa.stacks.ListEnv(fa.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got[0] == nil && got[1] == nil && (len(vars) != 1 || !vars[0].Secret) {
					t.Fatalf("round %d: both succeeded and the variable is %+v: a plain value replaced the secret one", i, vars)
				}
			}
		})
		t.Run("set a variable while the stack is deleted", func(t *testing.T) {
			for i := range rounds {
				id := next(t)
				got := dbtest.Race(
					func() error { _, err := fa.stacks.SetEnv(fa.ctx, id, stack.EnvVar{Name: "A", Value: "1"}); return err },
					func() error { return fb.stacks.Delete(fb.ctx, id, false) })
				for _, err := range got {
					if err := dbtest.Lost(err); err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
				}
			}
		})
	})
}
