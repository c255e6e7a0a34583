package api_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
)

// newKeyEnv is the API over SQLite with its logs kept at debug level, to
// check that no token reaches them. Only the key routes are exercised.
func newKeyEnv(t *testing.T) *apiEnv {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := db.Open(ctx, "", t.TempDir(), log)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{t: t, logs: logs}
	keys := auth.NewKeys(d)
	if e.token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	a := &api.API{Spaces: spaces, Keys: keys, Log: log}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(httpx.Adapter{Log: log}.Recover(mux)))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Cleanup(func() {
		if l := logs.String(); strings.Contains(l, "request failed") {
			t.Errorf("the server logged failed requests (500s):\n%s", l)
		}
	})
	return e
}

// listKeys lists the API keys as token.
func (e *apiEnv) listKeys(token string) (apiv1.List[apiv1.APIKey], response) {
	e.t.Helper()
	r := e.send(request{method: "GET", path: "/api/v1/api-keys", token: token})
	var out apiv1.List[apiv1.APIKey]
	if r.status == http.StatusOK {
		e.must(r, http.StatusOK, &out)
	}
	return out, r
}

func TestAPIKeys(t *testing.T) {
	e := newKeyEnv(t)
	var tokens []string

	// Create: the token is in the answer, once.
	before := time.Now()
	var ci apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "ci", "expires_in": "30d", "admin": true}), http.StatusCreated, &ci)
	tokens = append(tokens, ci.Token)
	if !strings.HasPrefix(ci.ID, "key-") || ci.Name != "ci" || !strings.HasPrefix(ci.Token, auth.TokenPrefix) ||
		ci.CreatedBy != "api_key::admin" || ci.CreatedAt.Location() != time.UTC || ci.ExpiresAt == nil {
		t.Fatalf("created = %+v", ci)
	}
	if d := ci.ExpiresAt.Sub(before); d < 30*24*time.Hour || d > 30*24*time.Hour+time.Minute {
		t.Errorf("expires_at %v is not 30 days after %v", ci.ExpiresAt, before)
	}
	at := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	var deploy apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "deploy", "expires_at": at.Format(time.RFC3339)}), http.StatusCreated, &deploy)
	tokens = append(tokens, deploy.Token)
	if deploy.ExpiresAt == nil || !deploy.ExpiresAt.Equal(at) {
		t.Errorf("expires_at = %v, want %v", deploy.ExpiresAt, at)
	}
	var forever apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "forever", "expires_in": "720h"}), http.StatusCreated, &forever)
	tokens = append(tokens, forever.Token)

	// The new key authenticates, and records who it is when it creates keys.
	var byCI apiv1.APIKeyCreated
	r := e.send(request{method: "POST", path: "/api/v1/api-keys", token: ci.Token, contentType: "application/json",
		body: strings.NewReader(`{"name":"made-by-ci"}`)})
	e.must(r, http.StatusCreated, &byCI)
	tokens = append(tokens, byCI.Token)
	if byCI.CreatedBy != "api_key::ci" || byCI.ExpiresAt != nil {
		t.Errorf("key made by ci = %+v", byCI)
	}
	// A key made without "admin" may do nothing until a role is bound to
	// it: not even list keys (403 naming the missing action).
	r = e.send(request{method: "GET", path: "/api/v1/api-keys", token: byCI.Token})
	if d := wantError(t, r, 403, "forbidden"); !strings.Contains(d.Message, "apikey:manage") || !strings.Contains(d.Message, "root") {
		t.Errorf("non-admin key listing keys: %q", d.Message)
	}

	// The list shows every key and no token.
	list, raw := e.listKeys(ci.Token)
	if raw.status != http.StatusOK {
		t.Fatalf("list with the new key = %s", raw)
	}
	var names []string
	for _, k := range list.Items {
		names = append(names, k.Name)
	}
	if strings.Join(names, ",") != "admin,ci,deploy,forever,made-by-ci" {
		t.Errorf("listed %v", names)
	}
	for _, tok := range append(tokens, e.token) {
		if strings.Contains(string(raw.body), tok) || strings.Contains(string(raw.body), "token") {
			t.Errorf("the list shows a token: %s", raw.body)
		}
	}
	if k := list.Items[1]; k.ID != ci.ID || k.LastUsedAt == nil || k.ExpiresAt == nil || k.RevokedAt != nil {
		t.Errorf("ci listed as %+v: want last_used_at and expires_at, no revoked_at", k)
	}
	if k := list.Items[0]; k.CreatedBy != "" || k.ExpiresAt != nil {
		t.Errorf("bootstrap key listed as %+v", k)
	}

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name   string
			body   string
			status int
			code   string
		}{
			{"no name", `{}`, 400, "invalid"},
			{"blank name", `{"name":"  "}`, 400, "invalid"},
			{"long name", `{"name":"` + strings.Repeat("n", 256) + `"}`, 400, "invalid"},
			{"duplicate", `{"name":"ci"}`, 409, "conflict"},
			{"both expiries", `{"name":"x","expires_in":"1h","expires_at":"2099-01-01T00:00:00Z"}`, 400, "invalid"},
			{"bad duration", `{"name":"x","expires_in":"3 weeks"}`, 400, "invalid"},
			{"zero days", `{"name":"x","expires_in":"0d"}`, 400, "invalid"},
			{"negative", `{"name":"x","expires_in":"-1h"}`, 400, "invalid"},
			{"past", `{"name":"x","expires_at":"2020-01-01T00:00:00Z"}`, 400, "invalid"},
			{"not a time", `{"name":"x","expires_at":"tomorrow"}`, 400, "invalid"},
			{"unknown field", `{"name":"x","token":"gnt_mine-mine-mine-mine"}`, 400, "invalid"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantError(t, e.do("POST", "/api/v1/api-keys", tt.body), tt.status, tt.code)
			})
		}
		wantError(t, e.send(request{method: "GET", path: "/api/v1/api-keys"}), 401, "unauthenticated")
		wantError(t, e.do("DELETE", "/api/v1/api-keys/key-nope", nil), 404, "not_found")
	})

	t.Run("revoke", func(t *testing.T) {
		if r := e.do("DELETE", "/api/v1/api-keys/"+ci.ID, nil); r.status != http.StatusNoContent {
			t.Fatalf("revoke = %s", r)
		}
		_, r := e.listKeys(ci.Token)
		if d := wantError(t, r, 401, "unauthenticated"); d.Message != "API key revoked" {
			t.Errorf("message = %q", d.Message)
		}
		list, _ := e.listKeys(e.token)
		if k := list.Items[1]; k.ID != ci.ID || k.RevokedAt == nil {
			t.Errorf("revoked key listed as %+v, want it kept with revoked_at", k)
		}
		// Again: nothing changes.
		if r := e.do("DELETE", "/api/v1/api-keys/"+ci.ID, nil); r.status != http.StatusNoContent {
			t.Errorf("second revoke = %s", r)
		}
		// A key may revoke itself while others remain.
		r = e.send(request{method: "DELETE", path: "/api/v1/api-keys/" + byCI.ID, token: byCI.Token})
		if r.status != http.StatusNoContent {
			t.Errorf("self-revoke = %s", r)
		}
	})

	t.Run("last active key", func(t *testing.T) {
		for _, id := range []string{deploy.ID, forever.ID} {
			if r := e.do("DELETE", "/api/v1/api-keys/"+id, nil); r.status != http.StatusNoContent {
				t.Fatalf("revoke %s = %s", id, r)
			}
		}
		adminID := list.Items[0].ID
		d := wantError(t, e.do("DELETE", "/api/v1/api-keys/"+adminID, nil), 409, "conflict")
		if !strings.Contains(d.Message, "last active admin API key") {
			t.Errorf("message %q does not explain", d.Message)
		}
		if _, r := e.listKeys(e.token); r.status != http.StatusOK {
			t.Errorf("the last key stopped working: %s", r)
		}
	})

	logs := e.logs.String()
	if !strings.Contains(logs, "API key created") || !strings.Contains(logs, "API key revoked") {
		t.Errorf("key changes not logged:\n%s", logs)
	}
	for _, tok := range append(tokens, e.token) {
		if strings.Contains(logs, tok) || strings.Contains(logs, tok[len(auth.TokenPrefix):]) {
			t.Errorf("a token is in the logs:\n%s", logs)
		}
	}
}

func TestAPIKeyExpiry(t *testing.T) {
	e := newKeyEnv(t)
	var k apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "brief", "expires_in": "1s", "admin": true}), http.StatusCreated, &k)
	// Poll until the key has expired (at most a few seconds).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, r := e.listKeys(k.Token)
		if r.status == http.StatusUnauthorized {
			if d := wantError(t, r, 401, "unauthenticated"); d.Message != "API key expired" {
				t.Errorf("message = %q", d.Message)
			}
			break
		}
		if r.status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("key of 1s still answers %s", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An expired key is not the last active one: it may be revoked.
	if r := e.do("DELETE", "/api/v1/api-keys/"+k.ID, nil); r.status != http.StatusNoContent {
		t.Errorf("revoke expired = %s", r)
	}
}
