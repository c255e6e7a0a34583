package api_test

import (
	"net/http"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// The space and stack filters of lists work: ?space= of spaces (children)
// and deliveries (the sending run's space) keeps only those, and is 404
// for a space the caller cannot read, as other lists answer; ?stack= of
// drift keeps that stack and, like /runs?stack=, is an empty list for a
// stack the caller cannot read.
func TestListFiltersApplied(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newRBACEnvOn(t, d)
		f1, f2 := e.fixture(1), e.fixture(2)
		e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "sp1-child", "parent": f1.space}), http.StatusCreated, nil)
		reader := e.actor("reader-a", f1.space, []string{auth.SpaceRead})

		ids := func(token, path string) []string {
			t.Helper()
			var out struct {
				Items []struct {
					ID    string `json:"id"`
					Stack string `json:"stack"`
					Space string `json:"space"`
				} `json:"items"`
			}
			r := e.as(token, "GET", path, nil)
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %v", path, r)
			}
			e.must(r, http.StatusOK, &out)
			var got []string
			for _, it := range out.Items {
				got = append(got, it.ID+it.Stack+"@"+it.Space)
			}
			return got
		}
		for _, path := range []string{"/api/v1/spaces?space=" + f2.space, "/api/v1/deliveries?space=" + f2.space,
			"/api/v1/spaces?space=no-such-space", "/api/v1/deliveries?space=no-such-space"} {
			wantError(t, e.as(reader, "GET", path, nil), http.StatusNotFound, "not_found")
		}
		if got := ids(reader, "/api/v1/spaces?space="+f1.space); len(got) != 1 || got[0] != "sp1-child@" {
			t.Errorf("children of %s: %q, want sp1-child", f1.space, got)
		}
		if got := ids(e.token, "/api/v1/spaces?space="+f1.space); len(got) != 1 {
			t.Errorf("children of %s as admin: %q, want sp1-child", f1.space, got)
		}
		var dl apiv1.List[apiv1.Delivery]
		e.must(e.do("GET", "/api/v1/deliveries?space="+f1.space, nil), http.StatusOK, &dl)
		if len(dl.Items) != 1 || dl.Items[0].Stack != f1.stack {
			t.Errorf("deliveries of %s as admin: %+v, want the one of %s", f1.space, dl.Items, f1.stack)
		}
		if got := ids(reader, "/api/v1/drift?stack="+f2.stack); len(got) != 0 {
			t.Errorf("drift of a stack the caller cannot read: %q, want none", got)
		}
		if got := ids(reader, "/api/v1/runs?stack="+f2.stack); len(got) != 0 {
			t.Errorf("runs of a stack the caller cannot read: %q, want none", got)
		}
		if got := ids(e.token, "/api/v1/drift?stack="+f1.stack); len(got) != 1 || got[0] != f1.stack+"@"+f1.space {
			t.Errorf("drift of %s as admin: %q, want only it", f1.stack, got)
		}
		if got := ids(e.token, "/api/v1/drift?stack=no-such-stack"); len(got) != 0 {
			t.Errorf("drift of a missing stack: %q, want none", got)
		}
	})
}
