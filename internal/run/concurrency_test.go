package run_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

// racers returns run services for concurrent callers: on SQLite one
// database shared by two callers; on PostgreSQL two separately opened
// databases on the same URL (as two server replicas), two callers each.
func racers(t *testing.T, dialect string) (*fixture, []*run.Service) {
	t.Helper()
	if dialect == "sqlite" {
		f := newFixture(t, dbtest.SQLite(t))
		return f, []*run.Service{f.runs, f.runs}
	}
	url := dbtest.PostgresURL(t)
	var services []*run.Service
	var first *fixture
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		d, err := db.Open(ctx, url, "", nil)
		cancel()
		if err != nil {
			t.Fatalf("open replica %d: %v", i, err)
		}
		t.Cleanup(func() { d.Close() })
		f := newFixture(t, d)
		if first == nil {
			first = f
		}
		services = append(services, f.runs, f.runs)
	}
	return first, services
}

func eachRacers(t *testing.T, fn func(t *testing.T, f *fixture, services []*run.Service)) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			f, services := racers(t, dialect)
			fn(t, f, services)
		})
	}
}

func TestClaimConcurrently(t *testing.T) {
	const stacks = 25 // each with a READY tracked run and a READY proposed run
	eachRacers(t, func(t *testing.T, f *fixture, services []*run.Service) {
		want := map[string]bool{}
		for i := 0; i < stacks; i++ {
			st := f.stack(t, func(s *stack.Stack) { s.WorkerPool = "race" })
			for _, typ := range []string{run.Tracked, run.Proposed} {
				r := f.create(t, st.ID, typ)
				if r.State != run.Ready {
					t.Fatalf("run %s is %s, want READY", r.ID, r.State)
				}
				want[r.ID] = true
			}
			f.create(t, st.ID, run.Tracked) // QUEUED: must not be claimed
		}

		var mu sync.Mutex
		claimedBy := map[string][]string{}
		var wg sync.WaitGroup
		errc := make(chan error, len(services))
		start := make(chan struct{})
		for i, s := range services {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				workerID := fmt.Sprintf("wrk-%d", i)
				for {
					c, err := s.Claim(context.Background(), "race", workerID)
					if err != nil {
						errc <- err
						return
					}
					if c == nil {
						return
					}
					mu.Lock()
					claimedBy[c.Run.ID] = append(claimedBy[c.Run.ID], workerID)
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Errorf("Claim: %v", err)
		}
		// Whatever a claimer gave up on (rows locked by another) was
		// claimed by the other: nothing claimable is left.
		if c, err := f.runs.Claim(f.ctx, "race", "wrk-late"); err != nil || c != nil {
			t.Fatalf("after the race, Claim = %+v, %v; want nothing left", c, err)
		}
		var dup, extra []string
		for id, by := range claimedBy {
			if len(by) != 1 {
				dup = append(dup, fmt.Sprintf("%s by %v", id, by))
			}
			if !want[id] {
				extra = append(extra, id)
			}
		}
		sort.Strings(dup)
		if len(dup) > 0 || len(extra) > 0 || len(claimedBy) != len(want) {
			t.Fatalf("claimed %d distinct runs of %d; claimed more than once: %v; not READY before: %v", len(claimedBy), len(want), dup, extra)
		}
		for id, by := range claimedBy {
			r := f.wantState(t, id, run.Preparing)
			if r.WorkerID != by[0] {
				t.Errorf("run %s is held by %s, claimed by %s", id, r.WorkerID, by[0])
			}
			tr, err := f.runs.Transitions(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(tr); n != 3 || tr[n-1].To != run.Preparing {
				t.Errorf("run %s has transitions %+v, want exactly one claim", id, tr)
			}
		}
	})
}

// TestCreateConcurrently: blocking runs created at once on one stack hold it
// one at a time.
func TestCreateConcurrently(t *testing.T) {
	const perCaller = 5
	eachRacers(t, func(t *testing.T, f *fixture, services []*run.Service) {
		st := f.stack(t, nil)
		var wg sync.WaitGroup
		errc := make(chan error, len(services)*perCaller)
		start := make(chan struct{})
		for _, s := range services {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < perCaller; i++ {
					if _, err := s.Create(context.Background(), run.New{StackID: st.ID, TriggeredBy: "race"}); err != nil {
						errc <- err
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatalf("Create: %v", err)
		}
		list, _, err := f.runs.List(f.ctx, run.Filter{Stack: st.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		states := map[string]int{}
		for _, r := range list {
			states[r.State]++
		}
		if n := len(services) * perCaller; len(list) != n || states[run.Ready] != 1 || states[run.Queued] != n-1 {
			t.Fatalf("after %d concurrent creations: %v, want 1 READY and the rest QUEUED", n, states)
		}
	})
}

// Creating a run while another replica deletes its stack without force:
// never both succeed (the run accepted, then deleted with the stack
// unseen), and the loser is refused cleanly.
func TestCreateRaceStackDelete(t *testing.T) {
	const rounds = 60
	dbtest.EachReplicas(t, func(t *testing.T, a, b *db.DB) {
		f := newFixture(t, a)
		other := stack.NewService(b, testBox(t))
		for i := range rounds {
			st := f.stack(t, nil)
			got := dbtest.Race(
				func() error {
					_, err := f.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Tracked, TriggeredBy: "alice"})
					return err
				},
				func() error { return other.Delete(f.ctx, st.ID, false) })
			for j, err := range got {
				if err := dbtest.Lost(err); err != nil {
					t.Fatalf("round %d: %s: %v", i, []string{"creating the run", "deleting the stack"}[j], err)
				}
			}
			if got[0] == nil && got[1] == nil || got[0] != nil && got[1] != nil {
				t.Fatalf("round %d: creating the run: %v; deleting the stack: %v; want exactly one to succeed", i, got[0], got[1])
			}
		}
	})
}
