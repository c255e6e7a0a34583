package integration_test

import (
	"bytes"
	"context"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/fakes/fakevault"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// credentialsFixture is an integration service over a real database with a
// stack net in space team, and a fake Vault trusting the run tokens of
// issuer for role app.
type credentialsFixture struct {
	ctx    context.Context
	s      *integration.Service
	spaces *space.Service
	stacks *stack.Service
	st     stack.Stack
	vault  *fakevault.Vault
	url    string
	tokens func(scope string) integration.Request
}

func newCredentialsFixture(t *testing.T, d *db.DB) *credentialsFixture {
	t.Helper()
	ctx := context.Background()
	tokens, iss := issuer(t, d)
	box, _ := secrets.NewBox(bytes.Repeat([]byte{5}, 32))
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := spaces.Create(ctx, space.Space{ID: "team", Name: "team", Parent: space.Root, Inherit: true}); err != nil {
		t.Fatal(err)
	}
	stacks := stack.NewService(d, box)
	st, err := stacks.Create(ctx, stack.Stack{ID: "net", Space: "team", Repository: "https://example.com/infra.git"})
	if err != nil {
		t.Fatal(err)
	}
	fake := fakevault.New(fakevault.Role{Name: "app", Issuer: iss, Audience: "vault", BoundSubject: "space:team:stack:net:*"})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return &credentialsFixture{ctx: ctx, s: integration.New(d, spaces, stacks), spaces: spaces, stacks: stacks, st: st, vault: fake, url: srv.URL,
		tokens: func(scope string) integration.Request { return request(tokens, "net", scope) }}
}

// attach creates a Vault integration of role and attaches it to the stack.
func (f *credentialsFixture) attach(t *testing.T, id, role string, read, write bool) {
	t.Helper()
	if _, err := f.s.Create(f.ctx, integration.Integration{ID: id, Space: "team", Type: integration.Vault,
		Config: map[string]string{"address": f.url, "role": role}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Attach(f.ctx, id, "net", read, write); err != nil {
		t.Fatal(err)
	}
}

// TestCredentialsRevokedWhenALaterOneFails: integrations mint in id order;
// when one fails after a Vault login succeeded, the Vault token is revoked
// at once (no worker will get the job, so none would revoke it), for the
// plan's credentials (read) and for the apply's (write).
func TestCredentialsRevokedWhenALaterOneFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newCredentialsFixture(t, d)
		f.attach(t, "a-vault", "app", true, true)
		f.attach(t, "b-vault", "nope", false, true) // the role does not exist: Vault refuses

		// Read: only a-vault applies; its token is handed out, not revoked.
		m, err := f.s.Credentials(f.ctx, f.st, f.tokens("read"))
		if err != nil || len(m.Revoke) != 1 || m.Revoke[0].Token == "" {
			t.Fatalf("Credentials(read) = %+v, %v", m, err)
		}
		if f.vault.Revoked(m.Revoke[0].Token) {
			t.Error("a token handed out was revoked")
		}

		// Write: a-vault logs in, b-vault is refused.
		_, err = f.s.Credentials(f.ctx, f.st, f.tokens("write"))
		if !errs.Is(err, errs.Invalid) || !strings.Contains(errs.Public(err), "integration b-vault: Vault refused") {
			t.Fatalf("Credentials(write) = %v", err)
		}
		logins := f.vault.Logins()
		if len(logins) != 2 {
			t.Fatalf("logins %+v", logins)
		}
		for _, l := range logins {
			write := strings.HasSuffix(l.Subject, ":scope:write")
			if f.vault.Revoked(l.Token) != write {
				t.Errorf("token of %s: revoked %v, want %v", l.Subject, f.vault.Revoked(l.Token), write)
			}
		}

		// Read again, b-vault now attached for read too: the same.
		if _, err := f.s.Attach(f.ctx, "b-vault", "net", true, true); err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.Credentials(f.ctx, f.st, f.tokens("read")); err == nil {
			t.Fatal("Credentials(read) succeeded with a refused integration")
		}
		for _, l := range f.vault.Logins() {
			if l.Token != m.Revoke[0].Token && !f.vault.Revoked(l.Token) {
				t.Errorf("token of %s left unrevoked", l.Subject)
			}
		}

		// Discard revokes what it is given.
		if err := f.s.Discard(f.ctx, m); err != nil || !f.vault.Revoked(m.Revoke[0].Token) {
			t.Errorf("Discard = %v; revoked %v", err, f.vault.Revoked(m.Revoke[0].Token))
		}
	})
}

