package contexts_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

type fixture struct {
	ctx    context.Context
	d      *db.DB
	spaces *space.Service
	stacks *stack.Service
	svc    *contexts.Service
}

func newFixture(t *testing.T, d *db.DB) *fixture {
	t.Helper()
	box, err := secrets.NewBox(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{ctx: context.Background(), d: d, spaces: space.NewService(d), stacks: stack.NewService(d, box)}
	f.svc = contexts.NewService(d, box, f.spaces, f.stacks)
	if err := f.spaces.EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) stack(t *testing.T, id, sp string, lbls ...string) stack.Stack {
	t.Helper()
	st, err := f.stacks.Create(f.ctx, stack.Stack{ID: id, Space: sp, Repository: "https://example.com/x.git", Labels: lbls})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *fixture) context(t *testing.T, id, sp string, lbls ...string) contexts.Context {
	t.Helper()
	c, err := f.svc.Create(f.ctx, contexts.Context{ID: id, Space: sp, Labels: lbls})
	if err != nil {
		t.Fatalf("create context %s: %v", id, err)
	}
	return c
}

func (f *fixture) env(t *testing.T, ctxID, name, value string, secret bool) {
	t.Helper()
	if _, err := f.svc.SetEnv(f.ctx, ctxID, contexts.EnvVar{Name: name, Value: value, Secret: secret}); err != nil {
		t.Fatalf("set %s on %s: %v", name, ctxID, err)
	}
}

func wantKind(t *testing.T, err error, k errs.Kind, contains string) {
	t.Helper()
	if !errs.Is(err, k) || !strings.Contains(errs.Public(err), contains) {
		t.Errorf("err = %v, want %s containing %q", err, k, contains)
	}
}

func TestContextCRUD(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c := f.context(t, "aws", "", "team:infra")
		if c.Space != space.Root || c.Name != "aws" {
			t.Errorf("defaults: %+v", c)
		}
		_, err := f.svc.Create(f.ctx, contexts.Context{ID: "aws"})
		wantKind(t, err, errs.Conflict, "already exists")
		_, err = f.svc.Create(f.ctx, contexts.Context{ID: "x", Space: "nope"})
		wantKind(t, err, errs.Invalid, `space "nope" does not exist`)
		_, err = f.svc.Create(f.ctx, contexts.Context{ID: "Bad Id"})
		wantKind(t, err, errs.Invalid, "not a valid slug")

		c, err = f.svc.AddHook(f.ctx, "aws", "before_plan", "echo hi")
		if err != nil || len(c.Hooks.BeforePlan) != 1 {
			t.Fatalf("AddHook = %+v, %v", c.Hooks, err)
		}
		_, err = f.svc.AddHook(f.ctx, "aws", "before_lunch", "echo hi")
		wantKind(t, err, errs.Invalid, "unknown hook phase")
		_, err = f.svc.AddHook(f.ctx, "aws", "after_run", " ")
		wantKind(t, err, errs.Invalid, "non-empty")

		got, err := f.svc.Get(f.ctx, "aws")
		if err != nil || got.Hooks.BeforePlan[0] != "echo hi" || got.Labels[0] != "team:infra" {
			t.Errorf("Get = %+v, %v", got, err)
		}
		list, next, err := f.svc.List(f.ctx, contexts.Filter{Limit: 10})
		if err != nil || len(list) != 1 || next != "" {
			t.Errorf("List = %v %q %v", list, next, err)
		}
		if err := f.svc.Delete(f.ctx, "aws"); err != nil {
			t.Fatal(err)
		}
		wantKind(t, f.svc.Delete(f.ctx, "aws"), errs.NotFound, "not found")
	})
}

