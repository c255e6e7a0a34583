package api

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/id"
)

// SSO signs users in with an OpenID Provider: the authorization code flow
// with PKCE (S256), a state and a nonce, the ID token's signature checked
// against the provider's published keys, its issuer, audience, expiry and
// nonce checked.
type SSO struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is Gantry's callback as the provider knows it:
	// <public URL>/auth/callback.
	RedirectURL string
	Scopes      []string // default openid profile email groups
	GroupsClaim string   // default "groups"
	// SessionTTL bounds browser sessions (default 12h); CLITokenTTL the
	// tokens `gantry login --sso` stores (default 7 days).
	SessionTTL  time.Duration
	CLITokenTTL time.Duration
	// DB keeps logins in progress so that any replica can finish them.
	DB *db.DB
	// Login decides at login (the LOGIN policies); nil: every user the
	// provider authenticates may sign in with what bindings grant.
	Login func(ctx context.Context, in LoginInput) (LoginDecision, error)
	// HTTP is the client for the provider (default: 10 s timeout).
	HTTP *http.Client

	mu        sync.Mutex
	discovery *oidcDiscovery
	keys      jwk.Set
	keysAt    time.Time
}

// LoginInput is what the login decision sees.
type LoginInput struct {
	Login, Name, Email, RemoteIP string
	Groups                       []string
}

// LoginDecision is the outcome of the LOGIN policies.
type LoginDecision struct {
	Deny    bool
	Reason  string
	Admin   bool
	Teams   []string            // replace the IdP groups when not empty
	Grants  map[string][]string // space -> role slugs
	Applied bool                // some login policy exists
}

type oidcDiscovery struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Userinfo      string `json:"userinfo_endpoint"`
	JWKS          string `json:"jwks_uri"`
}

const (
	sessionCookie = "gantry_session"
	loginCookie   = "gantry_login"
	loginMaxAge   = 10 * time.Minute
)

func (s *SSO) client() *http.Client {
	if s.HTTP != nil {
		return s.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (s *SSO) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if v, ok := v.(*[]byte); ok {
		*v = body
		return nil
	}
	return json.Unmarshal(body, v)
}

// config fetches the provider's discovery document once.
func (s *SSO) config(ctx context.Context) (*oidcDiscovery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discovery != nil {
		return s.discovery, nil
	}
	var d oidcDiscovery
	if err := s.getJSON(ctx, strings.TrimSuffix(s.Issuer, "/")+"/.well-known/openid-configuration", &d); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "the OpenID Provider %s cannot be reached", s.Issuer)
	}
	if d.Issuer != s.Issuer {
		return nil, errs.E(errs.Unavailable, "the OpenID Provider's discovery document names issuer %q, configured %q", d.Issuer, s.Issuer)
	}
	if d.Authorization == "" || d.Token == "" || d.JWKS == "" {
		return nil, errs.E(errs.Unavailable, "the OpenID Provider's discovery document lacks an endpoint")
	}
	s.discovery = &d
	return &d, nil
}

// keySet returns the provider's signing keys, refetched when a token names
// a key id it does not hold (key rotation), at most once a minute.
func (s *SSO) keySet(ctx context.Context, d *oidcDiscovery, refresh bool) (jwk.Set, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys != nil && (!refresh || time.Since(s.keysAt) < time.Minute) {
		return s.keys, nil
	}
	var raw []byte
	if err := s.getJSON(ctx, d.JWKS, &raw); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "the OpenID Provider's keys cannot be fetched")
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "the OpenID Provider's keys are malformed")
	}
	s.keys, s.keysAt = set, time.Now()
	return set, nil
}

func pkceChallenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func hashCode(code string) string {
	h := sha256.Sum256([]byte(code))
	return "x:" + base64.RawURLEncoding.EncodeToString(h[:])
}