// TestOnlyCredentialsAreSecret: a minter marks the credentials it hands
// the run secret (masked in the log, sealed to a private pool's key) and
// its settings not (a region, an address, an id, ARM_USE_OIDC=true: masked,
// every literal true of a log became *****).
func TestOnlyCredentialsAreSecret(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newCredentialsFixture(t, d)
		f.attach(t, "vault", "app", true, true)
		m, err := f.s.Credentials(f.ctx, f.st, f.tokens("read"))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, v := range m.Env {
			got[v.Name] = v.Secret
		}
		if want := map[string]bool{"VAULT_TOKEN": true, "VAULT_ADDR": false}; !maps.Equal(got, want) {
			t.Errorf("secret by variable %v, want %v", got, want)
		}
	})
	const guid = "00000000-0000-0000-0000-000000000001"
	in := integration.Integration{ID: "az", Type: integration.Azure, Config: map[string]string{"tenant_id": guid, "client_id": guid, "subscription_id": guid}}
	r := integration.Request{Token: func(context.Context, string) (string, error) { return "a.b.c", nil }}
	c, err := (&integration.AzureMinter{}).Mint(context.Background(), in, r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for k, v := range c.Env {
		got[k] = v.Secret
	}
	want := map[string]bool{"ARM_OIDC_TOKEN": true, "ARM_USE_OIDC": false, "ARM_CLIENT_ID": false, "ARM_TENANT_ID": false,
		"ARM_SUBSCRIPTION_ID": false, "AZURE_CLIENT_ID": false, "AZURE_TENANT_ID": false, "AZURE_SUBSCRIPTION_ID": false}
	if !maps.Equal(got, want) {
		t.Errorf("secret by variable %v, want %v", got, want)
	}
}

// TestAttachmentOfAStackThatMovedAway: an explicit attachment follows its
// stack, but applies only while the stack's space sees the integration's
// (as a context's does): moved to a space that does not, the stack's runs
// get nothing from it (nothing is minted); moved back, they do again.
func TestAttachmentOfAStackThatMovedAway(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newCredentialsFixture(t, d)
		f.attach(t, "vault", "app", true, true)
		if _, err := f.spaces.Create(f.ctx, space.Space{ID: "elsewhere", Name: "elsewhere", Parent: space.Root, Inherit: true}); err != nil {
			t.Fatal(err)
		}
		box, _ := secrets.NewBox(bytes.Repeat([]byte{5}, 32))
		ctxs := contexts.NewService(d, box, f.spaces, f.stacks)
		if _, err := ctxs.Create(f.ctx, contexts.Context{ID: "team-ctx", Space: "team"}); err != nil {
			t.Fatal(err)
		}
		if _, err := ctxs.Attach(f.ctx, "team-ctx", "net", 0); err != nil {
			t.Fatal(err)
		}
		move := func(to string) stack.Stack {
			t.Helper()
			st, err := f.stacks.Update(f.ctx, "net", func(s *stack.Stack) error { s.Space = to; return nil })
			if err != nil {
				t.Fatal(err)
			}
			return st
		}

		st := move("elsewhere")
		if applied, err := f.s.ForStack(f.ctx, st); err != nil || len(applied) != 0 {
			t.Errorf("ForStack after the move = %+v, %v; want nothing", applied, err)
		}
		if m, err := f.s.Credentials(f.ctx, st, f.tokens("read")); err != nil || len(m.Env) != 0 || len(f.vault.Logins()) != 0 {
			t.Errorf("Credentials after the move = %+v, %v (%d logins); want nothing minted", m, err, len(f.vault.Logins()))
		}
		if applied, err := ctxs.ForStack(f.ctx, st); err != nil || len(applied) != 0 {
			t.Errorf("the context after the move: %+v, %v; want it not applied either", applied, err)
		}
		if atts, err := f.s.Attachments(f.ctx, "vault"); err != nil || len(atts) != 1 {
			t.Errorf("Attachments = %+v, %v; want the attachment kept", atts, err)
		}

		st = move("team")
		if m, err := f.s.Credentials(f.ctx, st, f.tokens("read")); err != nil || len(m.Env) == 0 || len(f.vault.Logins()) != 1 {
			t.Errorf("Credentials after moving back = %+v, %v; want the integration's", m, err)
		}
	})
}

