// Package fakeentra is a test double of Microsoft Entra ID's token
// endpoint for Gantry's tests: the client credentials grant with a
// federated client assertion (POST /<tenant>/oauth2/v2.0/token), checking
// what Entra checks: the assertion's signature against the issuer's JWKS
// over HTTP, its audience api://AzureADTokenExchange and expiry, and a
// federated identity credential of the app matching its issuer and
// subject exactly. Errors come as Entra's {"error", "error_description"}
// with AADSTS codes. Only tests import it.
package fakeentra

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
)

// App is an app registration with its federated credentials and client
// secrets (keyId -> secret).
type App struct {
	Tenant, ClientID string
	Issuer           string
	Subjects         []string // federated identity credentials: exact subjects
	Secrets          map[string]string
	// GraphAdmin: its tokens may manage other apps' passwords in Graph.
	GraphAdmin bool
}

// Issued is an access token handed out.
type Issued struct {
	ClientID, Subject, Scope, AccessToken string
}

// Entra is the fake; use it as an http.Handler. It also serves Microsoft
// Graph's addPassword and removePassword for the apps.
type Entra struct {
	apps        []*App
	mu          sync.Mutex
	issued      []Issued
	graphTokens map[string]bool
}

// New returns a fake with apps.
func New(apps ...App) *Entra {
	e := &Entra{graphTokens: map[string]bool{}}
	for i := range apps {
		a := apps[i]
		if a.Secrets == nil {
			a.Secrets = map[string]string{}
		}
		e.apps = append(e.apps, &a)
	}
	return e
}

// Secrets returns an app's current client secrets (keyId -> secret).
func (e *Entra) Secrets(clientID string) map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for _, a := range e.apps {
		if a.ClientID == clientID {
			for k, v := range a.Secrets {
				out[k] = v
			}
		}
	}
	return out
}

// Issued returns the access tokens handed out.
func (e *Entra) Issued() []Issued {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Issued(nil), e.issued...)
}

func fail(w http.ResponseWriter, status int, code, desc string) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": code, "error_description": desc, "error_codes": []int{}})
}

func (e *Entra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if strings.HasPrefix(r.URL.Path, "/v1.0/applications(appId='") {
		e.graph(w, r)
		return
	}
	tenant, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if r.Method != http.MethodPost || rest != "oauth2/v2.0/token" {
		fail(w, 404, "invalid_request", "AADSTS900561: The endpoint only accepts POST requests.")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(w, 400, "invalid_request", "AADSTS900144: malformed request")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		fail(w, 400, "unsupported_grant_type", "AADSTS70003: unsupported grant type")
		return
	}
	var app *App
	e.mu.Lock()
	for _, a := range e.apps {
		if a.Tenant == tenant && a.ClientID == f.Get("client_id") {
			app = a
		}
	}
	e.mu.Unlock()
	if app == nil {
		fail(w, 400, "unauthorized_client", "AADSTS700016: Application with identifier '"+f.Get("client_id")+"' was not found in the directory.")
		return
	}
	if secret := f.Get("client_secret"); secret != "" {
		e.mu.Lock()
		ok := false
		for _, s := range app.Secrets {
			ok = ok || s == secret
		}
		e.mu.Unlock()
		if !ok {
			fail(w, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
		at := "eyJ0eXAiOiJKV1QifQ." + randomHex(24)
		e.mu.Lock()
		if app.GraphAdmin && f.Get("scope") == "https://graph.microsoft.com/.default" {
			e.graphTokens[at] = true
		}
		e.issued = append(e.issued, Issued{ClientID: app.ClientID, Subject: "secret", Scope: f.Get("scope"), AccessToken: at})
		e.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": at})
		return
	}
	if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		fail(w, 400, "invalid_request", "AADSTS900144: client_secret or client_assertion is required")
		return
	}
	provider, err := oidc.NewProvider(r.Context(), app.Issuer)
	if err != nil {
		fail(w, 401, "invalid_client", "AADSTS50166: Request to External OIDC endpoint failed.")
		return
	}
	tok, err := provider.Verifier(&oidc.Config{ClientID: "api://AzureADTokenExchange"}).Verify(r.Context(), f.Get("client_assertion"))
	if err != nil {
		fail(w, 401, "invalid_client", "AADSTS700211: No matching federated identity record found for presented assertion issuer, or the assertion is invalid: "+err.Error())
		return
	}
	matched := false
	for _, s := range app.Subjects {
		matched = matched || s == tok.Subject
	}
	if !matched {
		fail(w, 401, "invalid_client", "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '"+tok.Issuer+"'. Assertion Subject: '"+tok.Subject+"'.")
		return
	}
	at := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + randomHex(24)
	e.mu.Lock()
	e.issued = append(e.issued, Issued{ClientID: app.ClientID, Subject: tok.Subject, Scope: f.Get("scope"), AccessToken: at})
	e.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": at})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// graph serves addPassword and removePassword for an admin's token.
func (e *Entra) graph(w http.ResponseWriter, r *http.Request) {
	gerr := func(status int, code, msg string) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	}
	e.mu.Lock()
	ok := e.graphTokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	e.mu.Unlock()
	if !ok {
		gerr(401, "InvalidAuthenticationToken", "Access token validation failure.")
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1.0/applications(appId='")
	appID, op, _ := strings.Cut(rest, "')/")
	e.mu.Lock()
	defer e.mu.Unlock()
	var app *App
	for _, a := range e.apps {
		if a.ClientID == appID {
			app = a
		}
	}
	if app == nil {
		gerr(404, "Request_ResourceNotFound", "Resource '"+appID+"' does not exist.")
		return
	}
	switch op {
	case "addPassword":
		key, secret := randomHex(8), "gnt~"+randomHex(20)
		app.Secrets[key] = secret
		_ = json.NewEncoder(w).Encode(map[string]any{"keyId": key, "secretText": secret, "displayName": "gantry"})
	case "removePassword":
		var in struct {
			KeyID string `json:"keyId"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || app.Secrets[in.KeyID] == "" {
			gerr(400, "InvalidKeyId", "No password credential with that keyId.")
			return
		}
		delete(app.Secrets, in.KeyID)
		w.WriteHeader(http.StatusNoContent)
	default:
		gerr(400, "BadRequest", "unsupported")
	}
}