// authRoutes serves the sign-in flow: /auth/sso, /auth/login,
// /auth/callback, /auth/logout and /auth/cli/token.
func (a *API) authRoutes(mux *http.ServeMux, ad httpx.Adapter) {
	mux.Handle("GET /auth/sso", ad.H(a.ssoStatus))
	mux.Handle("GET /auth/login", ad.H(a.ssoLogin))
	mux.Handle("GET /auth/callback", ad.H(a.ssoCallback))
	mux.Handle("POST /auth/logout", ad.H(a.ssoLogout))
	mux.Handle("POST /auth/cli/token", ad.H(a.ssoCLIToken))
}

func (a *API) sso() (*SSO, error) {
	if a.SSO == nil {
		return nil, errs.E(errs.Unavailable, "single sign-on is not configured on this server (gantry server --oidc-issuer ...)")
	}
	return a.SSO, nil
}

// ssoStatus tells, without starting a sign-in, whether /auth/login can
// start one: 200 {"issuer"} when single sign-on is configured and its
// provider's discovery document can be read, else the 503 /auth/login
// would answer. `gantry login --sso` asks it before waiting for a browser.
func (a *API) ssoStatus(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sso()
	if err != nil {
		return err
	}
	if _, err := s.config(r.Context()); err != nil {
		return err
	}
	// The document the sign-ins use is kept once read: whether the
	// provider answers now is asked anew.
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	var d oidcDiscovery
	if err := s.getJSON(ctx, strings.TrimSuffix(s.Issuer, "/")+"/.well-known/openid-configuration", &d); err != nil {
		return errs.Wrap(errs.Unavailable, err, "the OpenID Provider %s cannot be reached", s.Issuer)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"issuer": s.Issuer})
	return nil
}

