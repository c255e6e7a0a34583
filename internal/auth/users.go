package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// User is someone who signed in with single sign-on.
type User struct {
	ID      string `json:"id"`
	Issuer  string `json:"issuer"`
	Subject string `json:"subject"`
	Login   string `json:"login"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	// Groups: the IdP groups of the last login (after the login policy's
	// team rewrite); Grants: the login policy's roles per space then.
	Groups      []string            `json:"groups"`
	Grants      map[string][]string `json:"grants,omitempty"`
	Admin       bool                `json:"admin"`
	CreatedAt   time.Time           `json:"created_at"`
	LastLoginAt time.Time           `json:"last_login_at"`
	DisabledAt  time.Time           `json:"disabled_at"` // zero: enabled
}

// Users stores users and their sessions.
type Users struct {
	db *db.DB
	// GrantsMaxAge bounds how long the API keys a user made for themselves
	// keep what single sign-on gave the user at their last sign-in (IdP
	// groups, login policy grants, admin): a user who has not signed in
	// for longer keeps only the roles bound to them directly, until they
	// sign in again (0: no bound). Someone removed from a group at the
	// IdP loses it on their keys within this time, even without signing in.
	GrantsMaxAge time.Duration
}

// NewUsers returns the user store.
func NewUsers(d *db.DB) *Users { return &Users{db: d} }

const userColumns = `id, issuer, subject, login, name, email, groups_json, grants, admin, created_at, last_login_at, disabled_at`

func scanUser(s db.Scanner) (User, error) {
	var u User
	var groups, grants string
	var created, last, disabled int64
	if err := s.Scan(&u.ID, &u.Issuer, &u.Subject, &u.Login, &u.Name, &u.Email, &groups, &grants, &u.Admin, &created, &last, &disabled); err != nil {
		return User{}, err
	}
	_ = json.Unmarshal([]byte(groups), &u.Groups)
	_ = json.Unmarshal([]byte(grants), &u.Grants)
	if u.Groups == nil {
		u.Groups = []string{}
	}
	u.CreatedAt, u.LastLoginAt = db.FromNanos(created).UTC(), db.FromNanos(last).UTC()
	if disabled != 0 {
		u.DisabledAt = db.FromNanos(disabled).UTC()
	}
	return u, nil
}

// SignedIn records a login: the user is created on first login, and its
// login, name, email, groups, grants and admin flag are those of this one.
func (us *Users) SignedIn(ctx context.Context, u User) (User, error) {
	now := time.Now()
	if u.Groups == nil {
		u.Groups = []string{}
	}
	groups, _ := json.Marshal(u.Groups)
	grants, _ := json.Marshal(u.Grants)
	var out User
	err := us.db.Tx(ctx, func(ctx context.Context) error {
		old, err := scanUser(us.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE issuer = $1 AND subject = $2`, u.Issuer, u.Subject))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			u.ID = id.New("usr")
			_, err = us.db.Exec(ctx, `INSERT INTO users (id, issuer, subject, login, name, email, groups_json, grants, admin, created_at, last_login_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
				u.ID, u.Issuer, u.Subject, u.Login, u.Name, u.Email, string(groups), string(grants), u.Admin, now.UnixNano())
		case err == nil:
			if !old.DisabledAt.IsZero() {
				return errs.E(errs.Forbidden, "user %s is disabled: an admin enables them with gantry user enable", old.Login)
			}
			u.ID = old.ID
			_, err = us.db.Exec(ctx, `UPDATE users SET login = $2, name = $3, email = $4, groups_json = $5, grants = $6, admin = $7, last_login_at = $8 WHERE id = $1`,
				u.ID, u.Login, u.Name, u.Email, string(groups), string(grants), u.Admin, now.UnixNano())
		}
		if err != nil {
			return err
		}
		out, err = us.Get(ctx, u.ID)
		return err
	})
	return out, err
}

// Get returns one user.
func (us *Users) Get(ctx context.Context, userID string) (User, error) {
	u, err := scanUser(us.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, errs.E(errs.NotFound, "user %q not found", userID)
	}
	return u, err
}

// ByLogin returns the user with that login (for `role bind --user`).
// Logins come from claims a user may be able to choose
// (preferred_username): when two users share one, the caller must give
// the user's id.
func (us *Users) ByLogin(ctx context.Context, login string) (User, error) {
	found, err := db.Collect(ctx, us.db, scanUser, `SELECT `+userColumns+` FROM users WHERE login = $1 ORDER BY created_at LIMIT 2`, login)
	if err != nil {
		return User{}, err
	}
	switch len(found) {
	case 0:
		return User{}, errs.E(errs.NotFound, "user %q not found", login)
	case 1:
		return found[0], nil
	}
	return User{}, errs.E(errs.Conflict, "several users sign in as %q: give the user's id (gantry user list)", login)
}

// List returns every user, oldest first.
func (us *Users) List(ctx context.Context) ([]User, error) {
	return db.Collect(ctx, us.db, scanUser, `SELECT `+userColumns+` FROM users ORDER BY created_at, id`)
}

// SessionPrefix starts every session token.
const SessionPrefix = "gss_"

// Session is a signed-in user's session.
type Session struct {
	ID        string
	UserID    string
	Kind      string // "browser" or "cli"
	CreatedAt time.Time
	ExpiresAt time.Time
}

// NewSession starts a session of ttl for the user; the token is returned
// once, only its hash is kept.
func (us *Users) NewSession(ctx context.Context, userID, kind, sourceIP string, ttl time.Duration) (Session, string, error) {
	now := time.Now()
	s := Session{ID: id.New("ses"), UserID: userID, Kind: kind, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	token := SessionPrefix + id.Secret(32)
	err := us.db.Tx(ctx, func(ctx context.Context) error {
		if err := us.enabled(ctx, userID); err != nil {
			return err
		}
		_, err := us.db.Exec(ctx, `INSERT INTO sessions (id, token_hash, user_id, kind, source_ip, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			s.ID, hash(token), userID, kind, sourceIP, now.UnixNano(), s.ExpiresAt.UnixNano())
		return err
	})
	return s, token, err
}

