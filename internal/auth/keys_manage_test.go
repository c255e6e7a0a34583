package auth_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
)

// wantUnauthenticated checks that token is refused with message.
func wantUnauthenticated(t *testing.T, keys *auth.Keys, token, message string) {
	t.Helper()
	_, err := keys.Authenticate(context.Background(), token)
	wantKind(t, err, errs.Unauthenticated)
	if got := errs.Public(err); got != message {
		t.Errorf("message = %q, want %q", got, message)
	}
}

func TestManagedKeys(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		keys := auth.NewKeys(d)
		boot, err := keys.Create(ctx, "admin", "")
		if err != nil {
			t.Fatal(err)
		}

		before := time.Now()
		expiresAt := before.Add(time.Hour)
		ci, ciToken, err := keys.New(ctx, "ci", "api_key::admin", expiresAt)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if !strings.HasPrefix(ci.ID, "key-") || ci.Name != "ci" || ci.CreatedBy != "api_key::admin" ||
			ci.CreatedAt.Before(before.Truncate(time.Microsecond)) || !ci.ExpiresAt.Equal(expiresAt) || ci.Revoked() {
			t.Errorf("New = %+v", ci)
		}
		if !strings.HasPrefix(ciToken, auth.TokenPrefix) || len(ciToken) < 40 {
			t.Errorf("token %q: want the %s prefix and at least 40 characters", ciToken, auth.TokenPrefix)
		}
		forever, foreverToken, err := keys.New(ctx, "forever", "api_key::ci", time.Time{})
		if err != nil || !forever.ExpiresAt.IsZero() {
			t.Fatalf("New without expiry = %+v, %v", forever, err)
		}

		t.Run("only hashes stored", func(t *testing.T) {
			hashes := map[string]string{}
			for _, r := range tokenRows(t, d) {
				hashes[r.name] = r.hash
			}
			if hashes["ci"] != sha(ciToken) || hashes["forever"] != sha(foreverToken) {
				t.Errorf("hashes = %v, want the SHA-256 of each token", hashes)
			}
		})

		t.Run("authenticate", func(t *testing.T) {
			p, err := keys.Authenticate(ctx, ciToken)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, auth.Principal{Kind: "api_key", ID: ci.ID, Name: "ci", Admin: true}) {
				t.Errorf("principal = %+v", p)
			}
			got, err := keys.Get(ctx, ci.ID)
			if err != nil || got.LastUsedAt.IsZero() {
				t.Fatalf("Get = %+v, %v; want last_used_at recorded", got, err)
			}
			// Within a minute a second use is not written.
			if _, err := keys.Authenticate(ctx, ciToken); err != nil {
				t.Fatal(err)
			}
			again, _ := keys.Get(ctx, ci.ID)
			if !again.LastUsedAt.Equal(got.LastUsedAt) {
				t.Errorf("last_used_at moved from %v to %v within a minute", got.LastUsedAt, again.LastUsedAt)
			}
			old := time.Now().Add(-2 * time.Minute).UnixNano()
			if _, err := d.Exec(ctx, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, ci.ID, old); err != nil {
				t.Fatal(err)
			}
			if _, err := keys.Authenticate(ctx, ciToken); err != nil {
				t.Fatal(err)
			}
			if later, _ := keys.Get(ctx, ci.ID); later.LastUsedAt.UnixNano() == old {
				t.Errorf("last_used_at not recorded after a minute")
			}
		})

		t.Run("list and get show no secrets", func(t *testing.T) {
			list, err := keys.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, k := range list {
				names = append(names, k.Name)
				if s := strings.Join([]string{k.ID, k.Name, k.CreatedBy}, " "); strings.Contains(s, auth.TokenPrefix) {
					t.Errorf("key %+v shows a token", k)
				}
			}
			if strings.Join(names, ",") != "admin,ci,forever" {
				t.Errorf("List names = %v, want admin,ci,forever (oldest first)", names)
			}
			if list[0].CreatedBy != "" || list[2].CreatedBy != "api_key::ci" {
				t.Errorf("created_by = %q, %q", list[0].CreatedBy, list[2].CreatedBy)
			}
			_, err = keys.Get(ctx, "key-nope")
			wantKind(t, err, errs.NotFound)
		})

		t.Run("invalid", func(t *testing.T) {
			tests := []struct {
				name, key string
				exp       time.Time
			}{
				{"empty name", "", time.Time{}},
				{"blank name", "   ", time.Time{}},
				{"name too long", strings.Repeat("é", auth.MaxKeyName+1), time.Time{}},
				{"control character", "a\nb", time.Time{}},
				{"expiry in the past", "late", time.Now().Add(-time.Second)},
			}
			for _, tt := range tests {
				_, tok, err := keys.New(ctx, tt.key, "", tt.exp)
				if !errs.Is(err, errs.Invalid) || tok != "" {
					t.Errorf("%s: New = %q, %v; want invalid", tt.name, tok, err)
				}
			}
			if _, _, err := keys.New(ctx, strings.Repeat("é", auth.MaxKeyName), "", time.Time{}); err != nil {
				t.Errorf("a %d-character name refused: %v", auth.MaxKeyName, err)
			}
		})

		t.Run("duplicate names refused", func(t *testing.T) {
			for _, name := range []string{"ci", "admin"} {
				_, _, err := keys.New(ctx, name, "", time.Time{})
				wantKind(t, err, errs.Conflict)
			}
		})

		t.Run("expired", func(t *testing.T) {
			exp, expToken, err := keys.New(ctx, "short-lived", "", time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			past := time.Now().Add(-time.Second).UnixNano()
			if _, err := d.Exec(ctx, `UPDATE api_tokens SET expires_at = $2 WHERE id = $1`, exp.ID, past); err != nil {
				t.Fatal(err)
			}
			wantUnauthenticated(t, keys, expToken, "API key expired")
			if got, _ := keys.Get(ctx, exp.ID); !got.Expired(time.Now()) || got.Active(time.Now()) {
				t.Errorf("Get = %+v, want expired", got)
			}
		})

		t.Run("revoke", func(t *testing.T) {
			r, err := keys.Revoke(ctx, ci.ID)
			if err != nil || !r.Revoked() {
				t.Fatalf("Revoke = %+v, %v", r, err)
			}
			wantUnauthenticated(t, keys, ciToken, "API key revoked")
			got, err := keys.Get(ctx, ci.ID)
			if err != nil || !got.RevokedAt.Equal(r.RevokedAt) {
				t.Errorf("Get after revoke = %+v, %v; want the row kept with revoked_at", got, err)
			}
			// Revoking again changes nothing.
			if again, err := keys.Revoke(ctx, ci.ID); err != nil || !again.RevokedAt.Equal(r.RevokedAt) {
				t.Errorf("second Revoke = %+v, %v", again, err)
			}
			_, err = keys.Revoke(ctx, "key-nope")
			wantKind(t, err, errs.NotFound)
			// The name is free again.
			if _, _, err := keys.New(ctx, "ci", "", time.Time{}); err != nil {
				t.Errorf("New with a revoked key's name: %v", err)
			}
			// The revoked token cannot come back through Create (GANTRY_ADMIN_TOKEN).
			_, err = keys.Create(ctx, "again", ciToken)
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(errs.Public(err), "revoked") {
				t.Errorf("Create with a revoked token: %q, want it to say revoked", errs.Public(err))
			}
			wantUnauthenticated(t, keys, ciToken, "API key revoked")
		})

		t.Run("last active key", func(t *testing.T) {
			list, err := keys.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var last auth.Key
			for _, k := range list {
				if !k.Active(time.Now()) || k.Name == "admin" {
					continue
				}
				if _, err := keys.Revoke(ctx, k.ID); err != nil {
					t.Fatalf("Revoke %s: %v", k.Name, err)
				}
			}
			for _, k := range list {
				if k.Name == "admin" {
					last = k
				}
			}
			_, err = keys.Revoke(ctx, last.ID)
			wantKind(t, err, errs.Conflict)
			if !strings.Contains(errs.Public(err), "last active admin API key") {
				t.Errorf("message %q does not explain", errs.Public(err))
			}
			if _, err := keys.Authenticate(ctx, boot); err != nil {
				t.Errorf("the last key stopped working: %v", err)
			}
			// An expired key may still be revoked: that locks nobody out.
			var expired auth.Key
			for _, k := range list {
				if k.Name == "short-lived" {
					expired = k
				}
			}
			if _, err := keys.Revoke(ctx, expired.ID); err != nil {
				t.Errorf("revoking an expired key: %v", err)
			}
			// With another key the former last one can go.
			_, tok, err := keys.New(ctx, "successor", "api_key::admin", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := keys.Revoke(ctx, last.ID); err != nil {
				t.Errorf("Revoke with a successor: %v", err)
			}
			wantUnauthenticated(t, keys, boot, "API key revoked")
			if _, err := keys.Authenticate(ctx, tok); err != nil {
				t.Errorf("successor: %v", err)
			}
		})
	})
}

