package schedule

import (
	"slices"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
)

// Setting a stack's drift detection from several requests at once (two
// per replica), first when it has none, then when it has one: every
// request succeeds, the last writer wins, and the stack has one drift
// schedule, one of those asked for.
func TestSetDriftConcurrently(t *testing.T) {
	const rounds = 30
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		f := newFixture(t, a)
		replicas := []*Service{f.svc, New(b), f.svc, New(b)}
		crons := []string{"*/30 * * * *", "*/20 * * * *", "0 * * * *", "15 3 * * *"}
		for i := range rounds {
			st := f.stack(t, "")
			for pass := range 2 {
				var fns []func() error
				for j, s := range replicas {
					fns = append(fns, func() error {
						_, err := s.SetDrift(f.ctx, st.ID, "alice", DriftSettings{Crons: []string{crons[j]}})
						return err
					})
				}
				for j, err := range dbtest.Race(fns...) {
					if err != nil {
						t.Fatalf("round %d, pass %d: request %d: %v (kind %s); want all to succeed", i, pass, j, err, errs.KindOf(err))
					}
				}
				list, err := f.svc.List(f.ctx, st.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(list) != 1 || list[0].Kind != KindDrift || len(list[0].Crons) != 1 || !slices.Contains(crons, list[0].Crons[0]) {
					t.Fatalf("round %d, pass %d: schedules %+v; want one drift schedule, as one request set it", i, pass, list)
				}
			}
		}
	})
}

// Scheduling two deletes of one stack at once: one is refused (409, the
// stack already has one), never both stored.
func TestAddDeleteConcurrently(t *testing.T) {
	const rounds = 30
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		f := newFixture(t, a)
		other := New(b)
		for i := range rounds {
			st := f.stack(t, "")
			in := NewSchedule{Kind: KindDelete, At: time.Now().Add(24 * time.Hour)}
			got := dbtest.Race(
				func() error { _, err := f.svc.Add(f.ctx, st.ID, "alice", in); return err },
				func() error { _, err := other.Add(f.ctx, st.ID, "bob", in); return err })
			for _, err := range got {
				if err := dbtest.Lost(err); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
			}
			if (got[0] == nil) == (got[1] == nil) {
				t.Fatalf("round %d: %v, %v: want exactly one scheduled delete", i, got[0], got[1])
			}
			list, err := f.svc.List(f.ctx, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(list); n != 1 {
				t.Fatalf("round %d: %d schedules, want 1", i, n)
			}
		}
	})
}
