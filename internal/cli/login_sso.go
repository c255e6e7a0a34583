package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/httpx"
)

// ssoLogin signs in through the server's single sign-on: the browser goes
// to the OpenID Provider and back to the server, which sends it to this
// process on a localhost port with a one-time code; the code and a PKCE
// verifier only this process holds buy a session token.
func (a *app) ssoLogin(ctx context.Context, server string, openBrowser bool, timeout time.Duration) (string, error) {
	if err := ssoAvailable(ctx, server); err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listening on localhost for the sign-in callback: %w", err)
	}
	defer ln.Close()
	verifier, state := randomString(48), randomString(24)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"cli_port":      {fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)},
		"cli_state":     {state},
		"cli_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
	}
	loginURL := strings.TrimSuffix(server, "/") + "/auth/login?" + q.Encode()

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := httpx.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Query().Get("state") != state {
			http.Error(w, "This sign-in is not the one gantry login started.", http.StatusBadRequest)
			return
		}
		code := r.URL.Query().Get("code")
		if code == "" {
			http.Error(w, "No code.", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!doctype html><title>Gantry</title><p>Signed in. You can close this tab and go back to the terminal.</p>\n")
		// Sent before the code is handed on: this process may be done
		// (and close the server) before the handler returns.
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case got <- result{code: code}:
		default:
		}
	}))
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// Let the browser's answer finish; then close.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()

	fmt.Fprintf(a.stderr, "Open this address in a browser to sign in:\n\n  %s\n\nWaiting for the sign-in to finish...\n", loginURL)
	if openBrowser {
		_ = exec.Command("xdg-open", loginURL).Start()
	}
	var res result
	select {
	case res = <-got:
	case <-time.After(timeout):
		return "", fmt.Errorf("the sign-in did not finish within %s", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	body, _ := json.Marshal(map[string]string{"code": res.code, "verifier": verifier})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(server, "/")+"/auth/cli/token", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("trading the sign-in code for a token: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Token == "" {
		if out.Error.Message != "" {
			return "", errors.New("sign-in refused: " + out.Error.Message)
		}
		return "", fmt.Errorf("sign-in refused: %s", resp.Status)
	}
	return out.Token, nil
}

// ssoAvailable asks the server whether it can start a sign-in (GET
// /auth/sso) before a browser is sent there and the CLI waits for it: a
// server without single sign-on, or whose provider cannot be reached, is
// told at once. A server too old to know the route (404) is tried anyway.
func ssoAvailable(ctx context.Context, server string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(server, "/")+"/auth/sso", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s whether it offers single sign-on: %w", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var out struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out) == nil && out.Error.Message != "" {
		return errors.New("cannot sign in with single sign-on: " + out.Error.Message)
	}
	return fmt.Errorf("cannot sign in with single sign-on: %s answers %s", server, resp.Status)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// checkLogin asks the server who the token is.
func checkLogin(ctx context.Context, server, token string) (string, error) {
	c := client.New(server, token, client.WithUserAgent("gantry-cli/"+version()))
	me, err := c.Whoami(ctx)
	if err != nil {
		return "", err
	}
	return me.Actor, nil
}
