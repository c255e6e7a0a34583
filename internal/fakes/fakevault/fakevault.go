// Package fakevault is a test double of HashiCorp Vault (or OpenBao) for
// Gantry's tests: the JWT auth method's login (POST
// /v1/auth/<mount>/login {role, jwt}) verifying the token against the
// issuer's JWKS fetched over HTTP, its audience and expiry and the role's
// bound subject, as Vault does; and the token endpoints revoke-self and
// lookup-self. Errors come as Vault's {"errors": [...]}. Only tests import
// it.
package fakevault

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Role is a JWT auth role.
type Role struct {
	Name, Mount, Namespace string
	Issuer, Audience       string
	BoundSubject           string // glob on sub
	Policies               []string
}

// Vault is the fake; use it as an http.Handler.
type Vault struct {
	mu      sync.Mutex
	roles   map[string]Role  // mount/name
	tokens  map[string]Login // token -> its login
	revoked map[string]bool
}

// Login is a token handed out.
type Login struct {
	Token, Role, Subject string
}

// New returns a fake with roles.
func New(roles ...Role) *Vault {
	v := &Vault{roles: map[string]Role{}, tokens: map[string]Login{}, revoked: map[string]bool{}}
	for _, r := range roles {
		if r.Mount == "" {
			r.Mount = "jwt"
		}
		v.roles[r.Mount+"/"+r.Name] = r
	}
	return v
}

// Logins returns the tokens handed out.
func (v *Vault) Logins() []Login {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Login
	for _, l := range v.tokens {
		out = append(out, l)
	}
	return out
}

// Revoked reports whether token was revoked.
func (v *Vault) Revoked(token string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.revoked[token]
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []string{msg}})
}

func (v *Vault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch {
	case r.Method == http.MethodPost && p == "auth/token/revoke-self":
		v.mu.Lock()
		_, ok := v.tokens[r.Header.Get("X-Vault-Token")]
		if ok {
			v.revoked[r.Header.Get("X-Vault-Token")] = true
		}
		v.mu.Unlock()
		if !ok {
			fail(w, 403, "permission denied")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && p == "auth/token/lookup-self":
		v.mu.Lock()
		l, ok := v.tokens[r.Header.Get("X-Vault-Token")]
		dead := v.revoked[l.Token]
		v.mu.Unlock()
		if !ok || dead {
			fail(w, 403, "permission denied")
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"meta": map[string]string{"role": l.Role}}})
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(p, "auth/") && strings.HasSuffix(p, "/login"):
		v.login(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "auth/"), "/login"))
	default:
		fail(w, 404, "unsupported path")
	}
}

func (v *Vault) login(w http.ResponseWriter, r *http.Request, mount string) {
	var in struct{ Role, JWT string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		fail(w, 400, "malformed request")
		return
	}
	v.mu.Lock()
	role, ok := v.roles[mount+"/"+in.Role]
	v.mu.Unlock()
	if !ok {
		fail(w, 400, `role "`+in.Role+`" could not be found`)
		return
	}
	if role.Namespace != r.Header.Get("X-Vault-Namespace") {
		fail(w, 400, `role "`+in.Role+`" could not be found`)
		return
	}
	provider, err := oidc.NewProvider(r.Context(), role.Issuer)
	if err != nil {
		fail(w, 500, "error fetching the OIDC discovery document: "+err.Error())
		return
	}
	tok, err := provider.Verifier(&oidc.Config{ClientID: role.Audience}).Verify(r.Context(), in.JWT)
	if err != nil {
		fail(w, 400, "error validating token: "+err.Error())
		return
	}
	if ok, _ := path.Match(role.BoundSubject, tok.Subject); !ok {
		fail(w, 400, "error validating claims: sub claim does not match bound subject")
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := "hvs." + hex.EncodeToString(b)
	v.mu.Lock()
	v.tokens[token] = Login{Token: token, Role: role.Name, Subject: tok.Subject}
	v.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": token, "accessor": "acc-" + token[4:12],
		"policies": role.Policies, "lease_duration": 900, "renewable": true}})
}
