package policy_test

import (
	"fmt"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/policy"
)

// Changes of policies on two replicas at once: attaching one while it or
// its stack is deleted (each request succeeds or is refused by the
// domain, never by a constraint the database caught), and two updates of
// its body (both succeed, as two versions).
func TestPolicyRaces(t *testing.T) {
	const rounds = 40
	const body = "package spacelift\n"
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		fa, fb := newFixture(t, a), newFixture(t, b)
		n := 0
		next := func(t *testing.T) (policy.Policy, string) {
			n++
			return fa.policy(t, fmt.Sprintf("p%d", n), "PLAN", body), fa.stack(t, nil).ID
		}
		lost := func(t *testing.T, i int, errs []error) {
			t.Helper()
			for j, err := range errs {
				if err := dbtest.Lost(err); err != nil {
					t.Fatalf("round %d, request %d: %v", i, j, err)
				}
			}
		}
		t.Run("attach while the policy is deleted", func(t *testing.T) {
			for i := range rounds {
				p, st := next(t)
				lost(t, i, dbtest.Race(
					func() error { return fa.policies.Attach(fa.ctx, p.ID, st) },
					func() error { return fb.policies.Delete(fb.ctx, p.ID) }))
			}
		})
		t.Run("attach while the stack is deleted", func(t *testing.T) {
			for i := range rounds {
				p, st := next(t)
				lost(t, i, dbtest.Race(
					func() error { return fa.policies.Attach(fa.ctx, p.ID, st) },
					func() error { return fb.stacks.Delete(fb.ctx, st, false) }))
			}
		})
		t.Run("two updates of the body", func(t *testing.T) {
			for i := range rounds {
				p, _ := next(t)
				update := func(s *policy.Service, rule string) func() error {
					return func() error {
						_, err := s.Update(fa.ctx, p.ID, func(p *policy.Policy) error {
							p.Body = body + "# " + rule + "\n"
							return nil
						})
						return err
					}
				}
				got := dbtest.Race(update(fa.policies, "warn"), update(fb.policies, "deny"))
				if got[0] != nil || got[1] != nil {
					t.Fatalf("round %d: %v, %v: want both updates stored", i, got[0], got[1])
				}
				after, err := fa.policies.Get(fa.ctx, p.ID)
				if err != nil {
					t.Fatal(err)
				}
				if after.Version != 3 {
					t.Fatalf("round %d: version %d after two updates, want 3", i, after.Version)
				}
			}
		})
	})
}
