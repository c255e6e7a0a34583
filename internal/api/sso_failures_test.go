package api_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
)

// TestSSOFailures: sign-ins that cannot be right are refused without
// asking the provider, audited, and a source that keeps failing is told
// to slow down. (The whole flow against a real provider: e2e TestSSO.)
func TestSSOFailures(t *testing.T) {
	e := newRBACEnv(t)
	e.a.SSO = &api.SSO{Issuer: "http://127.0.0.1:1", ClientID: "gantry", ClientSecret: "x", RedirectURL: e.url + "/auth/callback", DB: e.db}
	get := func(path string) response { return e.send(request{method: "GET", path: path}) }

	// The check `gantry login --sso` makes first: the provider cannot be
	// reached, so no sign-in could start.
	if r := get("/auth/sso"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "cannot be reached") {
		t.Errorf("GET /auth/sso, provider down: %s", r)
	}

	// A callback this browser did not start (login CSRF: someone else's
	// callback link).
	r := get("/auth/callback?state=forged&code=abc")
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "not started by this browser") {
		t.Errorf("callback without the login cookie: %s", r)
	}
	// Unknown state with a matching cookie: forged or replayed.
	sum := sha256.Sum256([]byte("forged"))
	r = e.send(request{method: "GET", path: "/auth/callback?state=forged&code=abc",
		header: map[string]string{"Cookie": "gantry_login=x:" + base64.RawURLEncoding.EncodeToString(sum[:])}})
	if r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "expired or was already used") {
		t.Errorf("forged state: %s", r)
	}
	// A code for the CLI without its verifier.
	r = e.as("", "POST", "/auth/cli/token", map[string]string{"code": "guess", "verifier": "v"})
	if r.status != http.StatusUnauthorized {
		t.Errorf("guessed CLI code: %s", r)
	}
	// A CLI login must bring its state and S256 challenge.
	if r = get("/auth/login?cli_port=5555&cli_state=short"); r.status != http.StatusBadRequest {
		t.Errorf("CLI login without a challenge: %s", r)
	}
	// Brute force: after 20 failures a minute, 429 with Retry-After.
	var last response
	for i := 0; i < 25; i++ {
		last = get("/auth/callback?state=forged&code=abc")
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Errorf("after 27 failed sign-ins: %s", last)
	}
	// Each failure is audited (until the throttle refuses).
	var evs apiv1.List[apiv1.AuditEvent]
	e.must(e.do("GET", "/api/v1/audit/events?action=auth.login_failed&limit=100", nil), http.StatusOK, &evs)
	if len(evs.Items) < 20 || evs.Items[0].Outcome != "denied" || evs.Items[0].SourceIP != "127.0.0.1" {
		t.Errorf("%d failed sign-in events, first %+v", len(evs.Items), evs.Items)
	}
	// SSO off: a clear 503.
	e.a.SSO = nil
	if r = get("/auth/login"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not configured") {
		t.Errorf("SSO off: %s", r)
	}
	if r = get("/auth/sso"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "not configured") {
		t.Errorf("GET /auth/sso, SSO off: %s", r)
	}
}

// `gantry login --sso` asks /auth/sso first: once the provider is down it
// says so, even after a sign-in made the server keep its discovery
// document.
func TestSSOStatusWhenTheProviderGoesDown(t *testing.T) {
	e := newRBACEnv(t)
	var issuer string
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"authorization_endpoint":"%[1]s/auth","token_endpoint":"%[1]s/token","jwks_uri":"%[1]s/jwks"}`, issuer)
	}))
	issuer = idp.URL
	e.a.SSO = &api.SSO{Issuer: issuer, ClientID: "gantry", ClientSecret: "x", RedirectURL: e.url + "/auth/callback", DB: e.db}
	if r := e.send(request{method: "GET", path: "/auth/sso"}); r.status != http.StatusOK || !strings.Contains(string(r.body), issuer) {
		t.Fatalf("GET /auth/sso, provider up: %s", r)
	}
	idp.Close()
	if r := e.send(request{method: "GET", path: "/auth/sso"}); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "cannot be reached") {
		t.Errorf("GET /auth/sso, provider gone: %s", r)
	}
}

// A session cookie that does not work (forged, expired, revoked) is a
// failed authentication like a bad token: audited, and counted by the
// throttle.
func TestBadSessionCookieAudited(t *testing.T) {
	e := newRBACEnv(t)
	e.a.SSO = &api.SSO{Issuer: "http://127.0.0.1:1", ClientID: "gantry", ClientSecret: "x", RedirectURL: e.url + "/auth/callback", DB: e.db}
	var last response
	for range 25 {
		last = e.send(request{method: "GET", path: "/api/v1/whoami", header: map[string]string{"Cookie": "gantry_session=forged.cookie"}})
	}
	if last.status != http.StatusTooManyRequests {
		t.Errorf("after 25 forged cookies: %s, want 429", last)
	}
	var evs apiv1.List[apiv1.AuditEvent]
	e.must(e.do("GET", "/api/v1/audit/events?action=auth.failed&limit=100", nil), http.StatusOK, &evs)
	if len(evs.Items) == 0 {
		t.Error("no auth.failed event for a forged session cookie")
	}
}
