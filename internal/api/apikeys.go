package api

import (
	"net/http"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
)

// apiKeyRoutes registers the API key routes. Keys are managed in the root
// space: a key is not bound to a space (yet).
func (a *API) apiKeyRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/api-keys", auth.APIKeyManage, a.listAPIKeys)
	r.Handle("POST /api/v1/api-keys", auth.APIKeyManage, a.createAPIKey)
	r.Handle("DELETE /api/v1/api-keys/{id}", auth.APIKeyManage, a.revokeAPIKey)
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
		LastUsedAt: optTime(k.LastUsedAt), ExpiresAt: optTime(k.ExpiresAt), RevokedAt: optTime(k.RevokedAt),
		Admin: k.Admin, Owner: k.OwnerUser}
}

// expiry returns when a key asked for by in expires (zero: never).
func expiry(in apiv1.APIKeyCreate, now time.Time) (time.Time, error) {
	switch {
	case in.ExpiresIn != "" && in.ExpiresAt != nil:
		return time.Time{}, errs.E(errs.Invalid, "give expires_in or expires_at, not both")
	case in.ExpiresIn != "":
		d, ok := apiv1.ParseExpiresIn(in.ExpiresIn)
		if !ok {
			return time.Time{}, errs.E(errs.Invalid, "expires_in %q: want a positive duration such as \"720h\" or a number of days such as \"30d\" (at most %d)", in.ExpiresIn, apiv1.MaxExpiryDays)
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

// ownKeys: a signed-in user (a session, or a key of their own) manages
// their own keys without apikey:manage; their keys act as them, so they
// grant nothing the user does not have.
func ownKeys(p auth.Principal) bool { return p.User != "" && !p.Can(auth.APIKeyManage, space.Root) }

func (a *API) createAPIKey(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in apiv1.APIKeyCreate
	if p.User != "" && !p.Can(auth.APIKeyManage, space.Root) {
		// A signed-in user's own key: no apikey:manage needed.
		if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
			return err
		}
		if in.Automation {
			return auth.Authorize(p, auth.APIKeyManage, space.Root)
		}
	} else {
		if err := auth.Authorize(p, auth.APIKeyManage, space.Root); err != nil {
			return err
		}
		if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
			return err
		}
	}
	// A signed-in user's key is their own (it acts as them) unless they
	// ask for an automation key, which needs apikey:manage.
	own := p.User != "" && !in.Automation
	if in.Admin && (!p.Admin || own) {
		return errs.E(errs.Forbidden, "only an admin may create admin keys, and only as automation keys (a signed-in user's own keys act as the user: add \"automation\": true)")
	}
	exp, err := expiry(in, time.Now())
	if err != nil {
		return err
	}
	spec := auth.KeySpec{Name: in.Name, CreatedBy: p.String(), ExpiresAt: exp, Admin: in.Admin}
	if own {
		spec.OwnerUser = p.User
	}
	k, token, err := a.Keys.NewKey(r.Context(), spec)
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
	own := ownKeys(p)
	if !own {
		if err := auth.Authorize(p, auth.APIKeyManage, space.Root); err != nil {
			return err
		}
	}
	list, err := a.Keys.List(r.Context())
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.APIKey]{Items: []apiv1.APIKey{}}
	for _, k := range list {
		if own && k.OwnerUser != p.User {
			continue
		}
		out.Items = append(out.Items, apiKeyOut(k))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if p.Kind == "api_key" && p.ID == r.PathValue("id") {
		// A key may always revoke itself (a leaked key's holder can end it).
	} else if ownKeys(p) {
		k, err := a.Keys.Get(r.Context(), r.PathValue("id"))
		if errs.Is(err, errs.NotFound) || (err == nil && k.OwnerUser != p.User) {
			return errs.E(errs.NotFound, "no API key %q among yours", r.PathValue("id"))
		}
		if err != nil {
			return err
		}
	} else if err := auth.Authorize(p, auth.APIKeyManage, space.Root); err != nil {
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