func TestSecretsSealedAndWriteOnly(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.context(t, "c", "")
		v, err := f.svc.SetEnv(f.ctx, "c", contexts.EnvVar{Name: "TOKEN", Value: "s3cr3t-value", Secret: true})
		if err != nil || v.Value != "" || v.Checksum != contexts.Checksum([]byte("s3cr3t-value")) {
			t.Fatalf("SetEnv = %+v, %v", v, err)
		}
		fl, err := f.svc.SetFile(f.ctx, "c", contexts.File{Path: "./creds/key.json", Content: []byte("file-secret-content"), Secret: true})
		if err != nil || fl.Path != "creds/key.json" || fl.Content != nil || fl.Size != 19 {
			t.Fatalf("SetFile = %+v, %v", fl, err)
		}
		// Nothing readable at rest.
		var stored string
		if err := d.QueryRow(f.ctx, `SELECT value FROM context_env WHERE name = 'TOKEN'`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		var content []byte
		if err := d.QueryRow(f.ctx, `SELECT content FROM context_files WHERE path = 'creds/key.json'`).Scan(&content); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, "s3cr3t") || bytes.Contains(content, []byte("file-secret")) {
			t.Errorf("secrets stored in the clear: %q %q", stored, content)
		}
		// A sealed value moved to another row does not open (AAD).
		f.context(t, "other", "")
		if _, err := d.Exec(f.ctx, `INSERT INTO context_env (context_id, name, value, secret) VALUES ('other', 'TOKEN', $1, TRUE)`, stored); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.ListEnv(f.ctx, "other"); !errs.Is(err, errs.Internal) {
			t.Errorf("moved secret opened: %v", err)
		}
		env, err := f.svc.ListEnv(f.ctx, "c")
		if err != nil || len(env) != 1 || env[0].Value != "" || !env[0].Secret {
			t.Errorf("ListEnv = %+v, %v", env, err)
		}
		files, err := f.svc.ListFiles(f.ctx, "c")
		if err != nil || len(files) != 1 || files[0].Content != nil || files[0].Checksum != contexts.Checksum([]byte("file-secret-content")) {
			t.Errorf("ListFiles = %+v, %v", files, err)
		}
		// A secret is never replaced by a plain value or file (a rotation
		// that forgot --secret): that takes deleting it first.
		_, err = f.svc.SetEnv(f.ctx, "c", contexts.EnvVar{Name: "TOKEN", Value: "visible", Description: "x"})
		wantKind(t, err, errs.Conflict, "TOKEN is secret: set it with --secret")
		_, err = f.svc.SetFile(f.ctx, "c", contexts.File{Path: "creds/key.json", Content: []byte("visible")})
		wantKind(t, err, errs.Conflict, "creds/key.json is secret: set it with --secret")
		if env, _ := f.svc.ListEnv(f.ctx, "c"); len(env) != 1 || !env[0].Secret || env[0].Checksum != contexts.Checksum([]byte("s3cr3t-value")) {
			t.Errorf("after the refused downgrade: %+v", env)
		}
		if v, err := f.svc.SetEnv(f.ctx, "c", contexts.EnvVar{Name: "TOKEN", Value: "rotated", Secret: true}); err != nil || v.Checksum != contexts.Checksum([]byte("rotated")) {
			t.Errorf("rotating a secret = %+v, %v", v, err)
		}
		if err := f.svc.DeleteEnv(f.ctx, "c", "TOKEN"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.SetEnv(f.ctx, "c", contexts.EnvVar{Name: "TOKEN", Value: "visible"}); err != nil {
			t.Errorf("plain after deleting the secret: %v", err)
		}
		wantKind(t, f.svc.DeleteEnv(f.ctx, "c", "NOPE"), errs.NotFound, "no environment variable")
		if err := f.svc.DeleteFile(f.ctx, "c", "creds/key.json"); err != nil {
			t.Error(err)
		}
	})
}

func TestValidation(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.context(t, "c", "")
		for _, tt := range []struct {
			name string
			kind errs.Kind
			want string
		}{
			{"1BAD", errs.Invalid, "not valid"},
			{"GANTRY_X", errs.Invalid, "reserved prefix"},
			{"ro_TF_VAR_gantry_run_id", errs.Invalid, "reserved prefix"},
			{"SPACELIFT_OIDC_TOKEN", errs.Invalid, "reserved name"},
			{"wo_SPACELIFT_OIDC_TOKEN", errs.Invalid, "reserved name"},
			{"wo_", errs.Invalid, "only a stage prefix"},
		} {
			_, err := f.svc.SetEnv(f.ctx, "c", contexts.EnvVar{Name: tt.name, Value: "v"})
			wantKind(t, err, tt.kind, tt.want)
		}
		_, err := f.svc.SetEnv(f.ctx, "c", contexts.EnvVar{Name: "BIG", Value: strings.Repeat("x", contexts.MaxValue+1)})
		wantKind(t, err, errs.TooLarge, "256 KiB")
		_, err = f.svc.SetEnv(f.ctx, "missing", contexts.EnvVar{Name: "A", Value: "v"})
		wantKind(t, err, errs.NotFound, "not found")

		for _, p := range []string{"", "/etc/passwd", "../x", "a/../../x", "dir/", ".", "src/.git/config", "cli.tfrc",
			"src/gantry_backend_override.tf", "a\\b", "a\nb", strings.Repeat("a", 1025)} {
			_, err := f.svc.SetFile(f.ctx, "c", contexts.File{Path: p, Content: []byte("x")})
			wantKind(t, err, errs.Invalid, "file path")
		}
		if _, err := f.svc.SetFile(f.ctx, "c", contexts.File{Path: "big.bin", Content: make([]byte, contexts.MaxFile+1)}); !errs.Is(err, errs.TooLarge) {
			t.Errorf("2 MiB + 1 accepted: %v", err)
		}
		if _, err := f.svc.SetFile(f.ctx, "c", contexts.File{Path: "max.bin", Content: make([]byte, contexts.MaxFile)}); err != nil {
			t.Errorf("exactly 2 MiB refused: %v", err)
		}
		if _, err := f.svc.SetFile(f.ctx, "c", contexts.File{Path: "empty", Content: nil}); err != nil {
			t.Errorf("empty file refused: %v", err)
		}
	})
}

