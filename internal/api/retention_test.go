package api_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/retention"
)

// A pruned run is gone from the API (404, its log too), and lists go on
// paginating across the gap, from a cursor taken before the pass too.
func TestPrunedRuns(t *testing.T) {
	e := newAPIEnv(t)
	ctx := context.Background()
	e.createStack("web", nil)
	var ids []string
	for range 6 {
		ids = append(ids, e.createRun("web", "PROPOSED").ID)
	}
	now := time.Now()
	for i, id := range ids {
		ended := now // long before the pruner's cutoff
		if i >= 3 {
			ended = now.Add(30 * time.Hour) // after it
		}
		if _, err := e.db.Exec(ctx, `UPDATE runs SET state = 'FINISHED', updated_at = $2 WHERE id = $1`, id, ended.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	list := func(cursor string) apiv1.List[apiv1.Run] {
		t.Helper()
		var out apiv1.List[apiv1.Run]
		e.must(e.do("GET", "/api/v1/runs?stack=web&limit=2&cursor="+cursor, nil), http.StatusOK, &out)
		return out
	}
	first := list("")
	if len(first.Items) != 2 || first.NextCursor == "" {
		t.Fatalf("first page: %+v", first)
	}

	p := retention.New(e.db, nil)
	p.Now = func() time.Time { return now.Add(48 * time.Hour) }
	res, err := p.Prune(ctx, retention.Policy{RunAge: 24 * time.Hour})
	if err != nil || res.Runs != 3 {
		t.Fatalf("Prune = %d runs, %v; want 3", res.Runs, err)
	}
	for _, id := range ids[:3] {
		wantError(t, e.do("GET", "/api/v1/runs/"+id, nil), 404, "not_found")
		wantError(t, e.do("GET", "/api/v1/runs/"+id+"/logs", nil), 404, "not_found")
	}
	e.must(e.do("GET", "/api/v1/runs/"+ids[3], nil), http.StatusOK, nil)

	var got []string
	for _, r := range first.Items {
		got = append(got, r.ID)
	}
	for cursor := first.NextCursor; cursor != ""; {
		page := list(cursor)
		for _, r := range page.Items {
			got = append(got, r.ID)
		}
		cursor = page.NextCursor
	}
	want := []string{ids[5], ids[4], ids[3]}
	if !slices.Equal(got, want) {
		t.Fatalf("runs listed across the pass = %v, want %v", got, want)
	}
}
