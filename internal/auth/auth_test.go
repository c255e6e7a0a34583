package auth_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func wantKind(t *testing.T, err error, k errs.Kind) {
	t.Helper()
	if !errs.Is(err, k) {
		t.Fatalf("error = %v (kind %s), want kind %s", err, errs.KindOf(err), k)
	}
}

type tokenRow struct {
	id, name, hash string
	created, used  int64
}

func tokenRows(t *testing.T, d *db.DB) []tokenRow {
	t.Helper()
	rows, err := d.Query(context.Background(), `SELECT id, name, token_hash, created_at, last_used_at FROM api_tokens ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []tokenRow
	for rows.Next() {
		var r tokenRow
		if err := rows.Scan(&r.id, &r.name, &r.hash, &r.created, &r.used); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		keys := auth.NewKeys(d)

		if n, err := keys.Count(ctx); err != nil || n != 0 {
			t.Fatalf("Count on an empty store = %d, %v", n, err)
		}
		generated, err := keys.Create(ctx, "admin", "")
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		if !strings.HasPrefix(generated, auth.TokenPrefix) || len(generated) < 40 {
			t.Errorf("generated token %q: want the %s prefix and at least 40 characters", generated, auth.TokenPrefix)
		}
		preset := "my-preset-admin-token-0001"
		if _, err := keys.Create(ctx, "ci", preset); err != nil {
			t.Fatalf("Create with a preset token: %v", err)
		}
		if n, err := keys.Count(ctx); err != nil || n != 2 {
			t.Fatalf("Count = %d, %v; want 2", n, err)
		}

		t.Run("only the hash is stored", func(t *testing.T) {
			rows := tokenRows(t, d)
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2", len(rows))
			}
			hashes := map[string]string{}
			for _, r := range rows {
				hashes[r.name] = r.hash
				if strings.Contains(r.hash, generated) || strings.Contains(r.hash, preset) || r.hash == generated || r.hash == preset {
					t.Errorf("row %s stores the token", r.name)
				}
				if !strings.HasPrefix(r.id, "key-") || r.created == 0 {
					t.Errorf("row %+v: want a key- id and a creation time", r)
				}
			}
			if hashes["admin"] != sha(generated) || hashes["ci"] != sha(preset) {
				t.Errorf("hashes = %v, want the SHA-256 of each token", hashes)
			}
			var n int
			if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1 OR name = $1`, generated).Scan(&n); err != nil || n != 0 {
				t.Errorf("the plain token is findable in the table (%d, %v)", n, err)
			}
		})

		t.Run("authenticate", func(t *testing.T) {
			for name, tok := range map[string]string{"admin": generated, "ci": preset} {
				p, err := keys.Authenticate(ctx, tok)
				if err != nil {
					t.Fatalf("Authenticate(%s): %v", name, err)
				}
				if p.Kind != "api_key" || p.Name != name || !p.Admin || !strings.HasPrefix(p.ID, "key-") {
					t.Errorf("principal = %+v, want admin api_key %s", p, name)
				}
				if p.String() != "api_key::"+name {
					t.Errorf("String() = %q", p.String())
				}
			}
			for _, r := range tokenRows(t, d) {
				if r.used == 0 {
					t.Errorf("last_used_at of %s not recorded", r.name)
				}
			}
		})

		t.Run("refused", func(t *testing.T) {
			tests := []struct{ name, token string }{
				{"empty", ""},
				{"short", "abc"},
				{"unknown with prefix", auth.TokenPrefix + "doesnotexist000000000000000000"},
				{"unknown long", "an-unknown-but-long-token-value"},
				{"prefix only", auth.TokenPrefix},
				{"generated with a changed letter", changeLast(generated)},
				{"the stored hash itself", sha(generated)},
			}
			for _, tt := range tests {
				_, err := keys.Authenticate(ctx, tt.token)
				if !errs.Is(err, errs.Unauthenticated) {
					t.Errorf("Authenticate(%s) = %v, want unauthenticated", tt.name, err)
				}
			}
		})

		t.Run("short tokens refused at creation", func(t *testing.T) {
			for _, tok := range []string{"a", "fifteen-chars!!", auth.TokenPrefix + "short"} {
				_, err := keys.Create(ctx, "x", tok)
				wantKind(t, err, errs.Invalid)
			}
			if n, _ := keys.Count(ctx); n != 2 {
				t.Errorf("Count = %d after refused creations, want 2", n)
			}
		})

		t.Run("duplicate token refused", func(t *testing.T) {
			_, err := keys.Create(ctx, "again", preset)
			wantKind(t, err, errs.Conflict)
		})
	})
}

func TestAuthorize(t *testing.T) {
	if err := auth.Authorize(auth.Principal{Kind: "api_key", Name: "a", Admin: true}, auth.StackDelete, "root"); err != nil {
		t.Errorf("admin refused: %v", err)
	}
	// A principal holding nothing in the space learns nothing of it.
	err := auth.Authorize(auth.Principal{Kind: "run", ID: "run-1"}, auth.StackDelete, "team")
	wantKind(t, err, errs.Forbidden)
	if !errors.Is(err, auth.ErrHidden) {
		t.Errorf("err = %v, want ErrHidden", err)
	}
	// A 403 naming the missing action.
	err = auth.Authorize(auth.Principal{Kind: "api_key", Name: "ci"}, auth.AuditRead, "root")
	wantKind(t, err, errs.Forbidden)
	if !strings.Contains(errs.Public(err), "api_key::ci") || !strings.Contains(errs.Public(err), "audit:read") {
		t.Errorf("message %q does not name the principal and the action", errs.Public(err))
	}
}

func TestPrincipalContext(t *testing.T) {
	if _, ok := auth.From(context.Background()); ok {
		t.Error("From(empty context) found a principal")
	}
	p := auth.Principal{Kind: "run", ID: "run-9", StackID: "s"}
	got, ok := auth.From(auth.WithPrincipal(context.Background(), p))
	if !ok || !reflect.DeepEqual(got, p) {
		t.Errorf("From = %+v, %v; want %+v", got, ok, p)
	}
	if p.String() != "run::run-9" {
		t.Errorf("String() = %q", p.String())
	}
}

// changeLast returns token with its last character replaced by another.
func changeLast(token string) string {
	c := "x"
	if strings.HasSuffix(token, c) {
		c = "y"
	}
	return token[:len(token)-1] + c
}
