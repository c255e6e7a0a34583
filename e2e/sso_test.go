package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// opUser is a user of the test OpenID Provider.
type opUser struct {
	Name   string   `json:"name"`
	Email  string   `json:"email"`
	Groups []string `json:"groups"`
}

// startOP starts the real OpenID Provider (the npm package oidc-provider,
// installed in e2e/oidcprovider by scripts/test.sh) on localhost and
// returns its issuer.
func startOP(t *testing.T, clientID, secret, redirect string, users map[string]opUser) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("oidcprovider", "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("the test OpenID Provider is not installed: run `npm ci --prefix e2e/oidcprovider` (scripts/test.sh does): %v", err)
	}
	u, _ := json.Marshal(users)
	cmd := exec.Command("node", "oidcprovider/server.mjs")
	cmd.Env = append(os.Environ(), "OP_PORT=0", "OP_CLIENT_ID="+clientID, "OP_CLIENT_SECRET="+secret,
		"OP_REDIRECT_URI="+redirect, "OP_USERS="+string(u))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if issuer, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- issuer
			}
		}
	}()
	select {
	case issuer := <-lines:
		return issuer
	case <-time.After(30 * time.Second):
		t.Fatalf("the OpenID Provider did not start: %s", stderr.String())
	}
	return ""
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	formRE   = regexp.MustCompile(`(?s)<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>`)
	hiddenRE = regexp.MustCompile(`<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"`)
)

// browser is an HTTP client with cookies that follows redirects, as a
// browser would.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// signIn drives the provider's login and consent pages from start (an
// address that redirects to the provider) as login, and returns the last
// response (Gantry's, or the CLI's on its localhost port).
func signIn(t *testing.T, c *http.Client, start, login string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(start)
	if err != nil {
		t.Fatalf("GET %s: %v", start, err)
	}
	for step := 0; step < 6; step++ {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := formRE.FindStringSubmatch(string(body))
		if m == nil || !strings.Contains(resp.Request.URL.Path, "/interaction/") {
			return resp, string(body)
		}
		action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{}
		for _, h := range hiddenRE.FindAllStringSubmatch(m[2], -1) {
			form.Set(h[1], html.UnescapeString(h[2]))
		}
		if strings.Contains(m[2], `name="login"`) {
			form.Set("login", login)
			form.Set("password", "any")
		}
		if resp, err = c.PostForm(action.String(), form); err != nil {
			t.Fatalf("POST %s: %v", action, err)
		}
	}
	t.Fatalf("the sign-in did not end after 6 forms")
	return nil, ""
}

// TestSSO signs users in through a real OpenID Provider, in a browser-like
// client (session cookie) and with `gantry login --sso`, and checks that
// IdP groups bound to roles give exactly those roles, that the LOGIN policy
// denies, grants roles and makes admins, and that it all is audited.
func TestSSO(t *testing.T) {
	eachBackend(t, testSSO)
}