func TestAttachLineage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, sp := range []space.Space{{ID: "prod", Inherit: true}, {ID: "sandbox"}, {ID: "isolated", Parent: "prod"}} {
			if _, err := f.spaces.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		f.context(t, "root-ctx", "root")
		f.context(t, "sandbox-ctx", "sandbox")
		f.context(t, "prod-ctx", "prod")
		f.stack(t, "web", "prod")
		f.stack(t, "iso", "isolated") // does not inherit from prod

		if _, err := f.svc.Attach(f.ctx, "root-ctx", "web", 3); err != nil {
			t.Errorf("root context on a stack of an inheriting space: %v", err)
		}
		_, err := f.svc.Attach(f.ctx, "sandbox-ctx", "web", 0)
		wantKind(t, err, errs.Invalid, "does not inherit from")
		_, err = f.svc.Attach(f.ctx, "prod-ctx", "iso", 0)
		wantKind(t, err, errs.Invalid, "does not inherit from")
		_, err = f.svc.Attach(f.ctx, "root-ctx", "nope", 0)
		wantKind(t, err, errs.NotFound, "stack")
		_, err = f.svc.Attach(f.ctx, "root-ctx", "web", contexts.MaxPriority+1)
		wantKind(t, err, errs.Invalid, "priority")
		// Attaching again changes the priority.
		if _, err := f.svc.Attach(f.ctx, "root-ctx", "web", 7); err != nil {
			t.Fatal(err)
		}
		at, err := f.svc.Attached(f.ctx, "root-ctx")
		if err != nil || len(at) != 1 || at[0].Priority != 7 || at[0].Via != contexts.Explicit {
			t.Errorf("Attached = %+v, %v", at, err)
		}
		// The space stops inheriting: the attachment no longer applies.
		if _, err := f.spaces.Update(f.ctx, "prod", func(s *space.Space) error { s.Inherit = false; return nil }); err != nil {
			t.Fatal(err)
		}
		st, _ := f.stacks.Get(f.ctx, "web")
		applied, err := f.svc.ForStack(f.ctx, st)
		if err != nil || len(applied) != 0 {
			t.Errorf("ForStack after inheritance off = %+v, %v", applied, err)
		}
		// The listing says so, as runs decide: listed, marked not applied.
		at, err = f.svc.Attached(f.ctx, "root-ctx")
		want := []contexts.Attachment{{ContextID: "root-ctx", StackID: "web", Priority: 7, Via: contexts.Explicit,
			NotApplied: `not applied: space "prod" does not inherit from its parent "root", so stack "web" (space "prod") does not see the contexts of space "root"`}}
		if err != nil || !slices.Equal(at, want) {
			t.Errorf("Attached after inheritance off = %+v, %v; want %+v", at, err, want)
		}
		// The stack moves to a space that never saw the context's.
		f.context(t, "prod-ctx2", "prod")
		if _, err := f.svc.Attach(f.ctx, "prod-ctx2", "web", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.stacks.Update(f.ctx, "web", func(s *stack.Stack) error { s.Space = "sandbox"; return nil }); err != nil {
			t.Fatal(err)
		}
		at, err = f.svc.Attached(f.ctx, "prod-ctx2")
		want = []contexts.Attachment{{ContextID: "prod-ctx2", StackID: "web", Via: contexts.Explicit,
			NotApplied: `not applied: stack "web" is in space "sandbox", which is not under the context's space "prod"`}}
		if err != nil || !slices.Equal(at, want) {
			t.Errorf("Attached after the stack moved = %+v, %v; want %+v", at, err, want)
		}
		if _, err := f.stacks.Update(f.ctx, "web", func(s *stack.Stack) error { s.Space = "prod"; return nil }); err != nil {
			t.Fatal(err)
		}
		// Inheriting again, the attachment applies again, unmarked.
		if _, err := f.spaces.Update(f.ctx, "prod", func(s *space.Space) error { s.Inherit = true; return nil }); err != nil {
			t.Fatal(err)
		}
		at, err = f.svc.Attached(f.ctx, "root-ctx")
		if err != nil || len(at) != 1 || at[0].NotApplied != "" {
			t.Errorf("Attached after inheritance back on = %+v, %v", at, err)
		}
		st, _ = f.stacks.Get(f.ctx, "web")
		if applied, err := f.svc.ForStack(f.ctx, st); err != nil || len(applied) != 2 {
			t.Errorf("ForStack after inheritance back on = %+v, %v", applied, err)
		}
		if err := f.svc.Detach(f.ctx, "root-ctx", "web"); err != nil {
			t.Error(err)
		}
		wantKind(t, f.svc.Detach(f.ctx, "root-ctx", "web"), errs.NotFound, "not attached")
	})
}

