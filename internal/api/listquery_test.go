package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
)

// pagedLists returns the GET operations of openapi.json that take a cursor.
func pagedLists(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]struct{ Name string } `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, item := range doc.Paths {
		var op struct {
			Parameters []struct {
				Ref  string `json:"$ref"`
				Name string `json:"name"`
			} `json:"parameters"`
		}
		if json.Unmarshal(item["get"], &op) != nil {
			continue
		}
		for _, p := range op.Parameters {
			name := p.Name
			if ref, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
				name = doc.Components.Parameters[ref].Name
			}
			if name == "cursor" {
				out = append(out, "GET "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestListCursorsChecked: every paginated list refuses a cursor it did not
// hand out (made up, damaged, another list's) with 400, and follows its
// own.
func TestListCursorsChecked(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(0)
	for i := 1; i < 3; i++ {
		e.createStack(f.stack+"-"+string(rune('a'+i)), map[string]any{"space": f.space})
	}
	lists := pagedLists(t)
	if len(lists) < 10 {
		t.Fatalf("found %d paginated lists, want them all", len(lists))
	}
	var stacks apiv1.List[apiv1.Stack]
	e.must(e.do("GET", "/api/v1/stacks?limit=1", nil), http.StatusOK, &stacks)
	if stacks.NextCursor == "" {
		t.Fatal("no next_cursor for the stacks")
	}
	for _, pattern := range lists {
		t.Run(pattern, func(t *testing.T) {
			_, path, _ := matrixCall(pattern, f)
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			bad := []string{"garbage", "%00%FF", "-1", "0", url.QueryEscape(stacks.NextCursor)}
			if pattern == "GET /api/v1/stacks" {
				bad = bad[:4]
			}
			for _, c := range bad {
				d := wantError(t, e.do("GET", path+sep+"cursor="+c, nil), http.StatusBadRequest, "invalid")
				// Not UTF-8: refused with the URL, before the list reads it.
				if !strings.Contains(d.Message, "is not a next_cursor of this list") && !(c == "%00%FF" && strings.Contains(d.Message, "invalid UTF-8")) {
					t.Errorf("cursor %s: message %q", c, d.Message)
				}
			}
			// The list's own cursors work.
			var l struct {
				Items      []json.RawMessage `json:"items"`
				NextCursor string            `json:"next_cursor"`
			}
			e.must(e.do("GET", path+sep+"limit=1", nil), http.StatusOK, &l)
			if l.NextCursor != "" {
				e.must(e.do("GET", path+sep+"limit=1&cursor="+url.QueryEscape(l.NextCursor), nil), http.StatusOK, nil)
			}
		})
	}
}

// TestListEnumFilters: a filter outside its enum is refused with the
// allowed values instead of answering an empty list.
func TestListEnumFilters(t *testing.T) {
	e := newRBACEnv(t)
	e.fixture(0)
	for _, tt := range []struct{ path, want string }{
		{"/api/v1/runs?state=NOPE", "state must be one of QUEUED, READY,"},
		{"/api/v1/runs?state=finished", "state must be one of"},
		{"/api/v1/runs?type=NOPE", "type must be one of TRACKED, PROPOSED, DESTROY, TASK"},
		{"/api/v1/policies?type=NOPE", "type must be one of PLAN, APPROVAL"},
		{"/api/v1/deliveries?status=NOPE", "status must be one of"},
	} {
		d := wantError(t, e.do("GET", tt.path, nil), http.StatusBadRequest, "invalid")
		if !strings.Contains(d.Message, tt.want) {
			t.Errorf("%s: message %q, want it to contain %q", tt.path, d.Message, tt.want)
		}
	}
	for _, path := range []string{"/api/v1/runs?type=PROPOSED", "/api/v1/policies?type=plan"} {
		var l apiv1.List[json.RawMessage]
		e.must(e.do("GET", path, nil), http.StatusOK, &l)
		if len(l.Items) != 1 {
			t.Errorf("%s: %d items, want the fixture's", path, len(l.Items))
		}
	}
	e.must(e.do("GET", "/api/v1/runs?state=FINISHED&type=TASK", nil), http.StatusOK, nil)
}

// TestListCursorFormat: the stacks' next_cursor is the one bench/list_test.go
// makes to start deep pages (base64url of the list's path, a newline and the
// last item's id).
func TestListCursorFormat(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("a", nil)
	e.createStack("b", nil)
	var l apiv1.List[apiv1.Stack]
	e.must(e.do("GET", "/api/v1/stacks?limit=1", nil), http.StatusOK, &l)
	if want := base64.RawURLEncoding.EncodeToString([]byte("/api/v1/stacks\na")); l.NextCursor != want {
		t.Errorf("next_cursor %q, want %q", l.NextCursor, want)
	}
}