func testSSO(t *testing.T, b backend) {
	addr := freeAddr(t)
	gantryURL := "http://" + addr
	const clientID, secret = "gantry", "op-client-secret-123"
	issuer := startOP(t, clientID, secret, gantryURL+"/auth/callback", map[string]opUser{
		"alice":   {Name: "Alice", Email: "alice@example.com", Groups: []string{"platform", "devs"}},
		"bob":     {Name: "Bob", Email: "bob@example.com", Groups: []string{"devs"}},
		"carol":   {Name: "Carol", Email: "carol@example.com"},
		"dave":    {Name: "Dave", Email: "dave@example.com", Groups: []string{"admins"}},
		"mallory": {Name: "Mallory", Email: "mallory@example.com", Groups: []string{"platform"}},
	})
	s := StartServer(t, ServerConfig{Listen: addr, DBURL: b.dbURL(t), Args: []string{"--oidc-issuer", issuer, "--oidc-client-id", clientID},
		Env: []string{"GANTRY_OIDC_CLIENT_SECRET=" + secret}})

	// A team space with a stack, and one in root the team may not touch.
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.MustGantry(t, "space", "create", "--id", "team", "--name", "team")
	s.CreateStack(t, "team-app", repo.URL, "--space", "team")
	s.CreateStack(t, "ops", repo.URL)
	var rb apiv1.RoleBinding
	s.MustJSON(t, &rb, "role", "bind", "--role", "space-writer", "--space", "team", "--group", "platform")
	s.MustJSON(t, &rb, "role", "bind", "--role", "space-reader", "--space", "team", "--group", "devs")
	s.createPolicy(t, "login", "LOGIN", `package spacelift

deny if input.session.login == "mallory"

admin if "admins" in input.session.teams

roles["team"]["space-admin"] if input.session.login == "carol"

space_read contains "root" if {
	endswith(input.session.email, "@example.com")
	input.session.login == "carol"
}
`)

	whoami := func(t *testing.T, c *http.Client, token string) (apiv1.Whoami, int) {
		t.Helper()
		req, _ := http.NewRequest("GET", gantryURL+"/api/v1/whoami", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var me apiv1.Whoami
		_ = json.NewDecoder(resp.Body).Decode(&me)
		return me, resp.StatusCode
	}
	// A browser's POST: with its Origin (a cookie-authenticated change
	// without one is refused).
	post := func(t *testing.T, c *http.Client, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", gantryURL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", gantryURL)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("browser session with group roles", func(t *testing.T) {
		c := browser(t)
		resp, body := signIn(t, c, gantryURL+"/auth/login?return_to=/api/v1/whoami", "alice")
		if resp.StatusCode != 200 || resp.Request.URL.Path != "/api/v1/whoami" {
			t.Fatalf("sign-in ended at %s: %d %s", resp.Request.URL, resp.StatusCode, body)
		}
		var cookie *http.Cookie
		for _, ck := range c.Jar.Cookies(resp.Request.URL) {
			if ck.Name == "gantry_session" {
				cookie = ck
			}
		}
		if cookie == nil {
			t.Fatal("no session cookie")
		}
		me, _ := whoami(t, c, "")
		if me.Kind != "user" || me.Actor != "user::alice" || me.Admin || !slices.Equal(me.Roles, []string{"space-reader@team", "space-writer@team"}) ||
			!slices.Equal(me.Groups, []string{"devs", "platform"}) {
			t.Fatalf("whoami = %+v, want user::alice in devs and platform with exactly their roles", me)
		}
		// Writer in team: may trigger there; holds nothing in root's stack.
		if st, body := post(t, c, "/api/v1/stacks/team-app/runs", `{"type":"PROPOSED"}`); st != 201 {
			t.Errorf("trigger in team: %d %s", st, body)
		}
		// The same from another site (no Origin of ours): refused.
		if resp, err := c.Post(gantryURL+"/api/v1/stacks/team-app/runs", "application/json", strings.NewReader(`{"type":"PROPOSED"}`)); err != nil || resp.StatusCode != 403 {
			t.Errorf("cookie POST without our Origin: %v %v", resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
		if st, body := post(t, c, "/api/v1/stacks/ops/runs", `{"type":"PROPOSED"}`); st != 404 || !strings.Contains(body, `stack \"ops\" not found`) {
			t.Errorf("trigger in root as a team writer: %d %s, want 404 as for a stack that does not exist", st, body)
		}
		// A forged cookie is refused.
		u, _ := url.Parse(gantryURL)
		c2 := browser(t)
		c2.Jar.SetCookies(u, []*http.Cookie{{Name: "gantry_session", Value: cookie.Value + "x"}})
		if _, st := whoami(t, c2, ""); st != 401 {
			t.Errorf("forged cookie: %d, want 401", st)
		}
		// Sign out: the cookie stops working.
		if st, _ := post(t, c, "/auth/logout", ""); st != 204 {
			t.Errorf("logout: %d", st)
		}
		c3 := browser(t)
		c3.Jar.SetCookies(u, []*http.Cookie{cookie})
		if _, st := whoami(t, c3, ""); st != 401 {
			t.Errorf("cookie after logout: %d, want 401", st)
		}
	})

	t.Run("cli login", func(t *testing.T) {
		home := t.TempDir()
		cmd := exec.Command(gantryBin, "login", "--sso", "--no-browser", "--url", gantryURL, "-o", "json")
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GANTRY_CONFIG=" + filepath.Join(home, "config.json")}
		stderr, _ := cmd.StderrPipe()
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		var loginURL string
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, gantryURL+"/auth/login?") {
				loginURL = l
				break
			}
		}
		go func() { _, _ = io.Copy(io.Discard, stderr) }()
		if loginURL == "" {
			t.Fatal("gantry login printed no address")
		}
		resp, body := signIn(t, browser(t), loginURL, "bob")
		if !strings.Contains(body, "Signed in") {
			t.Fatalf("the CLI's callback answered %d %s", resp.StatusCode, body)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("gantry login --sso: %v\n%s", err, stdout.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatal("gantry login --sso did not end")
		}
		var cfg struct{ URL, Token string }
		raw, err := os.ReadFile(filepath.Join(home, "config.json"))
		if err != nil || json.Unmarshal(raw, &cfg) != nil || !strings.HasPrefix(cfg.Token, "gss_") {
			t.Fatalf("config = %s, %v", raw, err)
		}
		me, _ := whoami(t, http.DefaultClient, cfg.Token)
		if me.Actor != "user::bob" || !slices.Equal(me.Roles, []string{"space-reader@team"}) {
			t.Fatalf("whoami = %+v, want user::bob with exactly space-reader@team", me)
		}
		// A reader may look but not trigger: 403 naming the action.
		req, _ := http.NewRequest("POST", gantryURL+"/api/v1/stacks/team-app/runs", strings.NewReader(`{"type":"PROPOSED"}`))
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		req.Header.Set("Content-Type", "application/json")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 403 || !strings.Contains(string(rb), "run:trigger") || !strings.Contains(string(rb), "team") {
			t.Errorf("reader triggering: %d %s", r.StatusCode, rb)
		}
		// The CLI uses the saved token.
		wc := exec.Command(gantryBin, "whoami", "-o", "json")
		wc.Env = cmd.Env
		if out, err := wc.CombinedOutput(); err != nil || !strings.Contains(string(out), `"user::bob"`) {
			t.Errorf("gantry whoami after login --sso: %v %s", err, out)
		}
		// A user's own API key acts as the user.
		c := exec.Command(gantryBin, "apikey", "create", "--name", "bob-laptop", "-o", "json")
		c.Env = cmd.Env
		kout, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("apikey create as bob: %v %s", err, kout)
		}
		var key apiv1.APIKeyCreated
		_ = json.Unmarshal(kout, &key)
		if me, _ := whoami(t, http.DefaultClient, key.Token); me.Actor != "api_key::bob-laptop" || !slices.Equal(me.Roles, []string{"space-reader@team"}) {
			t.Errorf("bob's key: %+v, want bob's roles", me)
		}
	})

	t.Run("login policy", func(t *testing.T) {
		// Denied: 403, no session.
		c := browser(t)
		resp, body := signIn(t, c, gantryURL+"/auth/login", "mallory")
		if resp.StatusCode != 403 || !strings.Contains(body, "denied by the login policy") {
			t.Errorf("mallory: %d %s", resp.StatusCode, body)
		}
		if _, st := whoami(t, c, ""); st != 401 {
			t.Errorf("mallory has a session: %d", st)
		}
		// roles[space][role]: carol is a space admin of team.
		c = browser(t)
		signIn(t, c, gantryURL+"/auth/login", "carol")
		me, _ := whoami(t, c, "")
		if !slices.Equal(me.Roles, []string{"space-admin@team", "space-reader@root"}) || me.Admin {
			t.Errorf("carol = %+v, want space-admin@team and space-reader@root from the login policy", me)
		}
		if st, body := post(t, c, "/api/v1/stacks", fmt.Sprintf(`{"id":"carols","space":"team","repository":%q}`, repo.URL)); st != 201 {
			t.Errorf("carol creating a stack in team: %d %s", st, body)
		}
		// admin: dave may do everything.
		c = browser(t)
		signIn(t, c, gantryURL+"/auth/login", "dave")
		if me, _ := whoami(t, c, ""); !me.Admin {
			t.Errorf("dave = %+v, want admin", me)
		}
		if st, body := post(t, c, "/api/v1/roles", `{"id":"auditor","actions":["audit:read"]}`); st != 201 {
			t.Errorf("dave creating a role: %d %s", st, body)
		}
		// An admin signed in with SSO makes an automation key for CI: owned
		// by nobody, it holds only what is bound to it (not dave's admin).
		st, body := post(t, c, "/api/v1/api-keys", `{"name":"ci-from-sso","automation":true}`)
		if st != 201 {
			t.Fatalf("dave's automation key: %d %s", st, body)
		}
		var ci apiv1.APIKeyCreated
		_ = json.Unmarshal([]byte(body), &ci)
		if me, st := whoami(t, http.DefaultClient, ci.Token); st != 200 || me.Actor != "api_key::ci-from-sso" || me.Admin || len(me.Roles) != 0 {
			t.Errorf("the automation key: %d %+v, want no roles until bound", st, me)
		}
		s.MustGantry(t, "role", "bind", "--role", "space-reader", "--space", "team", "--apikey", "ci-from-sso")
		if me, _ := whoami(t, http.DefaultClient, ci.Token); !slices.Equal(me.Roles, []string{"space-reader@team"}) {
			t.Errorf("the automation key after binding: %+v", me)
		}
		var keys []apiv1.APIKey
		s.getJSON(t, "/api/v1/api-keys", &struct{ Items *[]apiv1.APIKey }{&keys})
		for _, k := range keys {
			if k.Name == "ci-from-sso" && (k.Owner != "" || k.CreatedBy != "user::dave") {
				t.Errorf("the automation key is listed as %+v, want no owner, created by user::dave", k)
			}
		}
		// carol (a space admin, without apikey:manage) may not.
		c2 := browser(t)
		signIn(t, c2, gantryURL+"/auth/login", "carol")
		if st, body := post(t, c2, "/api/v1/api-keys", `{"name":"carols-ci","automation":true}`); st != 403 || !strings.Contains(body, "apikey:manage") {
			t.Errorf("carol's automation key: %d %s", st, body)
		}
	})

	t.Run("offboarding", func(t *testing.T) {
		// carol signs in, makes a key of her own; disabled, both stop,
		// and she cannot sign in again until enabled.
		c := browser(t)
		signIn(t, c, gantryURL+"/auth/login", "carol")
		st, body := post(t, c, "/api/v1/api-keys", `{"name":"carol-laptop"}`)
		if st != 201 {
			t.Fatalf("carol's key: %d %s", st, body)
		}
		var key apiv1.APIKeyCreated
		_ = json.Unmarshal([]byte(body), &key)
		s.MustGantry(t, "user", "disable", "--id", "carol")
		if _, st := whoami(t, c, ""); st != 401 {
			t.Errorf("carol's session after disable: %d", st)
		}
		if _, st := whoami(t, http.DefaultClient, key.Token); st != 401 {
			t.Errorf("carol's key after disable: %d", st)
		}
		resp, body2 := signIn(t, browser(t), gantryURL+"/auth/login", "carol")
		if resp.StatusCode != 403 || !strings.Contains(body2, "disabled") {
			t.Errorf("disabled carol signing in: %d %s", resp.StatusCode, body2)
		}
		s.MustGantry(t, "user", "enable", "--id", "carol")
		c = browser(t)
		signIn(t, c, gantryURL+"/auth/login", "carol")
		if me, st := whoami(t, c, ""); st != 200 || me.Actor != "user::carol" {
			t.Errorf("enabled carol: %d %+v", st, me)
		}
	})

	t.Run("users and audit", func(t *testing.T) {
		var users []apiv1.User
		s.getJSON(t, "/api/v1/users", &struct{ Items *[]apiv1.User }{&users})
		var logins []string
		for _, u := range users {
			logins = append(logins, u.Login)
		}
		slices.Sort(logins)
		if !slices.Equal(logins, []string{"alice", "bob", "carol", "dave"}) {
			t.Errorf("users = %v (mallory was denied: no user)", logins)
		}
		var evs []apiv1.AuditEvent
		s.getJSON(t, "/api/v1/audit/events?action=auth.login_denied", &struct{ Items *[]apiv1.AuditEvent }{&evs})
		if len(evs) != 2 || evs[1].Actor != "user::mallory" || evs[0].Actor != "user::carol" || evs[1].Outcome != "denied" {
			t.Errorf("denied login events = %+v (mallory by the policy, then disabled carol)", evs)
		}
		s.getJSON(t, "/api/v1/audit/events?action=auth.login&actor=user::alice", &struct{ Items *[]apiv1.AuditEvent }{&evs})
		if len(evs) != 1 || evs[0].SourceIP != "127.0.0.1" {
			t.Errorf("alice's login events = %+v", evs)
		}
		// Her trigger is audited with her roles.
		s.getJSON(t, "/api/v1/audit/events?action=run.trigger", &struct{ Items *[]apiv1.AuditEvent }{&evs})
		evs = slices.DeleteFunc(evs, func(e apiv1.AuditEvent) bool { return e.Actor != "user::alice" || e.Outcome != "success" })
		if len(evs) != 1 || !slices.Contains(evs[0].Roles, "space-writer@team") {
			t.Errorf("alice's trigger events = %+v", evs)
		}
		if log := s.Log(); strings.Contains(log, secret) || strings.Contains(log, "gss_") {
			t.Errorf("the server log holds the client secret or a session token")
		}
	})
}