// enabled checks, in a transaction that gives a user a session or an own
// API key, that the user exists and is not disabled, and keeps it so
// until the transaction ends (the user's row shared, see db.ShareRow;
// SetDisabled locks it): a session or key made while the user is being
// disabled is either revoked with the others or refused, never left to
// work again when the user is enabled.
func (us *Users) enabled(ctx context.Context, userID string) error {
	return userEnabled(ctx, us.db, userID)
}

func userEnabled(ctx context.Context, d *db.DB, userID string) error {
	if ok, err := d.ShareRow(ctx, "users", userID); err != nil || !ok {
		if err == nil {
			err = errs.E(errs.NotFound, "user %q not found", userID)
		}
		return err
	}
	var disabled int64
	if err := d.QueryRow(ctx, `SELECT disabled_at FROM users WHERE id = $1`, userID).Scan(&disabled); err != nil {
		return err
	}
	if disabled != 0 {
		return errs.E(errs.Forbidden, "user %s is disabled: an admin enables them with gantry user enable", userID)
	}
	return nil
}

// RevokeSession ends a session (logout).
func (us *Users) RevokeSession(ctx context.Context, sessionID string) error {
	_, err := us.db.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at = 0`, sessionID, time.Now().UnixNano())
	return err
}

// Authenticate checks a session token.
func (us *Users) Authenticate(ctx context.Context, token string) (Principal, error) {
	var sid, uid string
	var expires, revoked int64
	err := us.db.QueryRow(ctx, `SELECT id, user_id, expires_at, revoked_at FROM sessions WHERE token_hash = $1`, hash(token)).Scan(&sid, &uid, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, errs.E(errs.Unauthenticated, "invalid session")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("checking a session: %w", err)
	}
	switch {
	case revoked != 0:
		return Principal{}, errs.E(errs.Unauthenticated, "session ended (signed out): sign in again")
	case time.Now().UnixNano() >= expires:
		return Principal{}, errs.E(errs.Unauthenticated, "session expired: sign in again (gantry login --sso)")
	}
	u, err := us.Get(ctx, uid)
	if err != nil {
		return Principal{}, fmt.Errorf("loading a session's user: %w", err)
	}
	if !u.DisabledAt.IsZero() {
		return Principal{}, errs.E(errs.Unauthenticated, "user disabled")
	}
	return Principal{Kind: "user", ID: sid, Name: u.Login, DisplayName: u.Name, User: u.ID, Groups: u.Groups, Grants: u.Grants, Admin: u.Admin}, nil
}

// ActAs completes p, an API key a user made for themselves, with that
// user's groups, grants and admin flag as of their last login (if it is
// more recent than GrantsMaxAge).
func (us *Users) ActAs(ctx context.Context, p Principal) (Principal, error) {
	if p.User == "" || p.Kind != "api_key" {
		return p, nil
	}
	u, err := us.Get(ctx, p.User)
	if err != nil {
		return Principal{}, fmt.Errorf("loading an API key's user: %w", err)
	}
	if !u.DisabledAt.IsZero() {
		return Principal{}, errs.E(errs.Unauthenticated, "API key of a disabled user")
	}
	if us.GrantsMaxAge > 0 && time.Since(u.LastLoginAt) > us.GrantsMaxAge {
		// Lapsed: what the IdP said at the last sign-in is too old to
		// trust; roles bound to the user still apply.
		return p, nil
	}
	p.Groups, p.Grants, p.Admin = u.Groups, u.Grants, p.Admin || u.Admin
	return p, nil
}

// CookieKey returns the key signing session cookies, made on first use
// and shared by every replica through the database.
func (us *Users) CookieKey(ctx context.Context) ([]byte, error) {
	var v string
	err := us.db.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'session_cookie_key'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		if _, err := us.db.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('session_cookie_key', $1) ON CONFLICT (name) DO NOTHING`, hex.EncodeToString(b)); err != nil {
			return nil, err
		}
		err = us.db.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'session_cookie_key'`).Scan(&v)
	}
	if err != nil {
		return nil, err
	}
	return hex.DecodeString(v)
}

// SignCookie returns the cookie value for a session token: the token and
// its HMAC-SHA256 under key.
func SignCookie(key []byte, token string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token))
	return token + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// VerifyCookie returns the session token of a signed cookie value.
func VerifyCookie(key []byte, value string) (string, bool) {
	token, sig, ok := strings.Cut(value, ".")
	if !ok {
		return "", false
	}
	want := SignCookie(key, token)
	return token, hmac.Equal([]byte(want), []byte(token+"."+sig))
}

// SetDisabled disables (or enables) a user. Disabling signs them out
// everywhere: their sessions and their own API keys are revoked in the
// same transaction, and they cannot sign in until enabled. rec audits it.
func (us *Users) SetDisabled(ctx context.Context, userID string, disabled bool, rec Recorder) (User, error) {
	var u User
	err := us.db.Tx(ctx, func(ctx context.Context) error {
		// Locked first: a session or own key being made meanwhile shares
		// the row (enabled), so it is revoked below or refused.
		if _, err := us.db.LockRow(ctx, "users", userID); err != nil {
			return err
		}
		var err error
		if u, err = us.Get(ctx, userID); err != nil {
			return err
		}
		now := time.Now().UnixNano()
		at := int64(0)
		if disabled {
			at = now
			if _, err := us.db.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at = 0`, userID, now); err != nil {
				return err
			}
			if _, err := us.db.Exec(ctx, `UPDATE api_tokens SET revoked_at = $2 WHERE owner_user = $1 AND revoked_at = 0`, userID, now); err != nil {
				return err
			}
		}
		if _, err := us.db.Exec(ctx, `UPDATE users SET disabled_at = $2 WHERE id = $1`, userID, at); err != nil {
			return err
		}
		action := "user.enable"
		if disabled {
			action = "user.disable"
		}
		if err := rec.record(ctx, action, "user", userID, rootSpace, map[string]any{"login": u.Login, "disabled": !u.DisabledAt.IsZero()},
			map[string]any{"login": u.Login, "disabled": disabled}); err != nil {
			return err
		}
		u, err = us.Get(ctx, userID)
		return err
	})
	return u, err
}

