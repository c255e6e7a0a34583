package cli

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

func TestLogin(t *testing.T) {
	cfgPath := isolate(t)
	api := newFake(t, map[string]route{
		"GET /api/v1/whoami":     ok(apiv1.Whoami{Kind: "api_key", Actor: "api_key::ci"}),
		"GET /api/v1/stacks/net": ok(stack),
	})

	code, out, errOut := runMain("login", "--url", api.srv.URL, "--token", "s3cr3t-token")
	if code != 0 {
		t.Fatalf("login exit %d: %s", code, errOut)
	}
	if strings.Contains(out+errOut, "s3cr3t-token") {
		t.Errorf("login printed the token: %s %s", out, errOut)
	}
	if got := api.requests(); len(got) != 1 || got[0] != "GET /api/v1/whoami" || api.auth[0] != "Bearer s3cr3t-token" {
		t.Errorf("login requests %q auth %q", got, api.auth)
	}
	info, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("config mode %o, want 600", mode)
	}
	var cfg config
	b, _ := os.ReadFile(cfgPath)
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.URL != api.srv.URL || cfg.Token != "s3cr3t-token" {
		t.Errorf("config %s: %v", b, err)
	}

	// Later commands use the saved URL and token.
	if code, _, errOut := runMain("stack", "show", "--id", "net"); code != 0 {
		t.Fatalf("show exit %d: %s", code, errOut)
	}
	if got := api.auth[len(api.auth)-1]; got != "Bearer s3cr3t-token" {
		t.Errorf("show sent authorization %q", got)
	}

	// The saved token is not sent to another server.
	other := newFake(t, map[string]route{"GET /api/v1/stacks/net": ok(stack)})
	runMain("stack", "show", "--id", "net", "--url", other.srv.URL)
	if got := other.auth[0]; got != "" {
		t.Errorf("other server got authorization %q", got)
	}
	// A server that wants one hears why no token was sent, and how to send one.
	wants := newFake(t, map[string]route{
		"GET /api/v1/whoami":   apiErr(401, "unauthenticated", "missing API token: send Authorization: Bearer <token>"),
		"GET /api/v1/webhooks": apiErr(401, "unauthenticated", "missing API token"),
	})
	code, _, errOut = runMain("whoami", "--url", wants.srv.URL)
	for _, want := range []string{
		"the token saved by gantry login is for " + api.srv.URL + ", not " + wants.srv.URL,
		"Pass --token (or GANTRY_TOKEN), or run: gantry login --url " + wants.srv.URL,
	} {
		if code != 1 || !strings.Contains(errOut, want) {
			t.Errorf("whoami on another server: exit %d, stderr %q; want %q", code, errOut, want)
		}
	}
	// The same for the commands that build their client apart (webhooks).
	if _, _, errOut := runMain("webhook", "list", "--url", wants.srv.URL); !strings.Contains(errOut, "the token saved by gantry login is for "+api.srv.URL) {
		t.Errorf("webhook list on another server: stderr %q", errOut)
	}

	if code, _, _ := runMain("logout"); code != 0 {
		t.Errorf("logout exit %d", code)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("config still there after logout: %v", err)
	}
}

