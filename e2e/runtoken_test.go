package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// TestRunOIDCTokens: every run gets an OIDC token signed by the server, in
// GANTRY_OIDC_TOKEN (and SPACELIFT_OIDC_TOKEN) and in the file
// GANTRY_OIDC_TOKEN_FILE; scope read while planning and a fresh token of
// scope write while applying; both verify with two independent verifiers
// (coreos/go-oidc and the npm jose) against the real server; the tokens
// never show in the run's log; a signing key rotation keeps the old tokens
// valid.
func TestRunOIDCTokens(t *testing.T) {
	requireSetup(t)
	s := StartServer(t, ServerConfig{Args: []string{"--token-audience", "sts.amazonaws.com"}})
	out := t.TempDir()
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	copyHook := func(name string) string {
		// The file and the variables hold the same token; Spacelift's name too.
		return `test "$(cat "$GANTRY_OIDC_TOKEN_FILE")" = "$GANTRY_OIDC_TOKEN" && test "$SPACELIFT_OIDC_TOKEN" = "$GANTRY_OIDC_TOKEN" && cp "$GANTRY_OIDC_TOKEN_FILE" ` + filepath.Join(out, name) + ` && echo "token: $GANTRY_OIDC_TOKEN"`
	}
	s.MustGantry(t, "space", "create", "--id", "team", "--name", "team")
	s.CreateStack(t, "app", repo.URL, "--space", "team", "--autodeploy",
		"--before-plan", copyHook("plan.jwt"), "--before-apply", copyHook("apply.jwt"))
	r := s.StartRun(t, "deploy", "app")
	s.WaitRun(t, r.ID, "FINISHED")

	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	v := provider.Verifier(&oidc.Config{ClientID: "sts.amazonaws.com"})
	type claims struct {
		Scope, RunID, StackID, SpaceID, SpacePath, RunType, Jti string
	}
	verify := func(name string) (string, claims) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("the %s hook did not copy the token: %v\n%s", name, err, s.Logs(t, "app", r.ID))
		}
		tok := strings.TrimSpace(string(raw))
		idt, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("go-oidc refused the %s token: %v", name, err)
		}
		var c claims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if want := "space:team:stack:app:run_type:TRACKED:scope:" + c.Scope; idt.Subject != want {
			t.Errorf("%s sub = %q, want %q", name, idt.Subject, want)
		}
		// The second, independent verifier: jose from npm.
		cmd := exec.Command("node", "oidcprovider/verify.mjs", s.URL, "sts.amazonaws.com")
		cmd.Stdin = strings.NewReader(tok)
		jout, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("jose refused the %s token: %v %s", name, err, jout)
		}
		var jc claims
		if err := json.Unmarshal(jout, &jc); err != nil || jc.Jti != c.Jti {
			t.Errorf("jose claims %s (%v), go-oidc jti %s", jout, err, c.Jti)
		}
		return tok, c
	}
	planTok, plan := verify("plan.jwt")
	applyTok, apply := verify("apply.jwt")
	if plan.Scope != "read" || apply.Scope != "write" || plan.Jti == apply.Jti || planTok == applyTok {
		t.Errorf("plan %+v, apply %+v: want read then a fresh write token", plan, apply)
	}
	if plan.RunID != r.ID || plan.StackID != "app" || plan.SpaceID != "team" || plan.SpacePath != "root/team" || plan.RunType != "TRACKED" {
		t.Errorf("plan token claims %+v", plan)
	}
	// Masked in the log.
	if log := s.Logs(t, "app", r.ID); strings.Contains(log, planTok) || strings.Contains(log, applyTok) || !strings.Contains(log, "token: *****") {
		t.Errorf("the run's log shows a token or no masked one:\n%s", log)
	}
	// Every issuance is audited, without the token.
	var evs []apiv1.AuditEvent
	s.getJSON(t, "/api/v1/audit/events?action=oidc_token.issue", &struct{ Items *[]apiv1.AuditEvent }{&evs})
	if len(evs) != 2 {
		t.Errorf("%d oidc_token.issue events, want 2", len(evs))
	}
	for _, ev := range evs {
		if ev.SubjectID != r.ID || strings.Contains(string(ev.Change), planTok[:40]) || !strings.Contains(string(ev.Change), `"jti"`) {
			t.Errorf("issue event %+v %s", ev, ev.Change)
		}
	}
	// Rotation: the server signs with the new key from its next token; the
	// old key stays published, so the earlier tokens still verify.
	s.MustGantry(t, "admin", "rotate-signing-key", "--data-dir", s.DataDir)
	r2 := s.StartRun(t, "deploy", "app")
	s.WaitRun(t, r2.ID, "FINISHED")
	newTok, _ := verify("plan.jwt")
	if kid(t, newTok) == kid(t, planTok) {
		t.Error("the token after rotate-signing-key is signed by the old key")
	}
	fresh, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Verifier(&oidc.Config{ClientID: "sts.amazonaws.com", SkipExpiryCheck: false}).Verify(ctx, planTok); err != nil {
		t.Errorf("a token of the old key after rotation: %v", err)
	}
	// A run that waits for a person got its read token only: the write
	// token is issued (and recorded) once it is confirmed.
	repo2 := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "manual", repo2.URL, "--space", "team")
	r3 := s.StartRun(t, "deploy", "manual")
	s.WaitRun(t, r3.ID, "UNCONFIRMED")
	issued := func() int {
		var evs []apiv1.AuditEvent
		s.getJSON(t, "/api/v1/audit/events?action=oidc_token.issue&subject_id="+r3.ID, &struct{ Items *[]apiv1.AuditEvent }{&evs})
		return len(evs)
	}
	if n := issued(); n != 1 {
		t.Errorf("%d tokens recorded for a run waiting for confirmation, want 1 (its plan's)", n)
	}
	s.MustGantry(t, "stack", "confirm", "--id", "manual", "--run", r3.ID)
	s.WaitRun(t, r3.ID, "FINISHED")
	if n := issued(); n != 2 {
		t.Errorf("%d tokens recorded after the confirmed apply, want 2", n)
	}

	// The discovery document and the keys need no credentials.
	for _, p := range []string{"/.well-known/openid-configuration", "/.well-known/jwks"} {
		u, _ := url.JoinPath(s.URL, p)
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !json.Valid(body) {
			t.Errorf("GET %s without a token: %d %s", p, resp.StatusCode, body)
		}
	}
}

// kid returns the key id in a token's header.
func kid(t *testing.T, tok string) string {
	t.Helper()
	h, err := decodeSegment(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(h, &hdr); err != nil || hdr.Kid == "" {
		t.Fatalf("header %s: %v", h, err)
	}
	return hdr.Kid
}

func decodeSegment(seg string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(seg) }
