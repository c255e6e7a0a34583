package contexts_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// raceRounds is how often each race is run: enough for an unlocked
// check-then-act to lose on PostgreSQL within a few rounds.
const raceRounds = 80

// lost fails the test unless every error is success or a clean refusal
// of the domain's own (see dbtest.Lost).
func lost(t *testing.T, round int, errs []error) {
	t.Helper()
	for j, err := range errs {
		if err := dbtest.Lost(err); err != nil {
			t.Fatalf("round %d, request %d: %v", round, j, err)
		}
	}
}

// Changes of contexts on two replicas at once: attaching one while it or
// its stack is deleted, setting a variable while it is deleted, adding
// hooks, setting a variable secret and plain. Each request succeeds or is
// refused by the domain (never by a constraint the database caught), no
// change undoes another, and a secret variable never ends plain after
// both succeeded.
func TestContextRaces(t *testing.T) {
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		fa, fb := newFixture(t, a), newFixture(t, b)
		n := 0
		next := func(t *testing.T) (contexts.Context, string) {
			n++
			c := fa.context(t, fmt.Sprintf("c%d", n), "root")
			return c, fa.stack(t, fmt.Sprintf("s%d", n), "root").ID
		}
		t.Run("attach while the context is deleted", func(t *testing.T) {
			for i := range raceRounds {
				c, st := next(t)
				lost(t, i, dbtest.Race(
					func() error { _, err := fa.svc.Attach(fa.ctx, c.ID, st, 0); return err },
					func() error { return fb.svc.Delete(fb.ctx, c.ID) }))
			}
		})
		t.Run("attach while the stack is deleted", func(t *testing.T) {
			for i := range raceRounds {
				c, st := next(t)
				lost(t, i, dbtest.Race(
					func() error { _, err := fa.svc.Attach(fa.ctx, c.ID, st, 0); return err },
					func() error { return fb.stacks.Delete(fb.ctx, st, false) }))
			}
		})
		t.Run("set a variable while the context is deleted", func(t *testing.T) {
			for i := range raceRounds {
				c, _ := next(t)
				lost(t, i, dbtest.Race(
					func() error {
						_, err := fa.svc.SetEnv(fa.ctx, c.ID, contexts.EnvVar{Name: "A", Value: "1"})
						return err
					},
					func() error { return fb.svc.Delete(fb.ctx, c.ID) }))
			}
		})
		t.Run("add hooks at once", func(t *testing.T) {
			for i := range raceRounds {
				c, _ := next(t)
				got := dbtest.Race(
					func() error { _, err := fa.svc.AddHook(fa.ctx, c.ID, "before_init", "echo a"); return err },
					func() error { _, err := fb.svc.AddHook(fb.ctx, c.ID, "before_init", "echo b"); return err })
				if got[0] != nil || got[1] != nil {
					t.Fatalf("round %d: %v, %v: want both hooks added", i, got[0], got[1])
				}
				after, err := fa.svc.Get(fa.ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				if h := after.Hooks.BeforeInit; len(h) != 2 || !slices.Contains(h, "echo a") || !slices.Contains(h, "echo b") {
					t.Fatalf("round %d: hooks %q: one addition undid the other", i, h)
				}
			}
		})
		t.Run("set a variable secret and plain at once", func(t *testing.T) {
			for i := range raceRounds {
				c, _ := next(t)
				got := dbtest.Race(
					func() error {
						_, err := fa.svc.SetEnv(fa.ctx, c.ID, contexts.EnvVar{Name: "TOKEN", Value: "s3cret", Secret: true})
						return err
					},
					func() error {
						_, err := fb.svc.SetEnv(fb.ctx, c.ID, contexts.EnvVar{Name: "TOKEN", Value: "plain"})
						return err
					})
				lost(t, i, got)
				vars, err := fa.svc.ListEnv(fa.ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got[0] == nil && got[1] == nil && (len(vars) != 1 || !vars[0].Secret) {
					t.Fatalf("round %d: both succeeded and the variable is %+v: a plain value replaced the secret one", i, vars)
				}
			}
		})
	})
}
