package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Changes of integrations on two replicas at once: attaching one while it
// or its stack is deleted (each request succeeds or is refused by the
// domain, never by a constraint the database caught), and two updates of
// different fields (neither undoes the other).
func TestIntegrationRaces(t *testing.T) {
	const rounds = 40
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		ctx := context.Background()
		box, err := secrets.NewBox(bytes.Repeat([]byte{4}, 32))
		if err != nil {
			t.Fatal(err)
		}
		type replica struct {
			stacks *stack.Service
			ins    *integration.Service
		}
		mk := func(d *db.DB) replica {
			spaces, stacks := space.NewService(d), stack.NewService(d, box)
			return replica{stacks, integration.New(d, spaces, stacks)}
		}
		ra, rb := mk(a), mk(b)
		if err := space.NewService(a).EnsureRoot(ctx); err != nil {
			t.Fatal(err)
		}
		n := 0
		next := func(t *testing.T) (string, string) {
			n++
			in, err := ra.ins.Create(ctx, integration.Integration{ID: fmt.Sprintf("i%d", n), Type: "oidc", Config: map[string]string{"audience": "https://ci.example"}})
			if err != nil {
				t.Fatal(err)
			}
			st, err := ra.stacks.Create(ctx, stack.Stack{ID: fmt.Sprintf("s%d", n), Repository: "https://git.example/x.git"})
			if err != nil {
				t.Fatal(err)
			}
			return in.ID, st.ID
		}
		lost := func(t *testing.T, i int, errs []error) {
			t.Helper()
			for j, err := range errs {
				if err := dbtest.Lost(err); err != nil {
					t.Fatalf("round %d, request %d: %v", i, j, err)
				}
			}
		}
		t.Run("attach while the integration is deleted", func(t *testing.T) {
			for i := range rounds {
				in, st := next(t)
				lost(t, i, dbtest.Race(
					func() error { _, err := ra.ins.Attach(ctx, in, st, true, false); return err },
					func() error { return rb.ins.Delete(ctx, in) }))
			}
		})
		t.Run("attach while the stack is deleted", func(t *testing.T) {
			for i := range rounds {
				in, st := next(t)
				lost(t, i, dbtest.Race(
					func() error { _, err := ra.ins.Attach(ctx, in, st, true, false); return err },
					func() error { return rb.stacks.Delete(ctx, st, false) }))
			}
		})
		t.Run("two updates of different fields", func(t *testing.T) {
			for i := range rounds {
				in, _ := next(t)
				got := dbtest.Race(
					func() error {
						_, err := ra.ins.Update(ctx, in, func(x *integration.Integration) error { x.Name = "renamed"; return nil })
						return err
					},
					func() error {
						_, err := rb.ins.Update(ctx, in, func(x *integration.Integration) error { x.Description = "described"; return nil })
						return err
					})
				if got[0] != nil || got[1] != nil {
					t.Fatalf("round %d: %v, %v", i, got[0], got[1])
				}
				after, err := ra.ins.Get(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				if after.Name != "renamed" || after.Description != "described" {
					t.Fatalf("round %d: name %q, description %q: one update undid the other", i, after.Name, after.Description)
				}
			}
		})
	})
}