// TestTwoIntegrationsSettingOneVariable: two Vault integrations both set
// VAULT_TOKEN for a job; one would silently win and the worker, revoking
// by variable, would revoke only that one. Minting fails naming both and
// the variable, and every token minted is revoked at once; with only one
// attached for a scope, that scope is fine.
func TestTwoIntegrationsSettingOneVariable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newCredentialsFixture(t, d)
		f.attach(t, "a-vault", "app", true, true)
		f.attach(t, "b-vault", "app", false, true)

		if _, err := f.s.Credentials(f.ctx, f.st, f.tokens("read")); err != nil {
			t.Fatalf("Credentials(read), one Vault integration = %v", err)
		}
		_, err := f.s.Credentials(f.ctx, f.st, f.tokens("write"))
		msg := errs.Public(err)
		if !errs.Is(err, errs.Invalid) || !strings.Contains(msg, "a-vault") || !strings.Contains(msg, "b-vault") || !strings.Contains(msg, "VAULT_TOKEN") {
			t.Fatalf("Credentials(write), two Vault integrations = %v, want an error naming both and VAULT_TOKEN", err)
		}
		var write int
		for _, l := range f.vault.Logins() {
			if strings.HasSuffix(l.Subject, ":scope:write") {
				write++
				if !f.vault.Revoked(l.Token) {
					t.Errorf("write token %s left unrevoked", l.Subject)
				}
			}
		}
		if write != 2 {
			t.Errorf("%d write logins, want 2", write)
		}
	})
}

// TestAttachmentsSayWhenRunsDoNotUseThem: an explicit attachment whose
// stack's space no longer sees the integration's space (a space on the
// way stopped inheriting, or the stack moved to another branch) is still
// listed, with the reason runs do not get the credentials; the listing and
// ForStack (what runs use) agree at every step.
func TestAttachmentsSayWhenRunsDoNotUseThem(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newCredentialsFixture(t, d)
		f.attach(t, "vault", "app", true, true)
		if _, err := f.spaces.Create(f.ctx, space.Space{ID: "sub", Name: "sub", Parent: "team", Inherit: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.spaces.Create(f.ctx, space.Space{ID: "elsewhere", Name: "elsewhere", Parent: space.Root, Inherit: true}); err != nil {
			t.Fatal(err)
		}
		move := func(to string) stack.Stack {
			t.Helper()
			st, err := f.stacks.Update(f.ctx, "net", func(s *stack.Stack) error { s.Space = to; return nil })
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		inherit := func(on bool) {
			t.Helper()
			if _, err := f.spaces.Update(f.ctx, "sub", func(sp *space.Space) error { sp.Inherit = on; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		check := func(st stack.Stack, want string) {
			t.Helper()
			atts, err := f.s.Attachments(f.ctx, "vault")
			if err != nil || len(atts) != 1 {
				t.Fatalf("Attachments = %+v, %v; want the one attachment", atts, err)
			}
			if want == "" && atts[0].NotApplied != "" || want != "" && !strings.Contains(atts[0].NotApplied, want) {
				t.Errorf("NotApplied = %q, want %q", atts[0].NotApplied, want)
			}
			applied, err := f.s.ForStack(f.ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			if runs := len(applied) == 1; runs != (atts[0].NotApplied == "") {
				t.Errorf("the listing says applied=%v, runs get %d integrations", atts[0].NotApplied == "", len(applied))
			}
		}

		st := move("sub")
		check(st, "")
		inherit(false)
		check(st, `not applied: space "sub" does not inherit from its parent "team", so stack "net" (space "sub") does not see the integrations of space "team"`)
		inherit(true)
		check(st, "")
		st = move("elsewhere")
		check(st, `not applied: stack "net" is in space "elsewhere", which is not under the integration's space "team"`)
		st = move("team")
		check(st, "")
	})
}
