// Package auth authenticates API callers (API keys and run tokens) and
// authorizes their actions. It is the one place every API request passes
// through; the identity and RBAC issue extends it with users, roles and
// space-scoped bindings.
package auth

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// Principal is an authenticated caller.
type Principal struct {
	Kind string // "api_key", "user" (a signed-in user's session) or "run"
	ID   string // api key id, session id or run id
	Name string // api key name, or the user's login
	// DisplayName is a signed-in user's name from single sign-on (its
	// "name" claim; "" if none, and for API keys and runs).
	DisplayName string
	StackID     string // for run tokens: the only stack it may touch
	// RunType, RunState and ManagedState describe a run token's run and
	// its stack when it was authenticated.
	RunType      string
	RunState     string
	ManagedState bool
	Admin        bool
	// User is the signed-in user (sessions, and API keys a user made for
	// themselves): its id, IdP groups and login policy grants.
	User   string
	Groups []string
	Grants map[string][]string
	// Perms are the role bindings' permissions (nil for admins and runs).
	Perms *Perms
}

// String names the principal in timelines and logs (never its secret).
func (p Principal) String() string {
	switch p.Kind {
	case "run":
		return "run::" + p.ID
	case "user":
		return "user::" + p.Name
	default:
		return "api_key::" + p.Name
	}
}

// Actors are the identities the principal acts as, for role bindings.
func (p Principal) Actors() []Actor {
	var out []Actor
	// A user's own key acts as its user and never more: roles bound to the
	// key itself (refused since, but perhaps stored before) do not apply.
	if p.Kind == "api_key" && p.User == "" {
		out = append(out, Actor{ActorAPIKey, p.ID})
	}
	if p.User != "" {
		out = append(out, Actor{ActorUser, p.User})
		for _, g := range p.Groups {
			out = append(out, Actor{ActorGroup, g})
		}
	}
	return out
}

type ctxKey int

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey(0), p)
}

// From returns the principal of ctx.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey(0)).(Principal)
	return p, ok
}

// Keys stores API keys (only their hashes). Audit, when set, records
// creations and revocations in their transaction.
type Keys struct {
	db    *db.DB
	Audit Recorder
}

// NewKeys returns the API key store.
func NewKeys(d *db.DB) *Keys { return &Keys{db: d} }

func hash(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// TokenPrefix starts every API key.
const TokenPrefix = "gnt_"

// MinTokenLength is the shortest token Create takes.
const MinTokenLength = 16

// Create stores a new admin API key (the server's bootstrap key). With
// token empty a random one is made; the token is returned once and never
// stored.
func (k *Keys) Create(ctx context.Context, name, token string) (string, error) {
	if token == "" {
		token = TokenPrefix + id.Secret(30)
	}
	if len(token) < MinTokenLength {
		return "", errs.E(errs.Invalid, "API tokens must be at least %d characters", MinTokenLength)
	}
	_, err := k.db.Exec(ctx, `INSERT INTO api_tokens (id, name, token_hash, created_at, admin) VALUES ($1, $2, $3, $4, TRUE)`,
		id.New("key"), name, hash(token), time.Now().UnixNano())
	if db.IsUniqueViolation(err) {
		var revoked int64
		if k.db.QueryRow(ctx, `SELECT revoked_at FROM api_tokens WHERE token_hash = $1`, hash(token)).Scan(&revoked) == nil && revoked != 0 {
			return "", errs.E(errs.Conflict, "that token was revoked and cannot be used again (if it is the server's --admin-token, GANTRY_ADMIN_TOKEN: remove it or set a new one)")
		}
		return "", errs.E(errs.Conflict, "that token already exists")
	}
	return token, err
}

// Count returns how many API keys exist.
func (k *Keys) Count(ctx context.Context) (int, error) {
	var n int
	err := k.db.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens`).Scan(&n)
	return n, err
}

// Authenticate checks an API key.
func (k *Keys) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, TokenPrefix) && len(token) < 16 {
		return Principal{}, errs.E(errs.Unauthenticated, "invalid API token")
	}
	key, err := scanKey(k.db.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_tokens WHERE token_hash = $1`, hash(token)))
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, errs.E(errs.Unauthenticated, "invalid API token")
	}
	if err != nil {
		// The key could not be checked: a 5xx clients retry, not a 401.
		return Principal{}, fmt.Errorf("checking an API key: %w", err)
	}
	now := time.Now()
	switch {
	case key.Revoked():
		return Principal{}, errs.E(errs.Unauthenticated, "API key revoked")
	case key.Expired(now):
		return Principal{}, errs.E(errs.Unauthenticated, "API key expired")
	}
	// Record use at most once a minute per key to spare the database.
	if now.Sub(key.LastUsedAt) > time.Minute {
		_, _ = k.db.Exec(ctx, `UPDATE api_tokens SET last_used_at = $2 WHERE id = $1`, key.ID, now.UnixNano())
	}
	return Principal{Kind: "api_key", ID: key.ID, Name: key.Name, Admin: key.Admin, User: key.OwnerUser}, nil
}

// DB returns the database the keys are stored in (for the role and user
// stores that share it).
func (k *Keys) DB() *db.DB { return k.db }
