// Package api serves the public JSON API under /api/v1 and the managed
// state backend. Handlers parse, authorize, call a domain service and
// encode; the error table lives in httpx.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// MaxBody bounds JSON request bodies.
const MaxBody = 1 << 20

// API holds the services the handlers use.
type API struct {
	Spaces *space.Service
	Stacks *stack.Service
	Runs   *run.Service
	State  *state.Service
	Keys   *auth.Keys
	Log    *slog.Logger
	// Notify serves webhooks, notifications and deliveries; nil answers 503.
	Notify *notify.Service
	// Policies serves policies, reviews, receipts and push events; nil answers 503.
	Policies *policy.Service
	// Contexts serves contexts and stacks' effective environment; nil answers 503.
	Contexts *contexts.Service
	// Pools serves worker pools; nil answers 503.
	Pools *workerpool.Service

	initThrottle sync.Once
	throttle     *authThrottle // brute-force protection of authentication
	// Audit records and serves the audit trail; nil answers 503 (and
	// Audited records nothing).
	Audit *audit.Service
	// Head resolves the commit at the tip of a branch when a run is
	// triggered without a SHA; an error leaves the commit to the worker.
	Head func(ctx context.Context, repo, branch string) (string, error)
}

type handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// Routes registers every route on mux.
func (a *API) Routes(mux *http.ServeMux) {
	ad := httpx.Adapter{Log: a.Log}
	user := func(pattern string, h handler) {
		mux.Handle(pattern, ad.H(func(w http.ResponseWriter, r *http.Request) error {
			p, err := a.authenticate(r)
			if err != nil {
				return err
			}
			if p.Kind != "api_key" {
				return errs.E(errs.Forbidden, "run tokens may only use the state backend of their stack")
			}
			return h(w, r.WithContext(auth.WithPrincipal(r.Context(), p)), p)
		}))
	}
	user("GET /api/v1/whoami", a.whoami)
	user("GET /api/v1/spaces", a.listSpaces)
	user("POST /api/v1/spaces", a.createSpace)
	user("GET /api/v1/spaces/{id}", a.getSpace)
	user("PATCH /api/v1/spaces/{id}", a.updateSpace)
	user("DELETE /api/v1/spaces/{id}", a.deleteSpace)

	user("GET /api/v1/stacks", a.listStacks)
	user("POST /api/v1/stacks", a.createStack)
	user("GET /api/v1/stacks/{id}", a.getStack)
	user("PATCH /api/v1/stacks/{id}", a.updateStack)
	user("DELETE /api/v1/stacks/{id}", a.deleteStack)
	user("GET /api/v1/stacks/{id}/env", a.listEnv)
	user("PUT /api/v1/stacks/{id}/env/{name}", a.setEnv)
	user("DELETE /api/v1/stacks/{id}/env/{name}", a.deleteEnv)
	user("POST /api/v1/stacks/{id}/runs", a.createRun)
	user("GET /api/v1/stacks/{id}/outputs", a.outputs)
	user("GET /api/v1/stacks/{id}/state/versions", a.stateVersions)
	user("GET /api/v1/stacks/{id}/state/versions/{serial}", a.stateVersion)
	user("POST /api/v1/stacks/{id}/state/rollback", a.rollback)

	user("GET /api/v1/runs", a.listRuns)
	user("GET /api/v1/runs/{id}", a.getRun)
	user("POST /api/v1/runs/{id}/confirm", a.runAction(auth.RunConfirm, a.Runs.Confirm))
	user("POST /api/v1/runs/{id}/discard", a.runAction(auth.RunDiscard, a.Runs.Discard))
	user("POST /api/v1/runs/{id}/cancel", a.runAction(auth.RunCancel, a.Runs.Cancel))
	user("POST /api/v1/runs/{id}/stop", a.runAction(auth.RunStop, a.Runs.Stop))
	user("GET /api/v1/runs/{id}/logs", a.runLogs)
	user("GET /api/v1/runs/{id}/plan", a.runPlan)

	a.notifyRoutes(user)
	a.policyRoutes(user)
	a.contextRoutes(user)
	a.apiKeyRoutes(user)
	a.workerPoolRoutes(user)
	a.auditRoutes(user)
	a.auditWebhookRoutes(user)
	a.stateRoutes(mux, ad)
	mux.Handle("GET /api/v1/openapi.json", http.HandlerFunc(serveOpenAPI))
	mux.Handle("/api/v1/", ad.H(func(w http.ResponseWriter, r *http.Request) error {
		return errs.E(errs.NotFound, "no route %s %s", r.Method, r.URL.Path)
	}))
}

// authenticate resolves the caller of r from its bearer token (or basic
// auth password, as OpenTofu's http backend sends it).
func (a *API) authenticate(r *http.Request) (p auth.Principal, err error) {
	defer func() { noteAuth(r, p, err) }()
	a.initThrottle.Do(func() { a.throttle = newAuthThrottle() })
	defer func() {
		// A working token always works; a source that keeps sending bad
		// ones is told to slow down (429) instead of 401.
		if errs.Is(err, errs.Unauthenticated) && httpx.BearerToken(r) != "" {
			now := time.Now()
			if terr := a.throttle.check(r, now); terr != nil {
				err = terr
				return
			}
			a.throttle.failed(r, now)
		}
	}()
	token := httpx.BearerToken(r)
	if token == "" {
		return auth.Principal{}, errs.E(errs.Unauthenticated, "missing API token: send Authorization: Bearer <token>")
	}
	if strings.HasPrefix(token, "gjt_") {
		return auth.Principal{}, errs.E(errs.Unauthenticated, "job tokens are for the worker protocol only")
	}
	if strings.HasPrefix(token, "gst_") {
		rn, err := a.Runs.AuthenticateState(r.Context(), token)
		if errs.Is(err, errs.Unauthenticated) {
			return auth.Principal{}, errs.E(errs.Unauthenticated, "invalid or expired run token")
		}
		if err != nil {
			return auth.Principal{}, err // could not be checked: 5xx, retried
		}
		return auth.Principal{Kind: "run", ID: rn.ID, StackID: rn.StackID, Name: rn.ID}, nil
	}
	return a.Keys.Authenticate(r.Context(), token)
}

// page reads limit (1..1000, default 50) and cursor.
func page(r *http.Request) (int, string, error) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return 0, "", errs.E(errs.Invalid, "limit must be an integer from 1 to 1000")
		}
		limit = n
	}
	return limit, r.URL.Query().Get("cursor"), nil
}

func utc(t time.Time) time.Time { return t.UTC() }

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}
