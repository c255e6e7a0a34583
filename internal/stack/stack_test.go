package stack_test

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const repo = "https://example.com/infra.git"

// fixture is a migrated database with the root space and a stack service.
type fixture struct {
	ctx    context.Context
	d      *db.DB
	spaces *space.Service
	stacks *stack.Service
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ctx: context.Background(), d: d, spaces: space.NewService(d), stacks: stack.NewService(d, box)}
	if err := f.spaces.EnsureRoot(f.ctx); err != nil {
		t.Fatalf("EnsureRoot: %v", err)
	}
	return f
}

func (f *fixture) space(t *testing.T, id string) {
	t.Helper()
	if _, err := f.spaces.Create(f.ctx, space.Space{ID: id}); err != nil {
		t.Fatalf("create space %s: %v", id, err)
	}
}

func (f *fixture) create(t *testing.T, st stack.Stack) stack.Stack {
	t.Helper()
	if st.Repository == "" {
		st.Repository = repo
	}
	got, err := f.stacks.Create(f.ctx, st)
	if err != nil {
		t.Fatalf("create stack %s: %v", st.ID, err)
	}
	return got
}

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("error = %v (kind %s), want kind %s", err, errs.KindOf(err), k)
	}
}

func ids(list []stack.Stack) []string {
	out := []string{}
	for _, s := range list {
		out = append(out, s.ID)
	}
	return out
}

