package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/auth"
)

// cliCode stores what the callback of a CLI sign-in stores for userID and
// returns the one-time code and its verifier.
func (e *rbacEnv) cliCode(userID string) (string, string) {
	e.t.Helper()
	code, verifier := "code-"+userID+time.Now().String(), "verifier-0123456789-0123456789-0123456789"
	sum := sha256.Sum256([]byte(code))
	ch := sha256.Sum256([]byte(verifier))
	if _, err := e.db.Exec(context.Background(), `INSERT INTO oidc_logins (state, verifier, nonce, return_to, cli_port, cli_code, created_at) VALUES ($1, $2, $3, '', 0, '', $4)`,
		"x:"+base64.RawURLEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(ch[:]), userID, time.Now().UnixNano()); err != nil {
		e.t.Fatal(err)
	}
	return code, verifier
}

// TestCLITokenDisabledUser: the CLI's code is not traded for a session
// once its user is disabled, so nothing comes back to life on enable.
func TestCLITokenDisabledUser(t *testing.T) {
	e := newRBACEnv(t)
	e.a.SSO = &api.SSO{Issuer: "http://127.0.0.1:1", ClientID: "gantry", ClientSecret: "x", RedirectURL: e.url + "/auth/callback", DB: e.db}
	uid, _ := e.signedInUser("bob", `[]`)
	code, verifier := e.cliCode(uid)
	e.must(e.do("POST", "/api/v1/users/bob/disable", nil), http.StatusOK, nil)
	r := e.as("", "POST", "/auth/cli/token", map[string]string{"code": code, "verifier": verifier})
	if d := wantError(t, r, http.StatusForbidden, "forbidden"); !strings.Contains(d.Message, "disabled") {
		t.Errorf("CLI token for a disabled user: %s", r)
	}
	e.must(e.do("POST", "/api/v1/users/bob/enable", nil), http.StatusOK, nil)
	var n int
	if err := e.db.QueryRow(context.Background(), `SELECT COUNT(*) FROM sessions WHERE user_id = $1 AND revoked_at = 0`, uid).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d live sessions of bob after enable (%v), want 0", n, err)
	}
	// Enabled, a fresh code works.
	code, verifier = e.cliCode(uid)
	var out struct{ Token string }
	e.must(e.as("", "POST", "/auth/cli/token", map[string]string{"code": code, "verifier": verifier}), http.StatusOK, &out)
	e.must(e.as(out.Token, "GET", "/api/v1/whoami", nil), http.StatusOK, nil)
}

// TestLogoutCookieSameOrigin: signing out with the session cookie is a
// change made with the cookie, refused from another site like the others.
func TestLogoutCookieSameOrigin(t *testing.T) {
	e := newRBACEnv(t)
	e.a.SSO = &api.SSO{Issuer: "http://127.0.0.1:1", ClientID: "gantry", ClientSecret: "x", RedirectURL: e.url + "/auth/callback", DB: e.db}
	_, token := e.signedInUser("carol", `[]`)
	key, err := e.a.Users.CookieKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cookie := "gantry_session=" + auth.SignCookie(key, token)
	r := e.send(request{method: "POST", path: "/auth/logout", header: map[string]string{"Cookie": cookie, "Origin": "http://evil.example"}})
	wantError(t, r, http.StatusForbidden, "forbidden")
	e.must(e.as(token, "GET", "/api/v1/whoami", nil), http.StatusOK, nil)
	r = e.send(request{method: "POST", path: "/auth/logout", header: map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin"}})
	if r.status != http.StatusNoContent {
		t.Fatalf("same-origin logout: %s", r)
	}
	if r := e.as(token, "GET", "/api/v1/whoami", nil); r.status != http.StatusUnauthorized {
		t.Errorf("session after logout: %s", r)
	}
}