func TestEffectivePrecedence(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.stack(t, "web", "", "prod")
		f.stack(t, "other", "", "dev")
		// Auto-attached: b-auto by label, a-auto by *; c-low and d-high explicit.
		f.context(t, "a-auto", "", "autoattach:*")
		f.context(t, "b-auto", "", "autoattach:prod")
		f.context(t, "c-low", "")
		f.context(t, "d-high", "", "autoattach:prod") // explicit wins over its autoattach label
		f.context(t, "e-unused", "", "autoattach:dev")
		if _, err := f.svc.Attach(f.ctx, "c-low", "web", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Attach(f.ctx, "d-high", "web", 5); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"a-auto", "b-auto", "c-low", "d-high", "e-unused"} {
			f.env(t, c, "FROM_"+strings.ToUpper(strings.ReplaceAll(c, "-", "_")), "1", false)
			f.env(t, c, "ALL", c, false)
			if _, err := f.svc.SetFile(f.ctx, c, contexts.File{Path: "shared.txt", Content: []byte(c)}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"before_plan", "after_plan", "after_run"} {
				if _, err := f.svc.AddHook(f.ctx, c, p, "echo "+c); err != nil {
					t.Fatal(err)
				}
			}
		}
		f.env(t, "a-auto", "AUTO_ONLY", "a", false)
		f.env(t, "b-auto", "AUTO_ONLY", "b", false)
		f.env(t, "d-high", "SECRET", "from-context", true)
		if _, err := f.stacks.SetEnv(f.ctx, "web", stack.EnvVar{Name: "SECRET", Value: "from-stack", Secret: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.stacks.Update(f.ctx, "web", func(s *stack.Stack) error {
			s.Hooks.BeforePlan, s.Hooks.AfterPlan = []string{"echo stack"}, []string{"echo stack"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		eff, err := f.svc.Effective(f.ctx, "web", false)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string]contexts.EffectiveVar{}
		for _, v := range eff.Env {
			byName[v.Name] = v
		}
		for name, want := range map[string]string{"ALL": "c-low", "AUTO_ONLY": "a-auto", "FROM_B_AUTO": "b-auto", "FROM_D_HIGH": "d-high"} {
			if got := byName[name]; got.ContextID != want || got.Source != contexts.SourceContext {
				t.Errorf("%s from %+v, want context %s", name, got, want)
			}
		}
		if _, ok := byName["FROM_E_UNUSED"]; ok {
			t.Error("a context autoattached to other labels applies")
		}
		if s := byName["SECRET"]; s.Source != contexts.SourceStack || s.Value != "" || s.Checksum != contexts.Checksum([]byte("from-stack")) {
			t.Errorf("SECRET = %+v, want the stack's, masked, with its checksum", s)
		}
		if len(eff.Files) != 1 || eff.Files[0].ContextID != "c-low" || eff.Files[0].Content != nil {
			t.Errorf("files = %+v", eff.Files)
		}
		var order []string
		for _, a := range eff.Contexts {
			order = append(order, a.Context.ID+"/"+a.Via)
		}
		if got := strings.Join(order, ","); got != "c-low/explicit,d-high/explicit,a-auto/autoattach:*,b-auto/autoattach:prod" {
			t.Errorf("contexts = %s", got)
		}
		// Spacelift's hook order.
		if got := strings.Join(eff.Hooks.BeforePlan, ";"); got != "echo c-low;echo d-high;echo b-auto;echo a-auto;echo stack" {
			t.Errorf("before_plan = %s", got)
		}
		if got := strings.Join(eff.Hooks.AfterPlan, ";"); got != "echo stack;echo a-auto;echo b-auto;echo d-high;echo c-low" {
			t.Errorf("after_plan = %s", got)
		}
		if got := strings.Join(eff.Hooks.AfterRun, ";"); got != "echo a-auto;echo b-auto;echo d-high;echo c-low" {
			t.Errorf("after_run = %s", got)
		}

		job, err := f.svc.Effective(f.ctx, "web", true)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range job.Env {
			if v.Name == "SECRET" && v.Value != "from-stack" {
				t.Errorf("revealed SECRET = %q", v.Value)
			}
		}
		if string(job.Files[0].Content) != "c-low" {
			t.Errorf("revealed file = %q", job.Files[0].Content)
		}
		if got, _ := f.svc.Attached(f.ctx, "a-auto"); len(got) != 2 {
			t.Errorf("autoattach:* applies to %+v, want both stacks", got)
		}
	})
}
