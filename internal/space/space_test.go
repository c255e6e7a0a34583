package space_test

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// newSpaces returns a space service over d with the root space created.
func newSpaces(t *testing.T, d *db.DB) (context.Context, *space.Service) {
	t.Helper()
	ctx := context.Background()
	s := space.NewService(d)
	if err := s.EnsureRoot(ctx); err != nil {
		t.Fatalf("EnsureRoot: %v", err)
	}
	return ctx, s
}

// mustCreate creates a space or fails the test.
func mustCreate(t *testing.T, ctx context.Context, s *space.Service, sp space.Space) space.Space {
	t.Helper()
	got, err := s.Create(ctx, sp)
	if err != nil {
		t.Fatalf("Create(%q): %v", sp.ID, err)
	}
	return got
}

// wantKind fails the test unless err has kind k.
func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("error = %v (kind %s), want kind %s", err, errs.KindOf(err), k)
	}
}

func TestEnsureRootIsIdempotent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		if err := s.EnsureRoot(ctx); err != nil {
			t.Fatalf("second EnsureRoot: %v", err)
		}
		root, err := s.Get(ctx, space.Root)
		if err != nil {
			t.Fatalf("Get(root): %v", err)
		}
		if root.ID != space.Root || root.Parent != "" {
			t.Fatalf("root = %+v, want id root without parent", root)
		}
	})
}

func TestCreateAndGet(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		created := mustCreate(t, ctx, s, space.Space{ID: "team-a", Labels: []string{"b", " a ", "b"}, Description: "Team A", Inherit: true})
		if created.Name != "team-a" || created.Parent != space.Root {
			t.Fatalf("created = %+v, want name and parent defaulted", created)
		}
		got, err := s.Get(ctx, "team-a")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !reflect.DeepEqual(got, created) {
			t.Fatalf("Get = %+v\nwant  %+v", got, created)
		}
		if want := []string{"a", "b"}; !reflect.DeepEqual(got.Labels, want) {
			t.Fatalf("labels = %q, want %q", got.Labels, want)
		}
		child := mustCreate(t, ctx, s, space.Space{ID: "team-a-dev", Parent: "team-a", Name: "Dev"})
		if got, _ := s.Get(ctx, child.ID); got.Parent != "team-a" || got.Name != "Dev" {
			t.Fatalf("child = %+v", got)
		}
		_, err = s.Get(ctx, "nope")
		wantKind(t, err, errs.NotFound)
	})
}

func TestCreateRefused(t *testing.T) {
	tests := []struct {
		name string
		sp   space.Space
		kind errs.Kind
	}{
		{"empty id", space.Space{}, errs.Invalid},
		{"upper case", space.Space{ID: "Team"}, errs.Invalid},
		{"underscore", space.Space{ID: "team_a"}, errs.Invalid},
		{"leading dash", space.Space{ID: "-team"}, errs.Invalid},
		{"trailing dash", space.Space{ID: "team-"}, errs.Invalid},
		{"too long", space.Space{ID: strings.Repeat("a", 64)}, errs.Invalid},
		{"missing parent", space.Space{ID: "orphan", Parent: "nowhere"}, errs.Invalid},
		{"long name", space.Space{ID: "x", Name: strings.Repeat("n", 256)}, errs.Invalid},
		{"long description", space.Space{ID: "x", Description: strings.Repeat("d", 4097)}, errs.Invalid},
		{"empty label", space.Space{ID: "x", Labels: []string{" "}}, errs.Invalid},
		{"quote in label", space.Space{ID: "x", Labels: []string{`a"b`}}, errs.Invalid},
		{"root", space.Space{ID: space.Root}, errs.Conflict},
		{"duplicate", space.Space{ID: "taken"}, errs.Conflict},
	}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		mustCreate(t, ctx, s, space.Space{ID: "taken"})
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.Create(ctx, tt.sp)
				wantKind(t, err, tt.kind)
			})
		}
		list, _, err := s.List(ctx, "", "", 100)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(list) != 2 {
			t.Fatalf("List has %d spaces after refused creations, want 2 (root, taken): %+v", len(list), list)
		}
	})
}

