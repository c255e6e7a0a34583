// Package fakegoogle is a test double of Google Cloud's workload identity
// federation for Gantry's tests: the Security Token Service's token
// exchange (POST /v1/token, RFC 8693 form) verifying the subject token
// against the issuer's JWKS over HTTP, its audience (the provider's
// resource name) and an attribute condition on sub; and IAM Credentials'
// generateAccessToken for a service account the federated principal may
// impersonate. Errors come in Google's shapes. Only tests import it.
package fakegoogle

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Provider is a workload identity pool provider, and who may impersonate
// which service account.
type Provider struct {
	Resource        string // projects/NUM/locations/global/workloadIdentityPools/POOL/providers/PROV
	Issuer          string
	SubjectPattern  string            // attribute condition: glob on sub
	ServiceAccounts map[string]string // service account -> sub glob allowed to impersonate it
}

// Issued is an access token handed out for a service account.
type Issued struct {
	ServiceAccount, Subject, AccessToken string
	Scopes                               []string
}

// Google is the fake; use it as an http.Handler.
type Google struct {
	p         Provider
	mu        sync.Mutex
	federated map[string]string // federated token -> sub
	issued    []Issued
}

// New returns a fake for one provider.
func New(p Provider) *Google { return &Google{p: p, federated: map[string]string{}} }

// Issued returns the service account tokens handed out.
func (g *Google) Issued() []Issued {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Issued(nil), g.issued...)
}

func random() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (g *Google) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/token":
		g.exchange(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/projects/-/serviceAccounts/") && strings.HasSuffix(r.URL.Path, ":generateAccessToken"):
		sa := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/projects/-/serviceAccounts/"), ":generateAccessToken")
		g.generate(w, r, sa)
	default:
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"error":{"code":404,"message":"not found","status":"NOT_FOUND"}}`))
	}
}

func stsErr(w http.ResponseWriter, code, desc string) {
	w.WriteHeader(400)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (g *Google) exchange(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		stsErr(w, "invalid_request", "malformed form")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" ||
		f.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
		stsErr(w, "invalid_request", "unsupported grant, subject or requested token type")
		return
	}
	if f.Get("audience") != "//iam.googleapis.com/"+g.p.Resource {
		stsErr(w, "invalid_target", "The target service indicated by the \"audience\" parameters is invalid.")
		return
	}
	provider, err := oidc.NewProvider(r.Context(), g.p.Issuer)
	if err != nil {
		stsErr(w, "invalid_grant", "could not fetch the issuer's discovery document: "+err.Error())
		return
	}
	// The default allowed audiences: the provider's resource name, with or
	// without the https: prefix.
	v := provider.Verifier(&oidc.Config{SkipClientIDCheck: true})
	tok, err := v.Verify(r.Context(), f.Get("subject_token"))
	if err != nil {
		stsErr(w, "invalid_grant", "The ID Token has an invalid signature or is expired: "+err.Error())
		return
	}
	okAud := false
	for _, a := range tok.Audience {
		okAud = okAud || a == "//iam.googleapis.com/"+g.p.Resource || a == "https://iam.googleapis.com/"+g.p.Resource
	}
	if !okAud {
		stsErr(w, "invalid_grant", "The audience in ID Token does not match the expected audience.")
		return
	}
	if ok, _ := path.Match(g.p.SubjectPattern, tok.Subject); !ok {
		stsErr(w, "unauthorized_client", "The given credential is rejected by the attribute condition.")
		return
	}
	fed := "ya29.fed-" + random()
	g.mu.Lock()
	g.federated[fed] = tok.Subject
	g.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fed, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type": "Bearer", "expires_in": 3600})
}

func (g *Google) generate(w http.ResponseWriter, r *http.Request, sa string) {
	denied := func(msg string) {
		w.WriteHeader(403)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": 403, "message": msg, "status": "PERMISSION_DENIED"}})
	}
	g.mu.Lock()
	sub, ok := g.federated[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	g.mu.Unlock()
	if !ok {
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}`))
		return
	}
	pattern, known := g.p.ServiceAccounts[sa]
	if allowed, _ := path.Match(pattern, sub); !known || !allowed {
		denied("Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).")
		return
	}
	var in struct {
		Scope    []string `json:"scope"`
		Lifetime string   `json:"lifetime"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Scope) == 0 {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":{"code":400,"message":"scope is required","status":"INVALID_ARGUMENT"}}`))
		return
	}
	d, err := time.ParseDuration(in.Lifetime)
	if in.Lifetime == "" {
		d, err = time.Hour, nil
	}
	if err != nil || d > time.Hour {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":{"code":400,"message":"lifetime must be at most 3600s","status":"INVALID_ARGUMENT"}}`))
		return
	}
	at := "ya29.sa-" + random()
	g.mu.Lock()
	g.issued = append(g.issued, Issued{ServiceAccount: sa, Subject: sub, AccessToken: at, Scopes: in.Scope})
	g.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]string{"accessToken": at, "expireTime": time.Now().Add(d).UTC().Format(time.RFC3339)})
}