// Tool versions are exact semantic versions; a range gets a message
// saying ranges are not supported.
func TestValidateToolVersion(t *testing.T) {
	const repo = "https://example.com/r.git"
	for v, want := range map[string]string{
		"1.10.7": "", "0.15.0": "", "v1.10.8": "", "1.11.0-beta1": "", "1.6.0-alpha20230816": "", "1.10.0-rc.1": "", "1.0.0-0.3.7": "", "1.10.0-x.1": "",
		"1.10.7-..": "not a version", "01.10.7": "not a version", "1.010.7": "not a version", "1.10.07": "not a version",
		"1.10.7-": "not a version", "1.10.7-01": "not a version", "1.10.7-a..b": "not a version", "1.10.7+build": "not a version",
		"v": "not a version", "vv1.10.7": "not a version",
		"~> 1.10.0": "ranges and constraints", ">= 1.6": "ranges and constraints", "1.10": "ranges and constraints",
		"latest": "ranges and constraints", "1": "ranges and constraints", "1.10.x": "ranges and constraints", "^1.10.0": "ranges and constraints",
		">= 1.6, < 2.0": "ranges and constraints",
	} {
		s := stack.Stack{ID: "web", Repository: repo, ToolVersion: v}
		err := stack.Validate(&s)
		if want == "" {
			if err != nil {
				t.Errorf("Validate(%q): %v", v, err)
			}
			continue
		}
		if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%q) = %v, want an Invalid error saying %q", v, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		in    stack.Stack
		ok    bool
		check func(t *testing.T, s stack.Stack)
	}{
		{name: "defaults", in: stack.Stack{ID: "web", Repository: repo}, ok: true, check: func(t *testing.T, s stack.Stack) {
			if s.Name != "web" || s.Space != "root" || s.Branch != "main" || s.Tool != stack.OpenTofu || s.ProjectRoot != "" {
				t.Errorf("defaults not filled: %+v", s)
			}
		}},
		{name: "project root ./a/ is cleaned", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "./a/"}, ok: true, check: func(t *testing.T, s stack.Stack) {
			if s.ProjectRoot != "a" {
				t.Errorf("project root = %q, want a", s.ProjectRoot)
			}
		}},
		{name: "project root a/b/../c", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "a/b/../c"}, ok: true, check: func(t *testing.T, s stack.Stack) {
			if s.ProjectRoot != "a/c" {
				t.Errorf("project root = %q, want a/c", s.ProjectRoot)
			}
		}},
		{name: "project root . is the top", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "./"}, ok: true, check: func(t *testing.T, s stack.Stack) {
			if s.ProjectRoot != "" {
				t.Errorf("project root = %q, want empty", s.ProjectRoot)
			}
		}},
		{name: "version with a leading v", in: stack.Stack{ID: "web", Repository: repo, ToolVersion: "v1.10.8"}, ok: true, check: func(t *testing.T, s stack.Stack) {
			if s.ToolVersion != "1.10.8" {
				t.Errorf("tool version = %q, want 1.10.8", s.ToolVersion)
			}
		}},
		{name: "terraform with prerelease version", in: stack.Stack{ID: "web", Repository: repo, Tool: stack.Terraform, ToolVersion: "1.10.0-rc1"}, ok: true},
		{name: "branch with slash", in: stack.Stack{ID: "web", Repository: repo, Branch: "feature/x.y_z"}, ok: true},
		{name: "local path repository", in: stack.Stack{ID: "web", Repository: "/srv/git/infra"}, ok: true},
		{name: "labels sorted and deduplicated", in: stack.Stack{ID: "web", Repository: repo, Labels: []string{"b", "a", "b"}}, ok: true, check: func(t *testing.T, s stack.Stack) {
			if !reflect.DeepEqual(s.Labels, []string{"a", "b"}) {
				t.Errorf("labels = %q", s.Labels)
			}
		}},

		{name: "empty id", in: stack.Stack{Repository: repo}},
		{name: "upper-case id", in: stack.Stack{ID: "Web", Repository: repo}},
		{name: "id with space", in: stack.Stack{ID: "we b", Repository: repo}},
		{name: "no repository", in: stack.Stack{ID: "web"}},
		{name: "blank repository", in: stack.Stack{ID: "web", Repository: "  "}},
		{name: "repository starting with -", in: stack.Stack{ID: "web", Repository: "--upload-pack=touch /tmp/x"}},
		{name: "repository with newline", in: stack.Stack{ID: "web", Repository: "https://a\nb"}},
		{name: "branch starting with -", in: stack.Stack{ID: "web", Repository: repo, Branch: "-main"}},
		{name: "branch with ..", in: stack.Stack{ID: "web", Repository: repo, Branch: "a..b"}},
		{name: "branch with space", in: stack.Stack{ID: "web", Repository: repo, Branch: "a b"}},
		{name: "branch with ~", in: stack.Stack{ID: "web", Repository: repo, Branch: "a~1"}},
		{name: "unknown tool", in: stack.Stack{ID: "web", Repository: repo, Tool: "pulumi"}},
		{name: "version with vv", in: stack.Stack{ID: "web", Repository: repo, ToolVersion: "vv1.10.7"}},
		{name: "version V", in: stack.Stack{ID: "web", Repository: repo, ToolVersion: "V1.10.7"}},
		{name: "version v alone", in: stack.Stack{ID: "web", Repository: repo, ToolVersion: "v"}},
		{name: "version without patch", in: stack.Stack{ID: "web", Repository: repo, ToolVersion: "1.10"}},
		{name: "version latest", in: stack.Stack{ID: "web", Repository: repo, ToolVersion: "latest"}},
		{name: "project root ../x", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "../x"}},
		{name: "project root ..", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: ".."}},
		{name: "project root escaping via a/../../x", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "a/../../x"}},
		{name: "project root ./../x", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "./../x"}},
		{name: "absolute project root", in: stack.Stack{ID: "web", Repository: repo, ProjectRoot: "/etc"}},
		{name: "empty hook command", in: stack.Stack{ID: "web", Repository: repo, Hooks: stack.Hooks{BeforePlan: []string{" "}}}},
		{name: "too many hook commands", in: stack.Stack{ID: "web", Repository: repo, Hooks: stack.Hooks{AfterApply: make([]string, 51)}}},
		{name: "long name", in: stack.Stack{ID: "web", Repository: repo, Name: strings.Repeat("n", 256)}},
		{name: "bad label", in: stack.Stack{ID: "web", Repository: repo, Labels: []string{"a\\b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.in
			err := stack.Validate(&s)
			if !tt.ok {
				wantKind(t, err, errs.Invalid)
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestCreateGet(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.space(t, "prod")
		in := stack.Stack{
			ID: "network", Name: "Network", Space: "prod", Repository: repo, Branch: "release", ProjectRoot: "./net/",
			Tool: stack.Terraform, ToolVersion: "1.9.8", Labels: []string{"team:net", "tier_1"}, Description: "VPCs",
			Autodeploy: true, ManagedState: true, WorkerPool: "private",
			Hooks: stack.Hooks{BeforeInit: []string{"echo init"}, AfterApply: []string{"echo a", "echo b"}},
		}
		if _, err := f.stacks.Create(f.ctx, in); !errs.Is(err, errs.Invalid) {
			t.Fatalf("a stack on a pool that does not exist: %v, want invalid", err)
		}
		ensurePool(t, d, "private", "prod")
		created := f.create(t, in)
		if created.ProjectRoot != "net" {
			t.Fatalf("project root = %q, want net", created.ProjectRoot)
		}
		got, err := f.stacks.Get(f.ctx, "network")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !reflect.DeepEqual(got, created) {
			t.Fatalf("Get = %+v\nwant  %+v", got, created)
		}

		// A leading v (as release tags are written) is stored without it.
		withV := f.create(t, stack.Stack{ID: "tagged", ToolVersion: "v1.10.8"})
		if got, err := f.stacks.Get(f.ctx, withV.ID); err != nil || got.ToolVersion != "1.10.8" {
			t.Errorf("stored tool version = %q (%v), want 1.10.8", got.ToolVersion, err)
		}
		updated, err := f.stacks.Update(f.ctx, withV.ID, func(s *stack.Stack) error { s.ToolVersion = "v1.11.0-beta1"; return nil })
		if err != nil || updated.ToolVersion != "1.11.0-beta1" {
			t.Errorf("updated tool version = %q (%v), want 1.11.0-beta1", updated.ToolVersion, err)
		}

		_, err = f.stacks.Create(f.ctx, stack.Stack{ID: "network", Repository: repo})
		wantKind(t, err, errs.Conflict)
		_, err = f.stacks.Create(f.ctx, stack.Stack{ID: "other", Space: "nowhere", Repository: repo})
		wantKind(t, err, errs.Invalid)
		_, err = f.stacks.Create(f.ctx, stack.Stack{ID: "bad", Repository: "-x"})
		wantKind(t, err, errs.Invalid)
		_, err = f.stacks.Get(f.ctx, "other")
		wantKind(t, err, errs.NotFound)
	})
}

func TestListFilters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.space(t, "dev")
		f.create(t, stack.Stack{ID: "a", Labels: []string{"team:x", "a_b"}})
		f.create(t, stack.Stack{ID: "b", Labels: []string{"team:x", "axb"}})
		f.create(t, stack.Stack{ID: "c", Space: "dev", Labels: []string{"team:y", "50%"}})
		f.create(t, stack.Stack{ID: "d", Space: "dev", Labels: []string{"team:x", "50x", "team"}})
		f.create(t, stack.Stack{ID: "e", Space: "dev"})

		tests := []struct {
			name   string
			filter stack.Filter
			want   []string
		}{
			{"all", stack.Filter{}, []string{"a", "b", "c", "d", "e"}},
			{"space root", stack.Filter{Space: "root"}, []string{"a", "b"}},
			{"space dev", stack.Filter{Space: "dev"}, []string{"c", "d", "e"}},
			{"unknown space", stack.Filter{Space: "nope"}, []string{}},
			{"one label", stack.Filter{Labels: []string{"team:x"}}, []string{"a", "b", "d"}},
			{"all labels must match", stack.Filter{Labels: []string{"team:x", "axb"}}, []string{"b"}},
			{"label and space", stack.Filter{Space: "dev", Labels: []string{"team:x"}}, []string{"d"}},
			{"underscore is literal", stack.Filter{Labels: []string{"a_b"}}, []string{"a"}},
			{"percent is literal", stack.Filter{Labels: []string{"50%"}}, []string{"c"}},
			{"whole labels only", stack.Filter{Labels: []string{"team"}}, []string{"d"}},
			{"no prefix match", stack.Filter{Labels: []string{"team:"}}, []string{}},
			{"unknown label", stack.Filter{Labels: []string{"nope"}}, []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.filter.Limit = 100
				list, next, err := f.stacks.List(f.ctx, tt.filter)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if got := ids(list); !reflect.DeepEqual(got, tt.want) || next != "" {
					t.Fatalf("List(%+v) = %q next %q, want %q", tt.filter, got, next, tt.want)
				}
			})
		}
	})
}

