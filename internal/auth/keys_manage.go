package auth

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// MaxKeyName bounds the length of an API key's name, in characters.
const MaxKeyName = 255

// Key is an API key as stored: never its token, which only its creator saw.
// Zero times mean never.
type Key struct {
	ID         string
	Name       string
	CreatedBy  string // the principal that made it (Principal.String), "" for keys the server made at start
	CreatedAt  time.Time
	LastUsedAt time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time
	Admin      bool   // may do everything
	OwnerUser  string // a signed-in user's own key: acts as that user
}

// view is what the audit trail shows of a key (never a token: keys hold none).
func (k Key) view() map[string]any {
	v := map[string]any{"name": k.Name, "admin": k.Admin, "owner_user": k.OwnerUser, "created_by": k.CreatedBy}
	if !k.ExpiresAt.IsZero() {
		v["expires_at"] = k.ExpiresAt.UTC()
	}
	if !k.RevokedAt.IsZero() {
		v["revoked_at"] = k.RevokedAt.UTC()
	}
	return v
}

// Revoked reports whether the key was revoked.
func (k Key) Revoked() bool { return !k.RevokedAt.IsZero() }

// Expired reports whether the key has expired at now.
func (k Key) Expired(now time.Time) bool { return !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) }

// Active reports whether the key authenticates at now.
func (k Key) Active(now time.Time) bool { return !k.Revoked() && !k.Expired(now) }

// keyColumns are the columns scanKey reads, in order.
const keyColumns = `id, name, created_by, created_at, last_used_at, expires_at, revoked_at, admin, owner_user`

func scanKey(s db.Scanner) (Key, error) {
	var k Key
	var created, used, expires, revoked int64
	if err := s.Scan(&k.ID, &k.Name, &k.CreatedBy, &created, &used, &expires, &revoked, &k.Admin, &k.OwnerUser); err != nil {
		return Key{}, err
	}
	k.CreatedAt, k.LastUsedAt = db.FromNanos(created), db.FromNanos(used)
	k.ExpiresAt, k.RevokedAt = db.FromNanos(expires), db.FromNanos(revoked)
	return k, nil
}

// validKeyName checks a key's name: 1 to MaxKeyName characters, not blank,
// no control characters (names are printed in tables and logs).
func validKeyName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || strings.TrimSpace(name) == "" {
		return errs.E(errs.Invalid, "an API key needs a name")
	}
	if n > MaxKeyName {
		return errs.E(errs.Invalid, "API key names have at most %d characters", MaxKeyName)
	}
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return errs.E(errs.Invalid, "API key names may not hold control characters")
	}
	return nil
}