// ssoLogin starts a login: ?return_to=/path for the browser, or
// ?cli_port=N&cli_state=S&cli_challenge=C for `gantry login --sso`.
func (a *API) ssoLogin(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sso()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	returnTo := safeReturn(q.Get("return_to"))
	port := 0
	cliState, cliChallenge := q.Get("cli_state"), q.Get("cli_challenge")
	if v := q.Get("cli_port"); v != "" {
		port, err = strconv.Atoi(v)
		if err != nil || port < 1024 || port > 65535 {
			return errs.E(errs.Invalid, "cli_port must be a port from 1024 to 65535")
		}
		if len(cliState) < 16 || len(cliState) > 128 || len(cliChallenge) != 43 {
			return errs.E(errs.Invalid, "a CLI login needs cli_state (16-128 characters) and cli_challenge (S256, 43 characters)")
		}
		returnTo = cliState
	}
	d, err := s.config(r.Context())
	if err != nil {
		return err
	}
	state, verifier, nonce := id.Secret(32), id.Secret(48), id.Secret(24)
	if _, err := s.DB.Exec(r.Context(), `DELETE FROM oidc_logins WHERE created_at < $1`, time.Now().Add(-loginMaxAge).UnixNano()); err != nil {
		return err
	}
	if _, err := s.DB.Exec(r.Context(), `INSERT INTO oidc_logins (state, verifier, nonce, return_to, cli_port, cli_code, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		state, verifier, nonce, returnTo, port, cliChallenge, time.Now().UnixNano()); err != nil {
		return err
	}
	scopes := s.Scopes
	if len(scopes) == 0 {
		scopes = []string{"openid", "profile", "email", "groups"}
	}
	v := url.Values{
		"response_type":         {"code"},
		"client_id":             {s.ClientID},
		"redirect_uri":          {s.RedirectURL},
		"scope":                 {strings.Join(scopes, " ")},
		"state":                 {state},
		"nonce":                 {nonce},
		"code_challenge":        {pkceChallenge(verifier)},
		"code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(d.Authorization, "?") {
		sep = "&"
	}
	// The state is also bound to this browser: the callback must come back
	// with this cookie (login CSRF: someone else's callback link does not
	// sign this browser in).
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: hashCode(state), Path: "/auth/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || strings.HasPrefix(s.RedirectURL, "https://"), MaxAge: int(loginMaxAge.Seconds())})
	http.Redirect(w, r, d.Authorization+sep+v.Encode(), http.StatusFound)
	return nil
}

// safeReturn keeps return_to only when it is a path of this server: no
// scheme or host, no leading "//" or "\\", no control characters (browsers
// drop tabs and newlines from Location, turning "/\t/evil" into "//evil").
func safeReturn(v string) string {
	if v == "" || !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "\\") ||
		strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "/"
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.HasPrefix(u.Path, "//") || strings.HasPrefix(v, "//") {
		return "/"
	}
	return v
}

type pendingLogin struct {
	verifier, nonce, returnTo, cliChallenge string
	cliPort                                 int
}

// takeLogin reads and deletes a login in progress: a state works once.
func (s *SSO) takeLogin(ctx context.Context, state string) (pendingLogin, error) {
	var pl pendingLogin
	var created int64
	// One statement: of two concurrent uses only one gets the row.
	err := s.DB.QueryRow(ctx, `DELETE FROM oidc_logins WHERE state = $1 RETURNING verifier, nonce, return_to, cli_port, cli_code, created_at`, state).
		Scan(&pl.verifier, &pl.nonce, &pl.returnTo, &pl.cliPort, &pl.cliChallenge, &created)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return pendingLogin{}, fmt.Errorf("reading a sign-in in progress: %w", err)
	}
	if err != nil || time.Since(db.FromNanos(created)) > loginMaxAge {
		return pendingLogin{}, errs.E(errs.Unauthenticated, "this sign-in expired or was already used: start again")
	}
	return pl, nil
}

// ssoCallback finishes a login at the provider's redirect.
func (a *API) ssoCallback(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sso()
	if err != nil {
		return err
	}
	if err := a.loginThrottle(r); err != nil {
		return err
	}
	q := r.URL.Query()
	if q.Get("state") == "" || strings.HasPrefix(q.Get("state"), "x:") {
		return errs.E(errs.Invalid, "missing state")
	}
	if c, err := r.Cookie(loginCookie); err != nil || c.Value != hashCode(q.Get("state")) {
		a.loginFailed(r, "", "the sign-in was not started by this browser")
		return errs.E(errs.Unauthenticated, "this sign-in was not started by this browser (or its cookie expired): start again")
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/auth/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	pl, err := s.takeLogin(r.Context(), q.Get("state"))
	if err != nil {
		a.loginFailed(r, "", errs.Public(err))
		return err
	}
	if e := q.Get("error"); e != "" {
		a.loginFailed(r, "", "provider: "+e)
		return errs.E(errs.Unauthenticated, "the OpenID Provider refused the sign-in: %s %s", e, q.Get("error_description"))
	}
	claims, err := s.exchange(r.Context(), q.Get("code"), pl)
	if err != nil {
		a.loginFailed(r, "", errs.Public(err))
		return err
	}
	u, err := a.signIn(r, s, claims)
	if err != nil {
		return err
	}
	if pl.cliPort != 0 {
		code := id.Secret(32)
		if _, err := s.DB.Exec(r.Context(), `INSERT INTO oidc_logins (state, verifier, nonce, return_to, cli_port, cli_code, created_at) VALUES ($1, $2, $3, '', 0, '', $4)`,
			hashCode(code), pl.cliChallenge, u.ID, time.Now().UnixNano()); err != nil {
			return err
		}
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.1:%d/callback?%s", pl.cliPort, url.Values{"code": {code}, "state": {pl.returnTo}}.Encode()), http.StatusFound)
		return nil
	}
	ttl := s.SessionTTL
	if ttl <= 0 {
		ttl = 12 * time.Hour
	}
	_, token, err := a.Users.NewSession(r.Context(), u.ID, "browser", sourceIP(r), ttl)
	if err != nil {
		return err
	}
	key, err := a.Users.CookieKey(r.Context())
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: auth.SignCookie(key, token), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || strings.HasPrefix(s.RedirectURL, "https://"), MaxAge: int(ttl.Seconds())})
	http.Redirect(w, r, pl.returnTo, http.StatusFound)
	return nil
}

// exchange trades the code for tokens and returns the verified claims.
func (s *SSO) exchange(ctx context.Context, code string, pl pendingLogin) (map[string]any, error) {
	if code == "" {
		return nil, errs.E(errs.Invalid, "missing code")
	}
	d, err := s.config(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.RedirectURL}, "code_verifier": {pl.verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Token, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(s.ClientID), url.QueryEscape(s.ClientSecret))
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "the OpenID Provider's token endpoint cannot be reached")
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tok struct {
		IDToken     string `json:"id_token"`
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &tok)
	if resp.StatusCode != http.StatusOK || tok.IDToken == "" {
		return nil, errs.E(errs.Unauthenticated, "the OpenID Provider refused the code: %s %s", tok.Error, tok.Description)
	}
	claims, err := s.verify(ctx, d, tok.IDToken, pl.nonce)
	if err != nil {
		return nil, err
	}
	gc := s.groupsClaim()
	if _, ok := claims[gc]; !ok && d.Userinfo != "" && tok.AccessToken != "" {
		// Some providers put groups at userinfo only.
		if info, err := s.userinfo(ctx, d, tok.AccessToken); err == nil && info["sub"] == claims["sub"] {
			for k, v := range info {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	return claims, nil
}

func (s *SSO) groupsClaim() string {
	if s.GroupsClaim == "" {
		return "groups"
	}
	return s.GroupsClaim
}

func (s *SSO) userinfo(ctx context.Context, d *oidcDiscovery, accessToken string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.Userinfo, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("userinfo: %s", resp.Status)
	}
	var out map[string]any
	return out, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
}

// verify checks the ID token: signature by one of the provider's keys,
// issuer, audience, expiry (30 s of skew) and nonce.
func (s *SSO) verify(ctx context.Context, d *oidcDiscovery, idToken, nonce string) (map[string]any, error) {
	var tok jwt.Token
	for attempt := 0; attempt < 2; attempt++ {
		set, err := s.keySet(ctx, d, attempt > 0)
		if err != nil {
			return nil, err
		}
		tok, err = jwt.Parse([]byte(idToken), jwt.WithKeySet(set, jws.WithInferAlgorithmFromKey(true)),
			jwt.WithIssuer(s.Issuer), jwt.WithAudience(s.ClientID), jwt.WithAcceptableSkew(30*time.Second), jwt.WithValidate(true))
		if err == nil {
			break
		}
		if attempt == 1 {
			return nil, errs.Wrap(errs.Unauthenticated, err, "the ID token does not verify")
		}
	}
	_ = tok
	parts := strings.Split(idToken, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errs.E(errs.Unauthenticated, "the ID token is malformed")
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, errs.E(errs.Unauthenticated, "the ID token is malformed")
	}
	if n, _ := claims["nonce"].(string); n != nonce {
		return nil, errs.E(errs.Unauthenticated, "the ID token's nonce does not match this sign-in")
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, errs.E(errs.Unauthenticated, "the ID token has no subject")
	}
	return claims, nil
}

func claimString(c map[string]any, names ...string) string {
	for _, n := range names {
		if v, ok := c[n].(string); ok && v != "" {
			return v
		}
	}
	return ""
}

// claimGroups reads the groups claim: a list of strings, or one string.
func claimGroups(c map[string]any, name string) []string {
	var out []string
	switch v := c[name].(type) {
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok && s != "" && len(s) <= 255 {
				out = append(out, s)
			}
		}
	case string:
		if v != "" {
			out = []string{v}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// signIn applies the login decision and records the user.
func (a *API) signIn(r *http.Request, s *SSO, claims map[string]any) (auth.User, error) {
	if v, ok := claims["email_verified"].(bool); ok && !v {
		delete(claims, "email") // an address the provider did not verify names nobody
	}
	u := auth.User{Issuer: s.Issuer, Subject: claimString(claims, "sub"),
		Login: claimString(claims, "preferred_username", "email", "sub"), Name: claimString(claims, "name"),
		Email: claimString(claims, "email"), Groups: claimGroups(claims, s.groupsClaim())}
	if s.Login != nil {
		dec, err := s.Login(r.Context(), LoginInput{Login: u.Login, Name: u.Name, Email: u.Email, RemoteIP: sourceIP(r), Groups: u.Groups})
		if err != nil {
			if a.Log != nil {
				// The audit trail says "internal error"; the cause is for the operator.
				a.Log.WarnContext(r.Context(), "the login policy failed; sign-in refused", "login", u.Login, "err", err)
			}
			a.auditLogin(r, "auth.login_failed", u.Login, "login policy: "+errs.Public(err))
			if cerr := a.signInRefused(r, u, "the login policy could not be evaluated"); cerr != nil {
				return auth.User{}, cerr
			}
			return auth.User{}, errs.Wrap(errs.Forbidden, err, "the login policy could not be evaluated; sign-in refused")
		}
		if dec.Deny {
			a.auditLogin(r, "auth.login_denied", u.Login, "denied by the login policy")
			if cerr := a.signInRefused(r, u, "denied by the login policy"); cerr != nil {
				return auth.User{}, cerr
			}
			return auth.User{}, errs.E(errs.Forbidden, "sign-in denied by the login policy")
		}
		u.Admin, u.Grants = dec.Admin, dec.Grants
		if len(dec.Teams) > 0 {
			u.Groups = dec.Teams
		}
	}
	out, err := a.Users.SignedIn(r.Context(), u)
	if errs.Is(err, errs.Forbidden) {
		a.auditLogin(r, "auth.login_denied", u.Login, errs.Public(err))
	}
	if err != nil {
		return auth.User{}, err
	}
	a.auditLogin(r, "auth.login", out.Login, "", map[string]any{"groups": out.Groups, "admin": out.Admin, "grants": out.Grants})
	return out, nil
}

// signInRefused: the login policy refused a sign-in (a deny or an error),
// so the user no longer qualifies: what single sign-on gave them at their
// last sign-in is cleared and their sessions revoked (their own API keys
// keep only the roles bound to the user), audited as
// user.sign_in_refused. Fail closed: an error here is the answer.
func (a *API) signInRefused(r *http.Request, u auth.User, reason string) error {
	var rec auth.Recorder
	if a.Audit != nil {
		rec = a.auditRecorder
	}
	_, err := a.Users.SignInRefused(r.Context(), u.Issuer, u.Subject, reason, rec)
	return err
}

// ssoCLIToken trades the one-time code the CLI received on its localhost
// port, with its PKCE verifier, for a session token.
func (a *API) ssoCLIToken(w http.ResponseWriter, r *http.Request) error {
	s, err := a.sso()
	if err != nil {
		return err
	}
	var in struct {
		Code     string `json:"code"`
		Verifier string `json:"verifier"`
	}
	if err := a.loginThrottle(r); err != nil {
		return err
	}
	if err := httpx.DecodeJSON(w, r, &in, 4096); err != nil {
		return err
	}
	pl, err := s.takeLogin(r.Context(), hashCode(in.Code))
	if err != nil {
		a.loginFailed(r, "", "CLI code unknown, used or expired")
		return err
	}
	if pkceChallenge(in.Verifier) != pl.verifier {
		a.loginFailed(r, "", "CLI code presented with a wrong verifier")
		return errs.E(errs.Unauthenticated, "the verifier does not match this sign-in")
	}
	ttl := s.CLITokenTTL
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	// The user may have been disabled since the sign-in: no session for
	// them. Checked again once the session exists, so that a disable
	// racing this exchange either revokes it or is seen here.
	u, err := a.Users.Get(r.Context(), pl.nonce)
	if err != nil {
		return err
	}
	if !u.DisabledAt.IsZero() {
		a.auditLogin(r, "auth.login_denied", u.Login, "user disabled")
		return errs.E(errs.Forbidden, "user %s is disabled: an admin enables them with gantry user enable", u.Login)
	}
	sess, token, err := a.Users.NewSession(r.Context(), u.ID, "cli", sourceIP(r), ttl)
	if err != nil {
		return err
	}
	if u, err = a.Users.Get(r.Context(), u.ID); err != nil || !u.DisabledAt.IsZero() {
		if rerr := a.Users.RevokeSession(r.Context(), sess.ID); rerr != nil {
			return rerr
		}
		if err != nil {
			return err
		}
		a.auditLogin(r, "auth.login_denied", u.Login, "user disabled")
		return errs.E(errs.Forbidden, "user %s is disabled: an admin enables them with gantry user enable", u.Login)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"token": token, "login": u.Login, "expires_at": sess.ExpiresAt.UTC()})
	return nil
}

// ssoLogout ends the session of the cookie or bearer token.
func (a *API) ssoLogout(w http.ResponseWriter, r *http.Request) error {
	token := httpx.BearerToken(r)
	if token == "" {
		// Signing out with the cookie is a change made with the cookie:
		// from this site only, as every other one.
		if token = a.sessionCookie(r); token != "" {
			if err := sameOrigin(r, a.PublicURL); err != nil {
				return err
			}
		}
	}
	if strings.HasPrefix(token, auth.SessionPrefix) {
		if p, err := a.Users.Authenticate(r.Context(), token); err == nil {
			if err := a.Users.RevokeSession(r.Context(), p.ID); err != nil {
				return err
			}
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	return noContent(w)
}

// sessionCookie returns the session token of a validly signed cookie.
func (a *API) sessionCookie(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil || a.Users == nil {
		return ""
	}
	key, err := a.Users.CookieKey(r.Context())
	if err != nil {
		return ""
	}
	token, ok := auth.VerifyCookie(key, c.Value)
	if !ok {
		return "invalid-cookie"
	}
	return token
}

// loginThrottle refuses sign-in attempts (429) from a source that failed
// too often, like bad tokens.
func (a *API) loginThrottle(r *http.Request) error {
	a.initThrottle.Do(func() { a.throttle = newAuthThrottle() })
	return a.throttle.check(r, time.Now())
}

// loginFailed counts a failed sign-in against its source and audits it.
func (a *API) loginFailed(r *http.Request, login, reason string) {
	a.initThrottle.Do(func() { a.throttle = newAuthThrottle() })
	a.throttle.failed(r, time.Now())
	a.auditLogin(r, "auth.login_failed", login, reason)
}

// auditLogin records a login event (or a failed or denied one); failed
// ones are also what the brute-force throttle counts. A sign-in records
// what it gave the user (granted: IdP groups, admin, login policy grants).
func (a *API) auditLogin(r *http.Request, action, login, reason string, granted ...map[string]any) {
	if a.Audit == nil {
		return
	}
	ev := audit.Event{Actor: audit.Unknown, SourceIP: sourceIP(r), RequestID: httpx.RequestID(r.Context()), Action: action,
		SubjectType: "user", SubjectID: login, Outcome: audit.Success}
	if login != "" {
		ev.Actor = "user::" + login
	}
	if action != "auth.login" {
		ev.Outcome = audit.Denied
		ev.Change, _ = json.Marshal(map[string]string{"reason": reason})
	} else if len(granted) > 0 {
		ev.Change, _ = audit.NewChange(nil, granted[0])
	}
	if _, err := a.Audit.Record(r.Context(), ev); err != nil && a.Log != nil {
		a.Log.WarnContext(r.Context(), "could not audit a login", "err", err)
	}
}