// SignInRefused records that a sign-in of the user with issuer and
// subject was refused by the login policy (a deny or an error): they no
// longer qualify, so what single sign-on gave them at their last sign-in
// (groups, grants, admin) is cleared, which their own API keys lose at
// once, and their sessions (browser and CLI) are revoked, in one
// transaction; rec audits it. API keys stay, with the roles bound to the
// user directly. A user never seen before is not recorded (false).
func (us *Users) SignInRefused(ctx context.Context, issuer, subject, reason string, rec Recorder) (bool, error) {
	found := false
	err := us.db.Tx(ctx, func(ctx context.Context) error {
		u, err := scanUser(us.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE issuer = $1 AND subject = $2`, issuer, subject))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		now := time.Now().UnixNano()
		if _, err := us.db.Exec(ctx, `UPDATE users SET groups_json = '[]', grants = '{}', admin = $2 WHERE id = $1`, u.ID, false); err != nil {
			return err
		}
		res, err := us.db.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at = 0`, u.ID, now)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		return rec.record(ctx, "user.sign_in_refused", "user", u.ID, rootSpace,
			map[string]any{"login": u.Login, "groups": u.Groups, "grants": u.Grants, "admin": u.Admin},
			map[string]any{"login": u.Login, "groups": []string{}, "grants": map[string][]string{}, "admin": false, "reason": reason, "sessions_revoked": n})
	})
	return found, err
}
