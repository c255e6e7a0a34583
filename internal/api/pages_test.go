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
	var stacksWant []string
	for i := range 14 {
		sp := "hidden"
		if i%4 == 0 || i == 13 {
			sp = "seen"
		}
		id := fmt.Sprintf("st-%02d", i)
		e.createStack(id, map[string]any{"space": sp})
		if sp == "seen" {
			stacksWant = append(stacksWant, id)
		}
	}
	// Spaces: the reader sees "seen" and the spaces under it.
	var spacesWant []string
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
	// Runs: newest first.
	var runsWant []string
	for _, id := range []string{"st-00", "st-01", "st-04", "st-02", "st-13", "st-03"} {
		r := e.createRun(id, "PROPOSED")
		if id == "st-00" || id == "st-04" || id == "st-13" {
			runsWant = append([]string{r.ID}, runsWant...)
		}
	}
	var key apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "reader"}), http.StatusCreated, &key)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "space": "seen", "api_key": "reader"}), http.StatusCreated, nil)

	for _, c := range []struct {
		list string
		want []string
	}{{"stacks", stacksWant}, {"spaces", spacesWant}, {"runs", runsWant}} {
		var pages [][]string
		cursor := ""
		for {
			if len(pages) == 20 {
				t.Fatalf("%s: no end after 20 pages: %v", c.list, pages)
			}
			var page struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			e.must(e.send(request{method: "GET", path: "/api/v1/" + c.list + "?limit=2&cursor=" + cursor, token: key.Token}), http.StatusOK, &page)
			var ids []string
			for _, it := range page.Items {
				ids = append(ids, it.ID)
			}
			pages = append(pages, ids)
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		var got []string
		for i, p := range pages {
			if i < len(pages)-1 && len(p) != 2 {
				t.Errorf("%s page %d of %v holds %d items, want 2", c.list, i, pages, len(p))
			}
			got = append(got, p...)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s seen through the pages %v, want %v", c.list, got, c.want)
		}
	}
}
