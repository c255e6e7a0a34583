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

// App is an app registration with its federated credentials.
type App struct {
	Tenant, ClientID string
	Issuer           string
	Subjects         []string // federated identity credentials: exact subjects
}

// Issued is an access token handed out.
type Issued struct {
	ClientID, Subject, Scope, AccessToken string
}

// Entra is the fake; use it as an http.Handler.
type Entra struct {
	apps   []App
	mu     sync.Mutex
	issued []Issued
}

// New returns a fake with apps.
func New(apps ...App) *Entra { return &Entra{apps: apps} }

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
	if f.Get("grant_type") != "client_credentials" || f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		fail(w, 400, "unsupported_grant_type", "AADSTS70003: unsupported grant or assertion type")
		return
	}
	var app *App
	for i := range e.apps {
		if e.apps[i].Tenant == tenant && e.apps[i].ClientID == f.Get("client_id") {
			app = &e.apps[i]
		}
	}
	if app == nil {
		fail(w, 400, "unauthorized_client", "AADSTS700016: Application with identifier '"+f.Get("client_id")+"' was not found in the directory.")
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
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	at := "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + hex.EncodeToString(b)
	e.mu.Lock()
	e.issued = append(e.issued, Issued{ClientID: app.ClientID, Subject: tok.Subject, Scope: f.Get("scope"), AccessToken: at})
	e.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": at})
}