// Labels are case-sensitive everywhere else (labels.Has, Normalize keeps
// case), and the filter must agree on both databases.
func TestListLabelCaseSensitive(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.create(t, stack.Stack{ID: "lower", Labels: []string{"env:prod"}})
		f.create(t, stack.Stack{ID: "upper", Labels: []string{"ENV:PROD"}})
		list, _, err := f.stacks.List(f.ctx, stack.Filter{Labels: []string{"ENV:PROD"}, Limit: 10})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if got := ids(list); !reflect.DeepEqual(got, []string{"upper"}) {
			t.Fatalf("label filter ENV:PROD matched %q, want [upper]", got)
		}
	})
}

// Labels may hold &, < and > (Normalize accepts them); filtering on them
// must find the stack.
func TestListLabelWithHTMLCharacters(t *testing.T) {
	stacks := []struct{ id, label string }{{"amp", "r&d"}, {"lt", "a<b"}, {"gt", "c>d"}}
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, s := range stacks {
			f.create(t, stack.Stack{ID: s.id, Labels: []string{s.label}})
		}
		for _, s := range stacks {
			list, _, err := f.stacks.List(f.ctx, stack.Filter{Labels: []string{s.label}, Limit: 10})
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if got := ids(list); !reflect.DeepEqual(got, []string{s.id}) {
				var raw string
				_ = d.QueryRow(f.ctx, `SELECT labels FROM stacks WHERE id = $1`, s.id).Scan(&raw)
				t.Errorf("label filter %q matched %q, want [%s] (labels column: %s)", s.label, got, s.id, raw)
			}
		}
	})
}

