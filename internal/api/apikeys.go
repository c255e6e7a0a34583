package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
)

// maxExpiryDays bounds expires_in given in days (100 years).
const maxExpiryDays = 36500

// apiKeyRoutes registers the API key routes. Keys are managed in the root
// space: a key is not bound to a space (yet).
func (a *API) apiKeyRoutes(user func(pattern string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/api-keys", a.listAPIKeys)
	r.Handle("POST /api/v1/api-keys", a.createAPIKey)
	r.Handle("DELETE /api/v1/api-keys/{id}", a.revokeAPIKey)
}

// optTime returns t in UTC, or nil for the zero time.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func apiKeyOut(k auth.Key) apiv1.APIKey {
	return apiv1.APIKey{ID: k.ID, Name: k.Name, CreatedBy: k.CreatedBy, CreatedAt: utc(k.CreatedAt),
		LastUsedAt: optTime(k.LastUsedAt), ExpiresAt: optTime(k.ExpiresAt), RevokedAt: optTime(k.RevokedAt)}
}

// parseExpiresIn reads a lifetime: a Go duration ("720h", "90m") or a whole
// number of days ("30d").
func parseExpiresIn(s string) (time.Duration, error) {
	bad := errs.E(errs.Invalid, "expires_in %q: want a positive duration such as \"720h\" or a number of days such as \"30d\"", s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > maxExpiryDays {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

// expiry returns when a key asked for by in expires (zero: never).
func expiry(in apiv1.APIKeyCreate, now time.Time) (time.Time, error) {
	switch {
	case in.ExpiresIn != "" && in.ExpiresAt != nil:
		return time.Time{}, errs.E(errs.Invalid, "give expires_in or expires_at, not both")
	case in.ExpiresIn != "":
		d, err := parseExpiresIn(in.ExpiresIn)
		if err != nil {
			return time.Time{}, err
		}
		return now.Add(d), nil
	case in.ExpiresAt != nil:
		if in.ExpiresAt.IsZero() {
			return time.Time{}, errs.E(errs.Invalid, "expires_at must be an RFC 3339 time in the future")
		}
		return *in.ExpiresAt, nil
	}
	return time.Time{}, nil
}

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.APIKeyManage, space.Root); err != nil {
		return err
	}
	var in apiv1.APIKeyCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	exp, err := expiry(in, time.Now())
	if err != nil {
		return err
	}
	k, token, err := a.Keys.New(r.Context(), in.Name, p.String(), exp)
	if err != nil {
		return err
	}
	// The token is in the answer only: never logged.
	a.logKey(r, "API key created", k)
	httpx.WriteJSON(w, http.StatusCreated, apiv1.APIKeyCreated{ID: k.ID, Name: k.Name, Token: token,
		CreatedAt: utc(k.CreatedAt), CreatedBy: k.CreatedBy, ExpiresAt: optTime(k.ExpiresAt)})
	return nil
}

func (a *API) listAPIKeys(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.APIKeyManage, space.Root); err != nil {
		return err
	}
	list, err := a.Keys.List(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.APIKey]{Items: []apiv1.APIKey{}}
	for _, k := range list {
		out.Items = append(out.Items, apiKeyOut(k))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := auth.Authorize(p, auth.APIKeyManage, space.Root); err != nil {
		return err
	}
	k, err := a.Keys.Revoke(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.logKey(r, "API key revoked", k)
	return noContent(w)
}

// logKey records a change to a key: its id and name and who made the
// change, never a token.
func (a *API) logKey(r *http.Request, msg string, k auth.Key) {
	if a.Log == nil {
		return
	}
	p, _ := auth.From(r.Context())
	a.Log.InfoContext(r.Context(), msg, "request_id", httpx.RequestID(r.Context()), "key_id", k.ID, "key_name", k.Name, "by", p.String())
}
