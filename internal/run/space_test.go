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
