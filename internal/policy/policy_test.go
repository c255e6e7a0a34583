package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

const denyPublic = `package spacelift

deny contains sprintf("bucket %s is public", [r.address]) if {
	some r in input.terraform.resource_changes
	r.change.after.acl == "public-read"
}
`

func TestCreateCompilesAndVersions(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		p := f.policy(t, "deny-public", "plan", denyPublic)
		if p.Type != "PLAN" || p.Engine != "rego_v1" || p.Version != 1 {
			t.Fatalf("policy = %+v, want PLAN rego_v1 version 1", p)
		}
		v0 := f.policy(t, "old-style", "PLAN", "package spacelift\n\ndeny[msg] { msg := \"no\"; input.x }\n")
		if v0.Engine != "rego_v0" {
			t.Fatalf("a v0 policy was detected as %s", v0.Engine)
		}
		for name, tc := range map[string]struct{ typ, body, want string }{
			"syntax":         {"PLAN", "package spacelift\n\ndeny contains msg if {\n  msg := \n}\n", "bad.rego:"},
			"package":        {"PLAN", "package other\n\ndeny contains \"x\" if { true }\n", "package"},
			"boolean deny":   {"PLAN", "package spacelift\n\ndeny := true\n", "deny"},
			"http.send":      {"PLAN", "package spacelift\n\ndeny contains \"x\" if { http.send({\"method\": \"get\", \"url\": \"http://x\"}) }\n", "http.send"},
			"unknown type":   {"ACCESS", "package spacelift\n", "policy type"},
			"approve is set": {"APPROVAL", "package spacelift\n\napprove contains \"x\" if { true }\n", "approve"},
		} {
			_, err := f.policies.Create(f.ctx, policy.Policy{ID: "bad", Type: tc.typ, Body: tc.body})
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error = %v, want Invalid mentioning %q", name, err, tc.want)
			}
		}
		// LOGIN policies apply from the root space only: one elsewhere
		// would never apply.
		if _, err := f.spaces.Create(f.ctx, space.Space{ID: "team", Parent: space.Root}); err != nil {
			t.Fatal(err)
		}
		login := policy.Policy{ID: "login-team", Type: "login", Space: "team", Body: "package spacelift\n\nallow := true\n"}
		if _, err := f.policies.Create(f.ctx, login); !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "root space") {
			t.Errorf("a LOGIN policy in space team: %v, want Invalid naming the root space", err)
		}
		login.Space = ""
		if lp, err := f.policies.Create(f.ctx, login); err != nil || lp.Space != space.Root {
			t.Errorf("a LOGIN policy in root: %+v, %v", lp, err)
		}
		_, err := f.policies.Create(f.ctx, policy.Policy{ID: "bad", Type: "PLAN", Body: "package spacelift\n\ndeny contains msg if {\n  msg := \n}\n"})
		if err == nil || !strings.Contains(err.Error(), "bad.rego:5") && !strings.Contains(err.Error(), "bad.rego:4") {
			t.Errorf("syntax error = %v, want the file and line", err)
		}
		up, err := f.policies.Update(f.ctx, p.ID, func(x *policy.Policy) error {
			x.Body = strings.Replace(x.Body, "public-read", "public-read-write", 1)
			return nil
		})
		if err != nil || up.Version != 2 {
			t.Fatalf("update = %+v, %v; want version 2", up, err)
		}
		old, err := f.policies.Version(f.ctx, p.ID, 1)
		if err != nil || !strings.Contains(old.Body, `"public-read"`) {
			t.Fatalf("version 1 = %q, %v", old.Body, err)
		}
		if _, err := f.policies.Update(f.ctx, p.ID, func(x *policy.Policy) error { x.Body = "package spacelift\n\ndeny := 1\n"; return nil }); !errs.Is(err, errs.Invalid) {
			t.Fatalf("a broken update = %v, want Invalid", err)
		}
		if got, _ := f.policies.Get(f.ctx, p.ID); got.Version != 2 {
			t.Fatalf("a refused update changed the policy to version %d", got.Version)
		}
		if err := f.policies.Delete(f.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		_, err = f.policies.Get(f.ctx, p.ID)
		wantKind(t, err, errs.NotFound)
	})
}

