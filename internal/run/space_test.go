package run_test

import (
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// Listing runs by space follows the stack: a run is listed under the space
// its stack is in now, also after the stack moved.
func TestListBySpaceFollowsTheStack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, id := range []string{"blue", "green"} {
			if _, err := f.spaces.Create(f.ctx, space.Space{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		st := f.stack(t, func(s *stack.Stack) { s.Space = "blue" })
		other := f.stack(t, func(s *stack.Stack) { s.Space = "green" })
		r := f.create(t, st.ID, run.Proposed)
		o := f.create(t, other.ID, run.Proposed)

		ids := func(spaceID string) []string {
			list, _, err := f.runs.List(f.ctx, run.Filter{Space: spaceID, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, x := range list {
				if x.SpaceID != spaceID {
					t.Errorf("run %s listed under %s says space %s", x.ID, spaceID, x.SpaceID)
				}
				out = append(out, x.ID)
			}
			return out
		}
		if got := ids("blue"); len(got) != 1 || got[0] != r.ID {
			t.Fatalf("blue: %v, want [%s]", got, r.ID)
		}
		if _, err := f.stacks.Update(f.ctx, st.ID, func(s *stack.Stack) error { s.Space = "green"; return nil }); err != nil {
			t.Fatal(err)
		}
		if got := ids("blue"); len(got) != 0 {
			t.Fatalf("blue after the move: %v, want none", got)
		}
		if got := ids("green"); len(got) != 2 || got[0] != o.ID || got[1] != r.ID {
			t.Fatalf("green after the move: %v, want [%s %s]", got, o.ID, r.ID)
		}
	})
}

// A private pool claims only the runs of stacks it may serve: those in its
// space, or below it through spaces that all inherit (the rule a stack is
// held to when set to a pool). A stack left naming a pool it may not use
// (a pool of another team that took the id of a deleted one, or a space
// that stopped inheriting) keeps its runs waiting rather than handing them,
// with their secrets, to that pool.
func TestClaimOnlyForUsablePools(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, sp := range []space.Space{
			{ID: "inh", Parent: "root", Inherit: true}, {ID: "deep", Parent: "inh", Inherit: true},
			{ID: "cut", Parent: "root"}, {ID: "under-cut", Parent: "cut", Inherit: true},
			{ID: "team-a", Parent: "root"}, {ID: "team-b", Parent: "root"},
		} {
			if _, err := f.spaces.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		ensurePool(t, d, "root-pool", "root")
		ensurePool(t, d, "a-pool", "team-a")
		ensurePool(t, d, "wp", "team-a")
		on := func(spaceID, pool string) run.Run {
			st := f.stack(t, func(s *stack.Stack) { s.Space, s.WorkerPool = spaceID, pool })
			return f.create(t, st.ID, run.Tracked)
		}
		want := map[string]bool{on("root", "root-pool").ID: true, on("inh", "root-pool").ID: true, on("deep", "root-pool").ID: true}
		on("cut", "root-pool")
		on("under-cut", "root-pool")
		on("team-b", "a-pool")
		// Pool wp of team-a is deleted from under its stack (as two
		// replicas could before pools were locked), and team-b makes a
		// pool of the same id.
		on("team-a", "wp")
		if _, err := d.Exec(f.ctx, `DELETE FROM worker_pools WHERE id = 'wp'`); err != nil {
			t.Fatal(err)
		}
		ensurePool(t, d, "wp", "team-b")

		got := map[string]bool{}
		for {
			c, err := f.runs.Claim(f.ctx, "root-pool", "w-root")
			if err != nil {
				t.Fatal(err)
			}
			if c == nil {
				break
			}
			got[c.Run.ID] = true
		}
		if len(got) != len(want) {
			t.Errorf("root-pool claimed %v, want %v", got, want)
		}
		for id := range want {
			if !got[id] {
				t.Errorf("root-pool did not claim %s", id)
			}
		}
		for _, pool := range []string{"a-pool", "wp"} {
			c, err := f.runs.Claim(f.ctx, pool, "w-"+pool)
			if err != nil {
				t.Fatal(err)
			}
			if c != nil {
				t.Errorf("pool %s claimed %s (stack %s in space %s); want nothing", pool, c.Run.ID, c.Run.StackID, c.Run.SpaceID)
			}
		}
	})
}
