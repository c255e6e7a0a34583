package apiv1

import (
	"strconv"
	"strings"
	"time"
)

// APIKey is an API key as listed: never its token. Absent times mean never.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedBy  string     `json:"created_by"` // "" for keys the server made at start
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Admin      bool       `json:"admin"`           // may do everything
	Owner      string     `json:"owner,omitempty"` // the user whose own key it is (acts as them)
}

// APIKeyCreate is the body of POST /api-keys. At most one of ExpiresIn and
// ExpiresAt; neither means the key never expires.
type APIKeyCreate struct {
	Name      string     `json:"name" required:"true"`
	ExpiresIn string     `json:"expires_in,omitempty"` // a Go duration ("720h") or days ("30d")
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Admin makes an admin key (callers who are admins only). Without it a
	// key may do what its role bindings grant (`gantry role bind --apikey`).
	// A signed-in user's keys are their own: they act as the user.
	Admin bool `json:"admin,omitempty"`
	// Automation makes a signed-in user's key an automation key, owned by
	// nobody, that may do what its role bindings grant (or everything,
	// with Admin): for CI. It needs apikey:manage in the root space. API
	// keys that are not a user's own are always automation keys.
	Automation bool `json:"automation,omitempty"`
}

// MaxExpiryDays bounds ExpiresIn given in days (100 years).
const MaxExpiryDays = 36500

// ParseExpiresIn reads APIKeyCreate.ExpiresIn: a positive Go duration
// ("720h", "90m") or a whole number of days ("30d", at most MaxExpiryDays).
// The server and the CLI read it alike.
func ParseExpiresIn(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > MaxExpiryDays {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// APIKeyCreated is the answer to POST /api-keys: the only answer that
// carries the token.
type APIKeyCreated struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Token     string     `json:"token"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}