func TestListPages(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.space(t, "other")
		var want []string
		for _, id := range []string{"s5", "s1", "s4", "s2", "s3"} {
			f.create(t, stack.Stack{ID: id, Labels: []string{"pick"}})
			f.create(t, stack.Stack{ID: "x" + id, Space: "other", Labels: []string{"pick"}})
		}
		want = []string{"s1", "s2", "s3", "s4", "s5"}
		for _, limit := range []int{1, 2, 5, 7} {
			var got []string
			cursor := ""
			for page := 0; ; page++ {
				if page > len(want) {
					t.Fatalf("limit %d: too many pages", limit)
				}
				list, next, err := f.stacks.List(f.ctx, stack.Filter{Space: "root", Labels: []string{"pick"}, Cursor: cursor, Limit: limit})
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if len(list) > limit {
					t.Fatalf("limit %d: page of %d", limit, len(list))
				}
				got = append(got, ids(list)...)
				if next == "" {
					break
				}
				cursor = next
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("limit %d: listed %q, want %q", limit, got, want)
			}
		}
	})
}

func TestUpdate(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.space(t, "dest")
		ensurePool(t, d, "pool-1", "dest")
		before := f.create(t, stack.Stack{ID: "app"})
		got, err := f.stacks.Update(f.ctx, "app", func(s *stack.Stack) error {
			s.ID = "renamed"
			s.Space = "dest"
			s.Branch = "dev"
			s.ProjectRoot = "./sub/dir/"
			s.Autodeploy = true
			s.Labels = []string{"new"}
			s.Hooks.BeforePlan = []string{"make lint"}
			s.WorkerPool = "pool-1"
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		stored, err := f.stacks.Get(f.ctx, "app")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !reflect.DeepEqual(stored, got) {
			t.Fatalf("stored %+v\nreturned %+v", stored, got)
		}
		if stored.Space != "dest" || stored.Branch != "dev" || stored.ProjectRoot != "sub/dir" || !stored.Autodeploy ||
			stored.WorkerPool != "pool-1" || !reflect.DeepEqual(stored.Hooks.BeforePlan, []string{"make lint"}) {
			t.Fatalf("stored = %+v", stored)
		}
		if !stored.CreatedAt.Equal(before.CreatedAt) {
			t.Fatalf("created_at changed: %v -> %v", before.CreatedAt, stored.CreatedAt)
		}
		if _, err := f.stacks.Get(f.ctx, "renamed"); !errs.Is(err, errs.NotFound) {
			t.Fatalf("id changed: Get(renamed) = %v", err)
		}

		refused := []struct {
			name string
			fn   func(*stack.Stack) error
		}{
			{"missing space", func(s *stack.Stack) error { s.Space = "nowhere"; return nil }},
			{"escaping project root", func(s *stack.Stack) error { s.ProjectRoot = "../x"; return nil }},
			{"bad tool", func(s *stack.Stack) error { s.Tool = "pulumi"; return nil }},
		}
		for _, r := range refused {
			_, err := f.stacks.Update(f.ctx, "app", r.fn)
			if !errs.Is(err, errs.Invalid) {
				t.Errorf("%s: Update = %v, want Invalid", r.name, err)
			}
		}
		if again, _ := f.stacks.Get(f.ctx, "app"); !reflect.DeepEqual(again, stored) {
			t.Fatalf("refused updates changed the stack: %+v", again)
		}
		_, err = f.stacks.Update(f.ctx, "missing", func(*stack.Stack) error { return nil })
		wantKind(t, err, errs.NotFound)
	})
}

func TestDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
		runs := run.NewService(d, events.NewHub(), box, slog.New(slog.DiscardHandler))
		f.create(t, stack.Stack{ID: "busy"})
		f.create(t, stack.Stack{ID: "idle"})
		if _, err := f.stacks.SetEnv(f.ctx, "idle", stack.EnvVar{Name: "A", Value: "1"}); err != nil {
			t.Fatal(err)
		}
		r, err := runs.Create(f.ctx, run.New{StackID: "busy", TriggeredBy: "test"})
		if err != nil {
			t.Fatalf("create run: %v", err)
		}

		wantKind(t, f.stacks.Delete(f.ctx, "busy", false), errs.Conflict)
		if _, err := f.stacks.Get(f.ctx, "busy"); err != nil {
			t.Fatalf("refused delete removed the stack: %v", err)
		}
		if err := f.stacks.Delete(f.ctx, "busy", true); err != nil {
			t.Fatalf("forced Delete: %v", err)
		}
		if _, err := runs.Get(f.ctx, r.ID); !errs.Is(err, errs.NotFound) {
			t.Fatalf("run of deleted stack: %v, want NotFound", err)
		}

		if err := f.stacks.Delete(f.ctx, "idle", false); err != nil {
			t.Fatalf("Delete(idle): %v", err)
		}
		var n int
		if err := d.QueryRow(f.ctx, `SELECT COUNT(*) FROM stack_env WHERE stack_id = 'idle'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("env rows left after delete: %d %v", n, err)
		}
		wantKind(t, f.stacks.Delete(f.ctx, "idle", false), errs.NotFound)
	})
}

// A stack whose runs all ended can be deleted without force.
func TestDeleteWithEndedRuns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		box, _ := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
		runs := run.NewService(d, events.NewHub(), box, slog.New(slog.DiscardHandler))
		f.create(t, stack.Stack{ID: "done"})
		r, err := runs.Create(f.ctx, run.New{StackID: "done", TriggeredBy: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runs.Cancel(f.ctx, r.ID, "alice"); err != nil {
			t.Fatal(err)
		}
		if err := f.stacks.Delete(f.ctx, "done", false); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	})
}

// ensurePool makes the row of worker pool id in space spaceID ("" for
// root) unless it exists: a stack names only a pool that exists.
func ensurePool(t *testing.T, d *db.DB, id, spaceID string) {
	t.Helper()
	if id == "" {
		return
	}
	if spaceID == "" {
		spaceID = "root"
	}
	if _, err := d.Exec(context.Background(), `INSERT INTO worker_pools (id, name, space_id, token_hash, created_at, updated_at)
		VALUES ($1, $1, $2, '', 1, 1) ON CONFLICT (id) DO NOTHING`, id, spaceID); err != nil {
		t.Fatalf("pool %s: %v", id, err)
	}
}
