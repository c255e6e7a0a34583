package runtoken_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/secrets"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// issuer serves s's discovery document and JWKS over real HTTP, as the
// server does, at the URL it returns.
func issuer(t *testing.T, d *db.DB, alg string) (*runtoken.Service, string) {
	t.Helper()
	var s *runtoken.Service
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.Discovery())
	})
	mux.HandleFunc("GET /.well-known/jwks", func(w http.ResponseWriter, r *http.Request) {
		b, err := s.JWKS(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	box, err := secrets.NewBox(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	s, err = runtoken.New(d, box, runtoken.Config{Issuer: srv.URL, Alg: alg, Lifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, srv.URL
}

// TestTokensVerifyWithGoOIDC: tokens verify with an independent library
// (coreos/go-oidc: discovery, JWKS over HTTP, signature, issuer, audience,
// expiry) and carry Spacelift's claims.
func TestTokensVerifyWithGoOIDC(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		for _, alg := range []string{runtoken.RS256, runtoken.ES256} {
			t.Run(alg, func(t *testing.T) {
				if alg == runtoken.ES256 {
					if _, err := d.Exec(context.Background(), `DELETE FROM oidc_keys`); err != nil {
						t.Fatal(err)
					}
				}
				ctx := context.Background()
				s, url := issuer(t, d, alg)
				run := runtoken.Run{SpaceID: "team", SpacePath: "root/team", StackID: "net", RunID: "run-1", RunType: "TRACKED", Scope: runtoken.Write}
				tok, exp, err := s.Issue(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Until(exp); d < 9*time.Minute || d > 10*time.Minute {
					t.Errorf("expires in %s, want the 10m lifetime", d)
				}
				provider, err := oidc.NewProvider(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				host := strings.TrimPrefix(url, "http://")
				host = host[:strings.IndexByte(host, ':')]
				v := provider.Verifier(&oidc.Config{ClientID: host, SupportedSigningAlgs: []string{alg}})
				idt, err := v.Verify(ctx, tok)
				if err != nil {
					t.Fatalf("go-oidc: %v", err)
				}
				var c struct {
					SpaceID, SpacePath, StackID, RunID, RunType, Scope, CallerType, CallerID string
					Jti                                                                      string `json:"jti"`
				}
				if err := idt.Claims(&c); err != nil {
					t.Fatal(err)
				}
				if idt.Subject != "space:team:stack:net:run_type:TRACKED:scope:write" || c.SpacePath != "root/team" || c.RunID != "run-1" ||
					c.Scope != "write" || c.CallerType != "stack" || c.CallerID != "net" || c.Jti == "" {
					t.Errorf("subject %q, claims %+v", idt.Subject, c)
				}
				// Another audience is refused; so is a tampered token.
				if _, err := provider.Verifier(&oidc.Config{ClientID: "sts.amazonaws.com", SupportedSigningAlgs: []string{alg}}).Verify(ctx, tok); err == nil {
					t.Error("a token for the default audience verified for another")
				}
				parts := strings.Split(tok, ".")
				forged := parts[0] + "." + strings.Replace(parts[1], parts[1][5:9], "AAAA", 1) + "." + parts[2]
				if _, err := v.Verify(ctx, forged); err == nil {
					t.Error("a tampered token verified")
				}
				// A configured audience.
				run.Audience = "sts.amazonaws.com"
				tok2, _, err := s.Issue(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := provider.Verifier(&oidc.Config{ClientID: "sts.amazonaws.com", SupportedSigningAlgs: []string{alg}}).Verify(ctx, tok2); err != nil {
					t.Errorf("custom audience: %v", err)
				}

				// Rotation: new tokens are signed by the new key; tokens of
				// the old one verify while it is published (its grace).
				kid, err := s.AddKey(ctx, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				tok3, _, err := s.Issue(ctx, run)
				if err != nil {
					t.Fatal(err)
				}
				fresh, err := oidc.NewProvider(ctx, url) // refetches the JWKS
				if err != nil {
					t.Fatal(err)
				}
				fv := fresh.Verifier(&oidc.Config{ClientID: "sts.amazonaws.com", SupportedSigningAlgs: []string{alg}})
				for name, tk := range map[string]string{"old key": tok2, "new key": tok3} {
					if _, err := fv.Verify(ctx, tk); err != nil {
						t.Errorf("%s after rotation: %v", name, err)
					}
				}
				if !strings.Contains(tokenHeader(t, tok3), kid) {
					t.Errorf("new token not signed by the new key %s", kid)
				}
				// After the grace the old key leaves the JWKS.
				if _, err := d.Exec(ctx, `UPDATE oidc_keys SET retired_at = 1, not_after = 1 WHERE retired_at <> 0`); err != nil {
					t.Fatal(err)
				}
				jwks, err := s.JWKS(ctx)
				if err != nil || strings.Count(string(jwks), `"kid"`) != 1 || !strings.Contains(string(jwks), kid) {
					t.Errorf("JWKS after the grace: %s %v", jwks, err)
				}
				// The private keys are stored sealed.
				var sealed string
				if err := d.QueryRow(ctx, `SELECT private_sealed FROM oidc_keys WHERE kid = $1`, kid).Scan(&sealed); err != nil || strings.Contains(sealed, "PRIVATE") {
					t.Errorf("private key stored as %q (%v)", sealed[:20], err)
				}
			})
		}
	})
}

func tokenHeader(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64Decode(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// A pending token's issuance is recorded (its claims, never the token)
// before it is signed, and the signed token carries exactly those claims.
func TestPendRecordSign(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, url := issuer(t, d, runtoken.RS256)
		var recorded []map[string]any
		s.Audit = func(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error {
			if action != "oidc_token.issue" || subjectID != "run-1" {
				t.Errorf("recorded %s of %s %s", action, subjectType, subjectID)
			}
			recorded = append(recorded, after.(map[string]any))
			return nil
		}
		p, err := s.Pend(ctx, runtoken.Run{SpaceID: "team", SpacePath: "root/team", StackID: "net", RunID: "run-1", RunType: "TRACKED", Scope: runtoken.Write})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Record(ctx, p); err != nil {
			t.Fatal(err)
		}
		signed, err := p.Sign()
		if err != nil {
			t.Fatal(err)
		}
		tok, exp := signed.Token()
		if len(recorded) != 1 || strings.Contains(fmt.Sprint(recorded[0]), tok) {
			t.Fatalf("recorded %v", recorded)
		}
		provider, err := oidc.NewProvider(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		idt, err := provider.Verifier(&oidc.Config{SkipClientIDCheck: true}).Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Jti string `json:"jti"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if c.Jti != recorded[0]["jti"] || !idt.Expiry.Equal(exp) || idt.Subject != recorded[0]["sub"] {
			t.Errorf("token jti %s, expiry %v, sub %s; recorded %v (expiry %v)", c.Jti, idt.Expiry, idt.Subject, recorded[0], exp)
		}
		if _, err := (runtoken.Pending{}).Sign(); err == nil {
			t.Error("signed an empty pending token")
		}
	})
}

// A subject template may use only the placeholders, and must name the
// stack: without {stackId} (or with it mis-cased, which left it as text)
// every stack's token had the same sub, so a cloud trust written for one
// stack trusted them all.
func TestSubjectTemplateChecked(t *testing.T) {
	for _, tmpl := range []string{
		runtoken.DefaultSubject,
		"{stackId}",
		"{spacePath}/{stackId}:{runType}:{scope}:{runId}:{spaceId}",
	} {
		if _, err := runtoken.New(nil, nil, runtoken.Config{Issuer: "https://gantry.example", Subject: tmpl}); err != nil {
			t.Errorf("New with %q: %v", tmpl, err)
		}
	}
	for tmpl, want := range map[string]string{
		"x:{foo}:{stackid}":           "unknown placeholder {foo}",
		"x:{stackid}":                 "unknown placeholder {stackid}",
		"space:{spaceId}:run:{runId}": "must contain {stackId}",
		"stack:{stackId":              "unmatched brace",
		"stack:{stackId}}":            "unmatched brace",
		"stack:}{stackId}":            "unmatched brace",
		"stack:{{stackId}}":           "unknown placeholder {{stackId}",
	} {
		_, err := runtoken.New(nil, nil, runtoken.Config{Issuer: "https://gantry.example", Subject: tmpl})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New with %q: %v, want %q", tmpl, err, want)
		}
	}
}