func TestAttachmentRules(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, sp := range []space.Space{
			{ID: "prod", Parent: space.Root, Inherit: true},
			{ID: "prod-eu", Parent: "prod", Inherit: true},
			{ID: "sandbox", Parent: space.Root, Inherit: false},
		} {
			if _, err := f.spaces.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		mk := func(id, sp string, labels ...string) {
			if _, err := f.policies.Create(f.ctx, policy.Policy{ID: id, Space: sp, Type: "PLAN", Body: denyPublic, Labels: labels}); err != nil {
				t.Fatal(err)
			}
		}
		mk("root-all", space.Root, "autoattach:*")
		mk("root-db", space.Root, "autoattach:database")
		mk("prod-all", "prod", "autoattach:*")
		mk("prod-explicit", "prod")
		mk("sandbox-all", "sandbox", "autoattach:*")
		mk("eu-db", "prod-eu", "autoattach:database")
		euDB := f.stack(t, func(s *stack.Stack) { s.Space, s.Labels = "prod-eu", []string{"database"} })
		sandbox := f.stack(t, func(s *stack.Stack) { s.Space = "sandbox"; s.Labels = []string{"database"} })
		f.attach(t, "prod-explicit", euDB.ID)
		if err := f.policies.Attach(f.ctx, "prod-explicit", sandbox.ID); !errs.Is(err, errs.Invalid) {
			t.Fatalf("attaching a policy of a space the stack does not inherit = %v, want Invalid", err)
		}
		if err := f.policies.Attach(f.ctx, "prod-explicit", euDB.ID); !errs.Is(err, errs.Conflict) {
			t.Fatalf("attaching twice = %v, want Conflict", err)
		}
		ids := func(st stack.Stack) []string {
			ps, err := f.policies.ForStack(f.ctx, st, "PLAN")
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, p := range ps {
				out = append(out, p.ID)
			}
			return out
		}
		if got, want := ids(euDB), []string{"eu-db", "prod-all", "prod-explicit", "root-all", "root-db"}; !slices.Equal(got, want) {
			t.Errorf("prod-eu stack policies = %v, want %v", got, want)
		}
		// sandbox does not inherit: only its own space's policies.
		if got, want := ids(sandbox), []string{"sandbox-all"}; !slices.Equal(got, want) {
			t.Errorf("sandbox stack policies = %v, want %v", got, want)
		}
		at, err := f.policies.Attached(f.ctx, "root-db")
		if err != nil || len(at) != 1 || at[0].StackID != euDB.ID || at[0].Via != "autoattach:database" {
			t.Errorf("root-db attached to %+v, %v; want only %s by label", at, err, euDB.ID)
		}
		if err := f.policies.Detach(f.ctx, "prod-explicit", euDB.ID); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ids(euDB), "prod-explicit") {
			t.Error("a detached policy still applies")
		}
		if _, err := f.policies.Create(f.ctx, policy.Policy{ID: "n", Type: "NOTIFICATION", Body: "package spacelift\n"}); err != nil {
			t.Fatal(err)
		}
		if err := f.policies.Attach(f.ctx, "n", euDB.ID); !errs.Is(err, errs.Invalid) {
			t.Errorf("attaching a NOTIFICATION policy = %v, want Invalid", err)
		}
	})
}

// An explicit attachment to a stack of a grandchild space that the middle
// space's inherit flag then cuts off: runs no longer evaluate the policy,
// and Attached says so, with why, instead of listing it as applying. It
// applies again when the middle space inherits again.
func TestAttachedAsRunsDecide(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, sp := range []space.Space{
			{ID: "team", Parent: space.Root, Inherit: true},
			{ID: "app", Parent: "team", Inherit: true},
		} {
			if _, err := f.spaces.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.policies.Create(f.ctx, policy.Policy{ID: "guard", Space: space.Root, Type: "PLAN", Body: denyPublic,
			Labels: []string{"autoattach:web"}}); err != nil {
			t.Fatal(err)
		}
		app := f.stack(t, func(s *stack.Stack) { s.Space = "app" })
		web := f.stack(t, func(s *stack.Stack) { s.Space = "app"; s.Labels = []string{"web"} })
		f.attach(t, "guard", app.ID)
		setInherit := func(on bool) {
			if _, err := f.spaces.Update(f.ctx, "team", func(sp *space.Space) error { sp.Inherit = on; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		check := func(wantApplied bool) {
			t.Helper()
			for _, st := range []stack.Stack{app, web} {
				ps, err := f.policies.ForStack(f.ctx, st, "PLAN")
				if err != nil || (len(ps) == 1) != wantApplied {
					t.Errorf("runs of %s evaluate %v, %v; want the policy: %v", st.ID, ps, err, wantApplied)
				}
			}
			at, err := f.policies.Attached(f.ctx, "guard")
			if err != nil {
				t.Fatal(err)
			}
			want := []policy.Attachment{{StackID: app.ID, Via: "explicit"}, {StackID: web.ID, Via: "autoattach:web"}}
			if !wantApplied {
				want = []policy.Attachment{{StackID: app.ID, Via: "explicit", NotApplied: `not applied: space "team" does not inherit from its parent "root", ` +
					`so stack "` + app.ID + `" (space "app") does not see the policies of space "root"`}}
			}
			if !slices.Equal(at, want) {
				t.Errorf("Attached = %+v, want %+v", at, want)
			}
		}
		check(true)
		setInherit(false)
		check(false)
		setInherit(true)
		check(true)
	})
}

// A stack moved to a space of another branch no longer sees a policy of
// its old space: Attached says that, not that its new space's inheritance
// is what cuts it off (inheriting would not bring the policy back).
func TestAttachedAfterTheStackMoved(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, sp := range []space.Space{
			{ID: "team", Parent: space.Root, Inherit: true},
			{ID: "other", Parent: space.Root},
		} {
			if _, err := f.spaces.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.policies.Create(f.ctx, policy.Policy{ID: "guard", Space: "team", Type: "PLAN", Body: denyPublic}); err != nil {
			t.Fatal(err)
		}
		app := f.stack(t, func(s *stack.Stack) { s.Space = "team" })
		f.attach(t, "guard", app.ID)
		moved, err := f.stacks.Update(f.ctx, app.ID, func(s *stack.Stack) error { s.Space = "other"; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if ps, err := f.policies.ForStack(f.ctx, moved, "PLAN"); err != nil || len(ps) != 0 {
			t.Errorf("runs of the moved stack evaluate %v, %v; want none", ps, err)
		}
		at, err := f.policies.Attached(f.ctx, "guard")
		want := []policy.Attachment{{StackID: app.ID, Via: "explicit",
			NotApplied: `not applied: stack "` + app.ID + `" is in space "other", which is not under the policy's space "team"`}}
		if err != nil || !slices.Equal(at, want) {
			t.Errorf("Attached = %+v, %v; want %+v", at, err, want)
		}
	})
}