func TestListPages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		for _, id := range []string{"e", "b", "d", "a", "c"} {
			mustCreate(t, ctx, s, space.Space{ID: id})
		}
		want := []string{"a", "b", "c", "d", "e", "root"}
		for _, limit := range []int{1, 2, 4, 6, 10} {
			var got []string
			cursor, pages := "", 0
			for {
				list, next, err := s.List(ctx, "", cursor, limit)
				if err != nil {
					t.Fatalf("List(%q, %d): %v", cursor, limit, err)
				}
				if len(list) > limit {
					t.Fatalf("List(%q, %d) returned %d spaces", cursor, limit, len(list))
				}
				for _, sp := range list {
					got = append(got, sp.ID)
				}
				pages++
				if next == "" {
					break
				}
				if pages > len(want) {
					t.Fatalf("limit %d: more pages than spaces", limit)
				}
				cursor = next
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("limit %d: listed %q, want %q", limit, got, want)
			}
			if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
				t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
			}
		}
	})
}

// With a parent, List pages through that space's children only.
func TestListChildren(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		for _, sp := range []space.Space{{ID: "team"}, {ID: "b", Parent: "team"}, {ID: "a", Parent: "team"},
			{ID: "c", Parent: "team"}, {ID: "deep", Parent: "a"}, {ID: "other"}} {
			mustCreate(t, ctx, s, sp)
		}
		var got []string
		for cursor, pages := "", 0; pages < 5; pages++ {
			list, next, err := s.List(ctx, "team", cursor, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, sp := range list {
				got = append(got, sp.ID)
			}
			if cursor = next; next == "" {
				break
			}
		}
		if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
			t.Errorf("children of team: %q, want %q", got, want)
		}
		if list, _, err := s.List(ctx, "nobody", "", 10); err != nil || len(list) != 0 {
			t.Errorf("children of a missing space: %v, %v", list, err)
		}
	})
}

func TestUpdate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		before := mustCreate(t, ctx, s, space.Space{ID: "ops", Description: "old"})
		updated, err := s.Update(ctx, "ops", func(sp *space.Space) error {
			sp.ID = "renamed" // ignored: the id cannot change
			sp.Name = "Operations"
			sp.Description = "new"
			sp.Labels = []string{"z", "y"}
			sp.Inherit = true
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		got, err := s.Get(ctx, "ops")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !reflect.DeepEqual(got, updated) {
			t.Fatalf("Get after Update = %+v\nUpdate returned   %+v", got, updated)
		}
		if got.Name != "Operations" || got.Description != "new" || !got.Inherit || !reflect.DeepEqual(got.Labels, []string{"y", "z"}) {
			t.Fatalf("updated space = %+v", got)
		}
		if !got.CreatedAt.Equal(before.CreatedAt) || got.UpdatedAt.Before(before.UpdatedAt) {
			t.Fatalf("times: created %v -> %v, updated %v -> %v", before.CreatedAt, got.CreatedAt, before.UpdatedAt, got.UpdatedAt)
		}
		if _, err := s.Get(ctx, "renamed"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("Get(renamed) = %v, want NotFound", err)
		}

		_, err = s.Update(ctx, "ops", func(sp *space.Space) error { sp.Labels = []string{""}; return nil })
		wantKind(t, err, errs.Invalid)
		_, err = s.Update(ctx, "ops", func(sp *space.Space) error { return errs.E(errs.Forbidden, "no") })
		wantKind(t, err, errs.Forbidden)
		if got2, _ := s.Get(ctx, "ops"); !reflect.DeepEqual(got2, got) {
			t.Fatalf("refused updates changed the space: %+v", got2)
		}
		_, err = s.Update(ctx, "missing", func(*space.Space) error { return nil })
		wantKind(t, err, errs.NotFound)
	})
}

func TestDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		stacks := stack.NewService(d, box)
		mustCreate(t, ctx, s, space.Space{ID: "parent"})
		mustCreate(t, ctx, s, space.Space{ID: "child", Parent: "parent"})
		mustCreate(t, ctx, s, space.Space{ID: "with-stack"})
		mustCreate(t, ctx, s, space.Space{ID: "empty"})
		if _, err := stacks.Create(ctx, stack.Stack{ID: "st", Space: "with-stack", Repository: "https://example.com/r.git"}); err != nil {
			t.Fatalf("create stack: %v", err)
		}

		tests := []struct {
			name, id string
			kind     errs.Kind // "" for success
		}{
			{"root", space.Root, errs.Conflict},
			{"has child space", "parent", errs.Conflict},
			{"has stack", "with-stack", errs.Conflict},
			{"missing", "missing", errs.NotFound},
			{"empty", "empty", ""},
			{"leaf child", "child", ""},
			{"parent once emptied", "parent", ""},
		}
		for _, tt := range tests {
			err := s.Delete(ctx, tt.id)
			if tt.kind == "" {
				if err != nil {
					t.Fatalf("%s: Delete(%q): %v", tt.name, tt.id, err)
				}
				if _, err := s.Get(ctx, tt.id); !errs.Is(err, errs.NotFound) {
					t.Fatalf("%s: Get after Delete = %v, want NotFound", tt.name, err)
				}
				continue
			}
			if !errs.Is(err, tt.kind) {
				t.Fatalf("%s: Delete(%q) = %v, want kind %s", tt.name, tt.id, err, tt.kind)
			}
			if tt.kind == errs.Conflict {
				if _, err := s.Get(ctx, tt.id); err != nil {
					t.Fatalf("%s: refused Delete removed the space: %v", tt.name, err)
				}
			}
		}
	})
}

// A space holding policies, worker pools or contexts is not empty: deleting
// it is a conflict that says why, not a database error.
func TestDeleteRefusesHeldObjects(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		for _, tc := range []struct{ what, insert string }{
			{"policies", `INSERT INTO policies (id, name, space_id, type, body, engine, created_at, updated_at) VALUES ('p', 'p', 'held', 'PLAN', 'package spacelift', 'rego_v1', 1, 1)`},
			{"worker pools", `INSERT INTO worker_pools (id, name, space_id, token_hash, created_at, updated_at) VALUES ('wp', 'wp', 'held', 'h', 1, 1)`},
			{"contexts", `INSERT INTO contexts (id, name, space_id, created_at, updated_at) VALUES ('c', 'c', 'held', 1, 1)`},
		} {
			mustCreate(t, ctx, s, space.Space{ID: "held"})
			if _, err := d.Exec(ctx, tc.insert); err != nil {
				t.Fatalf("%s: %v", tc.what, err)
			}
			err := s.Delete(ctx, "held")
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(err.Error(), tc.what) {
				t.Fatalf("error %q does not name %s", err, tc.what)
			}
			for _, q := range []string{`DELETE FROM policies`, `DELETE FROM worker_pools`, `DELETE FROM contexts`} {
				if _, err := d.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Delete(ctx, "held"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// Deleting a space deletes its notifications (inbox items, deliveries and
// their attempts), which name it without a foreign key: a later space of
// the same id starts with none. Other spaces' notifications stay.
func TestDeleteTakesNotifications(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, s := newSpaces(t, d)
		mustCreate(t, ctx, s, space.Space{ID: "proj"})
		mustCreate(t, ctx, s, space.Space{ID: "other"})
		for _, sp := range []string{"proj", "other"} {
			for _, q := range []string{
				`INSERT INTO notify_inbox (id, space_id, run_id, stack_id, event, title, body, severity, created_at)
					VALUES ('ntf-` + sp + `', '` + sp + `', 'run-1', 'merger-x', 'run_updated', 'Run of merger-x: FAILED', 'confidential', 'ERROR', 1)`,
				`INSERT INTO notify_deliveries (id, kind, endpoint_id, space_id, run_id, stack_id, method, body, status, created_at, updated_at)
					VALUES ('dlv-` + sp + `', 'webhook', 'hook', '` + sp + `', 'run-1', 'merger-x', 'POST', '{}', 'FAILED', 1, 1)`,
				`INSERT INTO notify_delivery_attempts (delivery_id, n, at, error) VALUES ('dlv-` + sp + `', 1, 1, 'refused')`,
			} {
				if _, err := d.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Delete(ctx, "proj"); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, ctx, s, space.Space{ID: "proj"})
		count := func(q, sp string) int {
			t.Helper()
			var n int
			if err := d.QueryRow(ctx, q, sp).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for sp, want := range map[string]int{"proj": 0, "other": 1} {
			for _, q := range []string{
				`SELECT COUNT(*) FROM notify_inbox WHERE space_id = $1`,
				`SELECT COUNT(*) FROM notify_deliveries WHERE space_id = $1`,
				`SELECT COUNT(*) FROM notify_delivery_attempts WHERE delivery_id = 'dlv-' || $1`,
			} {
				if n := count(q, sp); n != want {
					t.Errorf("%s: %s = %d, want %d", sp, q, n, want)
				}
			}
		}
	})
}
