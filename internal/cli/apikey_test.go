package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// keyServer is the real API with API keys; it returns its URL and the
// bootstrap admin token.
func keyServer(t *testing.T) (string, string) {
	t.Helper()
	ta := newTestAPI(t)
	ta.serve(nil)
	return ta.URL, ta.Token
}

func TestAPIKeyCommands(t *testing.T) {
	isolate(t)
	url, admin := keyServer(t)
	as := func(token string, args ...string) (int, string, string) {
		return runMain(append(args, "--url", url, "--token", token)...)
	}

	// Table output: the token once, with the warning.
	code, out, errOut := as(admin, "api-key", "create", "--name", "ci", "--expires-in", "30d", "--admin")
	wantRun(t, code, out, errOut, 0, "ID:", "key-", "Name:", "ci", "Created by:", "api_key::admin", "Expires:",
		"shown only this once", auth.TokenPrefix)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ciToken := lines[len(lines)-1]
	if !strings.HasPrefix(ciToken, auth.TokenPrefix) {
		t.Fatalf("the last line %q is not the token", ciToken)
	}

	// JSON output: the whole object, token included.
	at := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	code, out, errOut = as(ciToken, "api-key", "create", "--name", "deploy", "--expires-at", at.Format(time.RFC3339), "--admin", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	var deploy apiv1.APIKeyCreated
	if err := json.Unmarshal([]byte(out), &deploy); err != nil || !strings.HasPrefix(deploy.Token, auth.TokenPrefix) ||
		deploy.CreatedBy != "api_key::ci" || deploy.ExpiresAt == nil || !deploy.ExpiresAt.Equal(at) {
		t.Fatalf("create -o json = %v, %+v", err, deploy)
	}

	// List: every key, status, never a token.
	code, out, errOut = as(deploy.Token, "api-key", "list")
	wantRun(t, code, out, errOut, 0, "NAME", "STATUS", "CREATED BY", "admin", "ci", "deploy", "api_key::ci", "active", "never")
	for _, tok := range []string{admin, ciToken, deploy.Token} {
		if strings.Contains(out, tok) {
			t.Errorf("list shows a token:\n%s", out)
		}
	}
	code, out, errOut = as(admin, "api-key", "list", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	var keys []apiv1.APIKey
	if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 3 || strings.Contains(out, "token") {
		t.Fatalf("list -o json = %v, %s", err, out)
	}

	// Revoke: the key stops working at once.
	code, out, errOut = as(admin, "api-key", "revoke", "--id", deploy.ID)
	wantRun(t, code, out, errOut, 0, "Revoked API key", deploy.ID)
	code, _, errOut = as(deploy.Token, "api-key", "list")
	if code != 1 || !strings.Contains(errOut, "API key revoked") {
		t.Errorf("revoked key: exit %d, stderr %q", code, errOut)
	}
	code, out, errOut = as(admin, "api-key", "list")
	wantRun(t, code, out, errOut, 0, "revoked")

	// The last active key cannot be revoked.
	code, out, errOut = as(admin, "api-key", "revoke", "--id", keys[1].ID)
	wantRun(t, code, out, errOut, 0)
	code, _, errOut = as(admin, "api-key", "revoke", "--id", keys[0].ID)
	if code != 1 || !strings.Contains(errOut, "last active admin API key") {
		t.Errorf("revoking the last key: exit %d, stderr %q", code, errOut)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"api-key", "create"},
		{"api-key", "create", "--name", "x", "--expires-in", "1h", "--expires-at", "2099-01-01T00:00:00Z"},
		{"api-key", "create", "--name", "x", "--expires-at", "soon"},
		{"api-key", "revoke"},
	} {
		if code, _, errOut := as(admin, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage)\n%s", args, code, errOut)
		}
	}
	// Messages name the flags as the user typed them, never the hidden
	// alias or the API's field.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--expires", "2d", "--expires-at", "2027-01-01T00:00:00Z"}, "Error: --expires and --expires-at cannot be combined\n"},
		{[]string{"--expires-in", "2d", "--expires-at", "2027-01-01T00:00:00Z"}, "Error: --expires-in and --expires-at cannot be combined\n"},
		{[]string{"--expires", "0d"}, `Error: --expires "0d": want a positive duration such as "720h" or a number of days such as "30d"`},
		{[]string{"--expires", "3 weeks"}, `Error: --expires "3 weeks": want a positive duration`},
		{[]string{"--expires-in", "-1h"}, `Error: --expires-in "-1h": want a positive duration`},
	} {
		code, _, errOut := as(admin, append([]string{"api-key", "create", "--name", "x"}, tc.args...)...)
		if code != 2 || !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	t.Setenv("GANTRY_EXPIRES_AT", "2027-01-01T00:00:00Z")
	if code, _, errOut := as(admin, "api-key", "create", "--name", "x", "--expires", "2d"); code != 2 || !strings.HasPrefix(errOut, "Error: --expires and GANTRY_EXPIRES_AT cannot be combined\n") {
		t.Errorf("--expires with GANTRY_EXPIRES_AT: exit %d, stderr %q", code, errOut)
	}
}

func TestWhoami(t *testing.T) {
	isolate(t)
	url, admin := keyServer(t)
	as := func(token string, args ...string) (int, string, string) {
		return runMain(append(args, "--url", url, "--token", token)...)
	}
	code, out, errOut := as(admin, "whoami", "-o", "json")
	if code != 0 {
		t.Fatalf("whoami: %d %s", code, errOut)
	}
	var me apiv1.Whoami
	if err := json.Unmarshal([]byte(out), &me); err != nil || me.Kind != "api_key" || !strings.HasPrefix(me.Actor, "api_key::") || !me.Admin {
		t.Fatalf("whoami = %+v (%v)\n%s", me, err, out)
	}
	if code, _, errOut := as("gnt_not-a-real-token-000000000", "whoami"); code == 0 || !strings.Contains(errOut, "invalid") {
		t.Fatalf("whoami with a bad token: %d %s", code, errOut)
	}
}
