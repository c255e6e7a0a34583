package server_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// A server restarted with another public URL issues the runs' tokens with
// another issuer and audience: clouds that trust the old ones reject them.
// The server records both and warns, naming old and new values and the
// flags that keep the old ones; a restart that changes nothing is quiet,
// and so is the first start.
func TestServerWarnsWhenTokenIssuerChanges(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string) {
		dir := t.TempDir()
		startAt := func(public string, extra ...string) (logs, issuer string) {
			t.Helper()
			cfg := encConfig(dir, url, "")
			cfg.PublicURL = public
			if len(extra) == 2 {
				cfg.TokenIssuer, cfg.TokenAudience = extra[0], extra[1]
			}
			s, err := start(t, cfg)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			_, body := s.get(t, "/.well-known/openid-configuration", "")
			var doc struct{ Issuer string }
			if err := json.Unmarshal([]byte(body), &doc); err != nil {
				t.Fatalf("discovery document %q: %v", body, err)
			}
			s.stop(t)
			return s.logs.String(), doc.Issuer
		}
		const warning = "the runs' OIDC token issuer or audience changed"
		if logs, _ := startAt("http://127.0.0.1:18131"); strings.Contains(logs, warning) {
			t.Errorf("first start warned:\n%s", logs)
		}
		if logs, _ := startAt("http://127.0.0.1:18131"); strings.Contains(logs, warning) {
			t.Errorf("a restart with the same public URL warned:\n%s", logs)
		}
		logs, issuer := startAt("http://localhost:18133")
		if issuer != "http://localhost:18133" {
			t.Errorf("issuer after the move: %q", issuer)
		}
		line := ""
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, warning) {
				line = l
			}
		}
		for _, want := range []string{"level=WARN", "old_issuer=http://127.0.0.1:18131", "new_issuer=http://localhost:18133",
			"old_audience=127.0.0.1", "new_audience=localhost", "--token-issuer", "--token-audience", "trust"} {
			if !strings.Contains(line, want) {
				t.Errorf("the warning lacks %q: %q\nlogs:\n%s", want, line, logs)
			}
		}
		// Pinned to the old values, the moved server issues what clouds
		// trust, and says nothing.
		logs, issuer = startAt("http://localhost:18133", "http://127.0.0.1:18131", "127.0.0.1")
		if issuer != "http://127.0.0.1:18131" {
			t.Errorf("pinned issuer: %q", issuer)
		}
		if !strings.Contains(logs, warning) {
			// It went back from localhost to the pinned old values: a change.
			t.Errorf("going back to the old issuer did not warn:\n%s", logs)
		}
		if logs, _ = startAt("http://localhost:18133", "http://127.0.0.1:18131", "127.0.0.1"); strings.Contains(logs, warning) {
			t.Errorf("a pinned restart warned:\n%s", logs)
		}
	})
}
