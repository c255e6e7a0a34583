package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
)

// fakeIdP is an OpenID Provider issuing ID tokens for whoever the test
// says signs in next (sub, login, groups).
type fakeIdP struct {
	srv *httptest.Server
	key jwk.Key

	mu     sync.Mutex
	nonce  string
	claims map[string]any
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	raw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIdP{}
	if f.key, err = jwk.Import(raw); err != nil {
		t.Fatal(err)
	}
	_ = f.key.Set(jwk.KeyIDKey, "k1")
	_ = f.key.Set(jwk.AlgorithmKey, jwa.RS256())
	pub, err := f.key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.srv.URL, "authorization_endpoint": f.srv.URL + "/authorize",
			"token_endpoint": f.srv.URL + "/token", "jwks_uri": f.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(set) })
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		c := map[string]any{"iss": f.srv.URL, "aud": "gantry", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(), "nonce": f.nonce}
		for k, v := range f.claims {
			c[k] = v
		}
		f.mu.Unlock()
		payload, _ := json.Marshal(c)
		tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), f.key))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"id_token": string(tok), "token_type": "Bearer"})
	})
	return f
}

// signIn runs a browser sign-in of claims through e and returns the
// callback's answer.
func (f *fakeIdP) signIn(t *testing.T, e *rbacEnv, claims map[string]any) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.url + "/auth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("/auth/login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	f.mu.Lock()
	f.nonce, f.claims = loc.Query().Get("nonce"), claims
	f.mu.Unlock()
	req, _ := http.NewRequest("GET", e.url+"/auth/callback?"+url.Values{"state": {loc.Query().Get("state")}, "code": {"c"}}.Encode(), nil)
	for _, ck := range resp.Cookies() {
		req.AddCookie(ck)
	}
	out, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out.Body.Close()
	return out
}

// TestSignInRefusedClearsSSORights: a sign-in the login policy refuses
// (deny or error) shows the user no longer qualifies: their stored groups,
// grants and admin flag are cleared (their own keys lose them at once) and
// their sessions revoked; the keys keep roles bound to the user.
func TestSignInRefusedClearsSSORights(t *testing.T) {
	idp := newFakeIdP(t)
	e := newRBACEnv(t)
	e.a.SSO = &api.SSO{Issuer: idp.srv.URL, ClientID: "gantry", ClientSecret: "x", RedirectURL: e.url + "/auth/callback", DB: e.db,
		Login: func(ctx context.Context, in api.LoginInput) (api.LoginDecision, error) {
			has := func(g string) bool {
				for _, x := range in.Groups {
					if x == g {
						return true
					}
				}
				return false
			}
			switch {
			case has("broken"):
				return api.LoginDecision{}, context.DeadlineExceeded
			case !has("platform"):
				return api.LoginDecision{Applied: true, Deny: true}, nil
			}
			return api.LoginDecision{Applied: true, Admin: has("admins"), Grants: map[string][]string{"root": {"space-reader"}}}, nil
		}}
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)

	for _, refusal := range []string{"deny", "error"} {
		t.Run(refusal, func(t *testing.T) {
			sub := "erin-" + refusal
			resp := idp.signIn(t, e, map[string]any{"sub": sub, "preferred_username": sub, "groups": []string{"platform", "admins"}})
			var session string
			for _, ck := range resp.Cookies() {
				if ck.Name == "gantry_session" {
					session, _, _ = strings.Cut(ck.Value, ".")
				}
			}
			if resp.StatusCode != http.StatusFound || session == "" {
				t.Fatalf("sign-in: %d %v", resp.StatusCode, resp.Header)
			}
			// The sign-in records what it gave: groups, admin, grants.
			var logins apiv1.List[apiv1.AuditEvent]
			e.must(e.do("GET", "/api/v1/audit/events?action=auth.login&limit=100", nil), http.StatusOK, &logins)
			found := false
			for _, ev := range logins.Items {
				var c struct {
					After struct {
						Groups []string            `json:"groups"`
						Admin  bool                `json:"admin"`
						Grants map[string][]string `json:"grants"`
					} `json:"after"`
				}
				if ev.SubjectID == sub && json.Unmarshal(ev.Change, &c) == nil && c.After.Admin &&
					slices.Contains(c.After.Groups, "admins") && slices.Contains(c.After.Grants["root"], "space-reader") {
					found = true
				}
			}
			if !found {
				t.Errorf("no auth.login event of %s recording its groups, admin and grants: %+v", sub, logins.Items)
			}
			var key apiv1.APIKeyCreated
			e.must(e.as(session, "POST", "/api/v1/api-keys", map[string]any{"name": sub + "-laptop"}), http.StatusCreated, &key)
			var me apiv1.Whoami
			e.must(e.as(key.Token, "GET", "/api/v1/whoami", nil), http.StatusOK, &me)
			if !me.Admin {
				t.Fatalf("key before: %+v", me)
			}
			e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "space-reader", "space": "team", "user": sub}), http.StatusCreated, nil)

			groups := []string{"admins"} // removed from platform: denied
			if refusal == "error" {
				groups = []string{"platform", "admins", "broken"}
			}
			resp = idp.signIn(t, e, map[string]any{"sub": sub, "preferred_username": sub, "groups": groups})
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("refused sign-in: %d", resp.StatusCode)
			}
			// The audit trail says "internal error"; the server log gives
			// the operator the cause.
			if l := e.logs.String(); refusal == "error" && (!strings.Contains(l, "the login policy failed") || !strings.Contains(l, "deadline exceeded")) {
				t.Errorf("the server log does not give the login policy's error:\n%s", l)
			}
			if r := e.as(session, "GET", "/api/v1/whoami", nil); r.status != http.StatusUnauthorized {
				t.Errorf("browser session after the refused sign-in: %s", r)
			}
			e.must(e.as(key.Token, "GET", "/api/v1/whoami", nil), http.StatusOK, &me)
			if me.Admin {
				t.Errorf("personal key still admin: %+v", me)
			}
			if r := e.as(key.Token, "GET", "/api/v1/spaces/root", nil); r.status != http.StatusNotFound {
				t.Errorf("personal key keeps the root grant: %s", r)
			}
			e.must(e.as(key.Token, "GET", "/api/v1/spaces/team", nil), http.StatusOK, nil)
			var users apiv1.List[apiv1.User]
			e.must(e.do("GET", "/api/v1/users", nil), http.StatusOK, &users)
			for _, u := range users.Items {
				if u.Login == sub && (u.Admin || len(u.Groups) > 0 || len(u.Grants) > 0) {
					t.Errorf("user after the refused sign-in: %+v", u)
				}
			}
			var evs apiv1.List[apiv1.AuditEvent]
			e.must(e.do("GET", "/api/v1/audit/events?action=user.sign_in_refused", nil), http.StatusOK, &evs)
			if len(evs.Items) == 0 {
				t.Errorf("no user.sign_in_refused event")
			}
		})
	}
}