func TestLoginTokenFromStdin(t *testing.T) {
	cfgPath := isolate(t)
	api := newFake(t, map[string]route{"GET /api/v1/whoami": ok(apiv1.Whoami{Kind: "api_key", Actor: "api_key::ci"})})
	old := stdin
	stdin = strings.NewReader("piped-token\n")
	defer func() { stdin = old }()
	code, out, errOut := runMain("login", "--url", api.srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Piped: no prompt (only a terminal gets one), nothing to glue errors to.
	if errOut != "" || strings.Contains(out, "piped-token") {
		t.Errorf("piped login: stdout %q stderr %q", out, errOut)
	}
	if api.auth[0] != "Bearer piped-token" {
		t.Errorf("authorization %q", api.auth[0])
	}
	if _, err := os.Stat(cfgPath); err != nil {
		t.Error(err)
	}
}

func TestLoginRejected(t *testing.T) {
	cfgPath := isolate(t)
	api := newFake(t, map[string]route{"GET /api/v1/whoami": apiErr(401, "unauthenticated", "invalid token")})
	code, _, errOut := runMain("login", "--url", api.srv.URL, "--token", "bad")
	if code != 1 || !strings.Contains(errOut, "unauthenticated: invalid token") {
		t.Errorf("exit %d stderr %q", code, errOut)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("config written after a failed login: %v", err)
	}
}

// TestLoginSSONotConfigured: `login --sso` asks the server first and fails
// at once, with the server's reason, instead of printing an address that
// answers 503 and waiting for a sign-in that cannot happen.
func TestLoginSSONotConfigured(t *testing.T) {
	cfgPath := isolate(t)
	api := newFake(t, map[string]route{"GET /auth/sso": apiErr(503, "unavailable",
		"single sign-on is not configured on this server (gantry server --oidc-issuer ...)")})
	done := make(chan struct{})
	var code int
	var errOut string
	go func() {
		defer close(done)
		code, _, errOut = runMain("login", "--sso", "--no-browser", "--timeout", "1m", "--url", api.srv.URL)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("login --sso waited for a sign-in on a server without single sign-on")
	}
	if code != 1 || !strings.Contains(errOut, "single sign-on is not configured on this server (gantry server --oidc-issuer") ||
		strings.Contains(errOut, "Waiting for the sign-in") || strings.Contains(errOut, "/auth/login") {
		t.Errorf("exit %d stderr %q", code, errOut)
	}
	if got := api.requests(); len(got) != 1 || got[0] != "GET /auth/sso" {
		t.Errorf("requests %q", got)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("config written after a failed login: %v", err)
	}
}

// TestLoginSSOConfigured: a server that offers single sign-on gets the
// browser address printed and the CLI waits (here until its --timeout).
func TestLoginSSOConfigured(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"GET /auth/sso": ok(map[string]string{"issuer": "https://idp.example.com"})})
	code, _, errOut := runMain("login", "--sso", "--no-browser", "--timeout", "50ms", "--url", api.srv.URL)
	if code != 1 || !strings.Contains(errOut, api.srv.URL+"/auth/login?") || !strings.Contains(errOut, "did not finish within 50ms") {
		t.Errorf("exit %d stderr %q", code, errOut)
	}
}

// TestLogoutEndsSession: logout ends a saved SSO session at the server
// before forgetting it, and forgets it even when the server cannot.
func TestLogoutEndsSession(t *testing.T) {
	cfgPath := isolate(t)
	api := newFake(t, map[string]route{"POST /auth/logout": status(204, nil)})
	if _, err := saveConfig(config{URL: api.srv.URL, Token: "gss_session"}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runMain("logout")
	if code != 0 {
		t.Fatalf("logout exit %d: %s", code, errOut)
	}
	if got := api.requests(); len(got) != 1 || got[0] != "POST /auth/logout" || api.auth[0] != "Bearer gss_session" {
		t.Errorf("logout requests %q auth %q", got, api.auth)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("config still there after logout: %v", err)
	}

	// The server refuses (or is gone): the local token is forgotten all the same.
	down := newFake(t, map[string]route{"POST /auth/logout": apiErr(500, "internal", "boom")})
	if _, err := saveConfig(config{URL: down.srv.URL, Token: "gss_session"}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runMain("logout")
	if code != 0 || !strings.Contains(errOut, "could not end the session") {
		t.Errorf("logout, server failing: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(cfgPath); !os.IsNotExist(err) {
		t.Errorf("config still there after a failed server logout: %v", err)
	}
}

// The token prompt is for a terminal: with piped input an error starts its
// own line instead of following "API token for ...: ".
func TestLoginPromptOnlyOnATerminal(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"GET /api/v1/whoami": ok(apiv1.Whoami{Kind: "api_key", Actor: "api_key::ci"})})
	old, oldTerm := stdin, isTerminal
	defer func() { stdin, isTerminal = old, oldTerm }()

	stdin = strings.NewReader("")
	code, _, errOut := runMain("login", "--url", api.srv.URL)
	if code != 1 || !strings.HasPrefix(errOut, "Error: read token from standard input") {
		t.Errorf("empty piped input: exit %d, stderr %q", code, errOut)
	}

	stdin, isTerminal = strings.NewReader("typed-token\n"), func(io.Reader) bool { return true }
	code, _, errOut = runMain("login", "--url", api.srv.URL)
	if code != 0 || !strings.HasPrefix(errOut, "API token for "+api.srv.URL+": ") {
		t.Errorf("terminal: exit %d, stderr %q", code, errOut)
	}
}