// lockKeys serializes the transactions that change the set of usable keys
// (New, Revoke), so that the name check and the last-key check hold with
// several servers on one PostgreSQL database: the upsert locks one settings
// row until the transaction ends. SQLite's single writer serializes anyway.
func (k *Keys) lockKeys(ctx context.Context) error {
	_, err := k.db.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('api_keys_lock', '')
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`)
	return err
}

// New creates an admin API key named name for createdBy (see NewKey).
func (k *Keys) New(ctx context.Context, name, createdBy string, expiresAt time.Time) (Key, string, error) {
	return k.NewKey(ctx, KeySpec{Name: name, CreatedBy: createdBy, ExpiresAt: expiresAt, Admin: true})
}

// KeySpec describes a key to create.
type KeySpec struct {
	Name      string
	CreatedBy string    // the creating principal (Principal.String)
	ExpiresAt time.Time // zero: never
	Admin     bool      // may do everything; otherwise only what its bindings grant
	OwnerUser string    // a signed-in user's own key: acts as that user
}

// NewKey creates an API key. It returns the key and its token: the token
// is shown this once, only its hash is kept. (maxExpiry: times are stored
// as Unix nanoseconds, which end in 2262.) Names are unique among the keys
// not revoked.
func (k *Keys) NewKey(ctx context.Context, spec KeySpec) (Key, string, error) {
	name, createdBy, expiresAt := spec.Name, spec.CreatedBy, spec.ExpiresAt
	if err := validKeyName(name); err != nil {
		return Key{}, "", err
	}
	now := time.Now()
	if !expiresAt.IsZero() && !expiresAt.After(now) {
		return Key{}, "", errs.E(errs.Invalid, "the expiry of an API key must be in the future")
	}
	if expiresAt.After(maxExpiry) {
		return Key{}, "", errs.E(errs.Invalid, "the expiry of an API key must be before %s (omit it for a key that never expires)", maxExpiry.Format("2006-01-02"))
	}
	key := Key{ID: id.New("key"), Name: name, CreatedBy: createdBy, CreatedAt: db.FromNanos(now.UnixNano()),
		ExpiresAt: db.FromNanos(db.Nanos(expiresAt)), Admin: spec.Admin, OwnerUser: spec.OwnerUser}
	token := TokenPrefix + id.Secret(30)
	err := k.db.Tx(ctx, func(ctx context.Context) error {
		if spec.OwnerUser != "" {
			// A user's own key: not for a user disabled meanwhile
			// (Users.SetDisabled revokes their keys).
			if err := userEnabled(ctx, k.db, spec.OwnerUser); err != nil {
				return err
			}
		}
		if err := k.lockKeys(ctx); err != nil {
			return err
		}
		var n int
		if err := k.db.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE name = $1 AND revoked_at = 0`, name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errs.E(errs.Conflict, "an API key named %q already exists (names are unique among keys not revoked)", name)
		}
		_, err := k.db.Exec(ctx, `INSERT INTO api_tokens (id, name, token_hash, created_at, created_by, expires_at, admin, owner_user)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			key.ID, key.Name, hash(token), db.Nanos(key.CreatedAt), key.CreatedBy, db.Nanos(key.ExpiresAt), key.Admin, key.OwnerUser)
		if err != nil {
			return err
		}
		return k.Audit.record(ctx, "api_key.create", "api_key", key.ID, rootSpace, nil, key.view())
	})
	if err != nil {
		return Key{}, "", err
	}
	return key, token, nil
}

// List returns every API key, revoked ones too, oldest first. Tokens are
// never stored, so never listed.
func (k *Keys) List(ctx context.Context) ([]Key, error) {
	return db.Collect(ctx, k.db, scanKey, `SELECT `+keyColumns+` FROM api_tokens ORDER BY created_at, id`)
}

// Get returns one API key.
func (k *Keys) Get(ctx context.Context, keyID string) (Key, error) {
	key, err := scanKey(k.db.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_tokens WHERE id = $1`, keyID))
	if errors.Is(err, sql.ErrNoRows) {
		return Key{}, errs.E(errs.NotFound, "no API key %q", keyID)
	}
	return key, err
}

// Revoke revokes an API key: it stops authenticating at once, and its row
// stays as history. Revoking a revoked key changes nothing. The last active
// admin key (not revoked, not expired) cannot be revoked: nobody might be
// able to administer the server afterwards.
func (k *Keys) Revoke(ctx context.Context, keyID string) (Key, error) {
	var key Key
	err := k.db.Tx(ctx, func(ctx context.Context) error {
		if err := k.lockKeys(ctx); err != nil {
			return err
		}
		var err error
		if key, err = k.Get(ctx, keyID); err != nil || key.Revoked() {
			return err
		}
		now := time.Now()
		if key.Active(now) && key.Admin {
			var others int
			err := k.db.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens
				WHERE id <> $1 AND admin AND revoked_at = 0 AND (expires_at = 0 OR expires_at > $2)`, keyID, now.UnixNano()).Scan(&others)
			if err != nil {
				return err
			}
			if others == 0 {
				return errs.E(errs.Conflict, "%q is the last active admin API key: revoking it could lock everyone out of the server; create another admin key first", key.Name)
			}
		}
		before := key.view()
		key.RevokedAt = db.FromNanos(now.UnixNano())
		if _, err = k.db.Exec(ctx, `UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0`, keyID, db.Nanos(key.RevokedAt)); err != nil {
			return err
		}
		return k.Audit.record(ctx, "api_key.revoke", "api_key", key.ID, rootSpace, before, key.view())
	})
	if err != nil {
		return Key{}, err
	}
	return key, nil
}

// maxExpiry is the latest expiry a key may have: times are stored in Unix
// nanoseconds, which overflow in 2262.
var maxExpiry = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
