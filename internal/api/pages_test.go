package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// A caller who may read only part of the store gets full pages of what it
// may read, in order, each item once, with a cursor only while more
// follow: the pages are filled from the next ones.
func TestListPagesFilledForReaders(t *testing.T) {
	e := newAPIEnv(t)
	for _, sp := range []string{"seen", "hidden"} {
		e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": sp}), http.StatusCreated, nil)
	}
	var want []string
	for i := range 14 {
		sp := "hidden"
		if i%4 == 0 || i == 13 {
			sp = "seen"
		}
		id := fmt.Sprintf("st-%02d", i)
		e.createStack(id, map[string]any{"space": sp})
		if sp == "seen" {
			want = append(want, id)
		}
	}
	var key apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "reader"}), http.StatusCreated, &key)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "space": "seen", "api_key": "reader"}), http.StatusCreated, nil)

	walk := func(path string, id func([]byte) ([]string, string)) (pages [][]string) {
		t.Helper()
		cursor := ""
		for range 20 {
			r := e.send(request{method: "GET", path: path + "&cursor=" + cursor, token: key.Token})
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %s", path, r)
			}
			ids, next := id(r.body)
			pages = append(pages, ids)
			if next == "" {
				return pages
			}
			cursor = next
		}
		t.Fatalf("%s: no end after 20 pages: %v", path, pages)
		return nil
	}
	stackIDs := func(b []byte) ([]string, string) {
		var l apiv1.List[apiv1.Stack]
		e.must(response{status: http.StatusOK, body: b}, http.StatusOK, &l)
		var ids []string
		for _, s := range l.Items {
			ids = append(ids, s.ID)
		}
		return ids, l.NextCursor
	}
	pages := walk("/api/v1/stacks?limit=2", stackIDs)
	var got []string
	for i, p := range pages {
		if i < len(pages)-1 && len(p) != 2 {
			t.Errorf("page %d of %v holds %d stacks, want 2", i, pages, len(p))
		}
		got = append(got, p...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("stacks seen through the pages %v, want %v", got, want)
	}

	// Spaces: the reader sees "seen" and the spaces under it.
	spacesWant := []string{}
	for i := range 10 {
		parent := "hidden"
		if i%3 == 0 {
			parent = "seen"
		}
		id := fmt.Sprintf("s-%02d", i)
		e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": id, "parent": parent}), http.StatusCreated, nil)
		if parent == "seen" {
			spacesWant = append(spacesWant, id)
		}
	}
	spacesWant = append(spacesWant, "seen")
	spaceIDs := func(b []byte) ([]string, string) {
		var l apiv1.List[apiv1.Space]
		e.must(response{status: http.StatusOK, body: b}, http.StatusOK, &l)
		var ids []string
		for _, s := range l.Items {
			ids = append(ids, s.ID)
		}
		return ids, l.NextCursor
	}
	pages = walk("/api/v1/spaces?limit=2", spaceIDs)
	got = nil
	for i, p := range pages {
		if i < len(pages)-1 && len(p) != 2 {
			t.Errorf("space page %d of %v holds %d spaces, want 2", i, pages, len(p))
		}
		got = append(got, p...)
	}
	if !slices.Equal(got, spacesWant) {
		t.Fatalf("spaces seen through the pages %v, want %v", got, spacesWant)
	}

	// Runs: newest first, the same way.
	var runsWant []string
	for _, id := range []string{"st-00", "st-01", "st-04", "st-02", "st-13", "st-03"} {
		r := e.createRun(id, "PROPOSED")
		if id == "st-00" || id == "st-04" || id == "st-13" {
			runsWant = append([]string{r.ID}, runsWant...)
		}
	}
	runIDs := func(b []byte) ([]string, string) {
		var l apiv1.List[apiv1.Run]
		e.must(response{status: http.StatusOK, body: b}, http.StatusOK, &l)
		var ids []string
		for _, r := range l.Items {
			ids = append(ids, r.ID)
		}
		return ids, l.NextCursor
	}
	pages = walk("/api/v1/runs?limit=2", runIDs)
	got = nil
	for i, p := range pages {
		if i < len(pages)-1 && len(p) != 2 {
			t.Errorf("run page %d of %v holds %d runs, want 2", i, pages, len(p))
		}
		got = append(got, p...)
	}
	if !slices.Equal(got, runsWant) {
		t.Fatalf("runs seen through the pages %v, want %v", got, runsWant)
	}
}