// TestManagedKeysConcurrent races the checks that New and Revoke make:
// with several servers on one database, two revocations of the last two
// keys must not both succeed, nor two creations of one name.
func TestManagedKeysConcurrent(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		keys := auth.NewKeys(d)
		race := func(fn func(i int) error) []error {
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() { errs[i] = fn(i) })
			}
			wg.Wait()
			return errs
		}
		for round := range 5 {
			var ids []string
			for i := range 2 {
				k, _, err := keys.New(ctx, fmt.Sprintf("k%d-%d", round, i), "", time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, k.ID)
			}
			if round > 0 {
				// Leave only this round's two keys active.
				list, _ := keys.List(ctx)
				for _, k := range list {
					if !k.Revoked() && !slices.Contains(ids, k.ID) {
						if _, err := keys.Revoke(ctx, k.ID); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			got := race(func(i int) error { _, err := keys.Revoke(ctx, ids[i]); return err })
			if (got[0] == nil) == (got[1] == nil) {
				t.Fatalf("round %d: concurrent revocations of the last two keys = %v; want exactly one refused", round, got)
			}
			got = race(func(int) error {
				_, _, err := keys.New(ctx, fmt.Sprintf("same-%d", round), "", time.Time{})
				return err
			})
			if (got[0] == nil) == (got[1] == nil) {
				t.Fatalf("round %d: concurrent creations of one name = %v; want exactly one refused", round, got)
			}
		}
	})
}
