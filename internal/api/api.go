// Package api serves the public JSON API under /api/v1 and the managed
// state backend. Handlers parse, authorize, call a domain service and
// encode; the error table lives in httpx.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/schedule"
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
	// Roles holds custom roles and role bindings; Users signed-in users
	// and their sessions.
	Roles *auth.Roles
	Users *auth.Users
	// Integrations serves cloud integrations; nil answers 503.
	Integrations *integration.Service
	// TokenSubject returns the runs' token issuer and the subjects of a
	// stack's read and write tokens (run type *), for trust policies.
	TokenSubject func(ctx context.Context, spaceID, stackID string) (issuer, read, write string)
	// SubjectFor returns the subject of a stack's token of a run type and scope.
	SubjectFor func(ctx context.Context, spaceID, stackID, runType, scope string) string
	// SSO signs users in with an OpenID Provider; nil: SSO is off.
	SSO *SSO
	// PublicURL is the address users reach the server at (--public-url);
	// when set, a cookie-authenticated change must come from exactly its
	// origin (scheme and host).
	PublicURL string
	Log       *slog.Logger
	// Notify serves webhooks, notifications and deliveries; nil answers 503.
	Notify *notify.Service
	// Policies serves policies, reviews, receipts and push events; nil answers 503.
	Policies *policy.Service
	// Contexts serves contexts and stacks' effective environment; nil answers 503.
	Contexts *contexts.Service
	// Pools serves worker pools; nil answers 503.
	Pools *workerpool.Service
	// BuiltinWorkers is how many built-in workers this server runs: while
	// they start, the built-in pool is not said to have none.
	BuiltinWorkers int
	// Schedules and Drift serve schedules and drift; nil answers 503.
	Schedules *schedule.Service
	Drift     *drift.Service

	initThrottle sync.Once
	throttle     *authThrottle // brute-force protection of authentication
	// Audit records and serves the audit trail; nil answers 503 (and
	// Audited records nothing).
	Audit *audit.Service
	// Head resolves the commit at the tip of a branch when a run is
	// triggered without a SHA; an error leaves the commit to the worker.
	Head func(ctx context.Context, repo, branch string) (string, error)
	// Budget bounds the memory of large requests and answers (states,
	// plans) at once (--max-request-memory); nil: no bound.
	Budget *httpx.Budget
}

// What a large request or answer holds, as a multiple of its data's size
// (its weight in the Budget): the data read or loaded, and the copy the
// database driver makes of it; a plan redacted or a state's outputs
// decoded hold its decoded tree besides.
const (
	// smallState is the largest state document the state backend's GET
	// reads without waiting for the budget (in the query that finds it).
	smallState   = 1 << 20
	holdCopies   = 2
	holdDecoded  = 4
	holdRedacted = 8
)

// hold takes n bytes of the budget for the request of p, waiting for them
// (p's share of the budget applies: see httpx.Budget).
func (a *API) hold(r *http.Request, p auth.Principal, n int64) (release func(), err error) {
	return a.Budget.AcquireFor(r.Context(), p.String(), n)
}

type handler func(w http.ResponseWriter, r *http.Request, p auth.Principal) error

// Route is one API route and the one action it checks (auth.Authenticated:
// any authenticated caller).
type Route struct{ Pattern, Action string }

// RouteTable returns every route Routes registers, with its action: the
// one place that says which action guards which endpoint.
func (a *API) RouteTable() []Route {
	var out []Route
	a.register(func(pattern, action string, _ handler) { out = append(out, Route{pattern, action}) })
	a.stateRoutes(http.NewServeMux(), httpx.Adapter{}, func(r Route) { out = append(out, r) })
	return out
}

// Routes registers every route on mux.
func (a *API) Routes(mux *http.ServeMux) {
	ad := httpx.Adapter{Log: a.Log}
	if a.Keys != nil && a.Roles == nil {
		a.Roles = auth.NewRoles(a.Keys.DB())
	}
	if a.Keys != nil && a.Users == nil {
		a.Users = auth.NewUsers(a.Keys.DB())
	}
	if a.Audit != nil {
		// Role, binding and key changes record their event in their own
		// transaction.
		if a.Roles != nil {
			a.Roles.Audit = a.auditRecorder
		}
		if a.Keys != nil {
			a.Keys.Audit = a.auditRecorder
		}
	}
	user := func(pattern, action string, h handler) {
		if action != auth.Authenticated && !auth.KnownAction(action) {
			panic("route " + pattern + " checks unknown action " + action)
		}
		mux.Handle(pattern, ad.H(func(w http.ResponseWriter, r *http.Request) error {
			p, err := a.authenticate(r)
			if err != nil {
				return err
			}
			if p.Kind == "run" {
				return errs.E(errs.Forbidden, "run tokens may only use the state backend of their stack")
			}
			err = h(w, r.WithContext(auth.WithPrincipal(r.Context(), p)), p)
			if errors.Is(err, auth.ErrHidden) {
				return hiddenSubject(r, pattern, err)
			}
			return err
		}))
	}
	a.register(user)
	a.stateRoutes(mux, ad, nil)
	a.authRoutes(mux, ad)
	mux.Handle("GET /api/v1/openapi.json", http.HandlerFunc(serveOpenAPI))
	mux.Handle("/api/v1/", ad.H(func(w http.ResponseWriter, r *http.Request) error {
		return errs.E(errs.NotFound, "no route %s %s", r.Method, r.URL.Path)
	}))
}

// subjects names what a route's {id} is, for hiddenSubject.
var subjects = map[string]string{"spaces": "space", "stacks": "stack", "runs": "run", "policies": "policy",
	"contexts": "context", "worker-pools": "worker pool", "webhooks": "endpoint", "notifications": "notification",
	"integrations": "integration"}

// hiddenSubject answers a refusal in a space the caller holds nothing in
// exactly as if the subject did not exist: the route's {id} (a stack, a
// run...), else the space refused (a list or create in that space). The
// root space is no secret: a refusal there about no {id} stays a 403.
func hiddenSubject(r *http.Request, pattern string, err error) error {
	_, path, _ := strings.Cut(pattern, " ")
	parts := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	if len(parts) > 1 && parts[1] == "{id}" {
		if kind, ok := subjects[parts[0]]; ok {
			return errs.E(errs.NotFound, "%s %q not found", kind, r.PathValue("id"))
		}
	}
	if d, ok := errs.DetailOf(err).(auth.Denial); ok && d.Space != space.Root {
		return errs.E(errs.NotFound, "space %q not found", d.Space)
	}
	return err
}

// register calls user for every route, with the action it checks.
func (a *API) register(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/whoami", auth.Authenticated, a.whoami)
	r.Handle("GET /api/v1/spaces", auth.SpaceRead, a.listSpaces)
	r.Handle("POST /api/v1/spaces", auth.SpaceAdmin, a.createSpace)
	r.Handle("GET /api/v1/spaces/{id}", auth.SpaceRead, a.getSpace)
	r.Handle("PATCH /api/v1/spaces/{id}", auth.SpaceWrite, a.updateSpace)
	r.Handle("DELETE /api/v1/spaces/{id}", auth.SpaceAdmin, a.deleteSpace)

	r.Handle("GET /api/v1/stacks", auth.SpaceRead, a.listStacks)
	r.Handle("POST /api/v1/stacks", auth.StackCreate, a.createStack)
	r.Handle("GET /api/v1/stacks/{id}", auth.SpaceRead, a.getStack)
	r.Handle("PATCH /api/v1/stacks/{id}", auth.StackUpdate, a.updateStack)
	r.Handle("DELETE /api/v1/stacks/{id}", auth.StackDelete, a.deleteStack)
	r.Handle("GET /api/v1/stacks/{id}/env", auth.SpaceRead, a.listEnv)
	r.Handle("PUT /api/v1/stacks/{id}/env/{name}", auth.StackUpdate, a.setEnv)
	r.Handle("DELETE /api/v1/stacks/{id}/env/{name}", auth.StackUpdate, a.deleteEnv)
	r.Handle("POST /api/v1/stacks/{id}/runs", auth.RunTrigger, a.createRun)
	r.Handle("GET /api/v1/stacks/{id}/outputs", auth.SpaceRead, a.outputs)
	r.Handle("GET /api/v1/stacks/{id}/state/versions", auth.StateRead, a.stateVersions)
	r.Handle("GET /api/v1/stacks/{id}/state/versions/{serial}", auth.StateDownload, a.stateVersion)
	r.Handle("POST /api/v1/stacks/{id}/state/rollback", auth.StateRollback, a.rollback)

	r.Handle("GET /api/v1/runs", auth.SpaceRead, a.listRuns)
	r.Handle("GET /api/v1/runs/{id}", auth.SpaceRead, a.getRun)
	r.Handle("POST /api/v1/runs/{id}/confirm", auth.RunConfirm, a.runAction(auth.RunConfirm, a.Runs.Confirm))
	r.Handle("POST /api/v1/runs/{id}/discard", auth.RunDiscard, a.runAction(auth.RunDiscard, a.Runs.Discard))
	r.Handle("POST /api/v1/runs/{id}/cancel", auth.RunCancel, a.runAction(auth.RunCancel, a.Runs.Cancel))
	r.Handle("POST /api/v1/runs/{id}/stop", auth.RunStop, a.runAction(auth.RunStop, a.Runs.Stop))
	r.Handle("GET /api/v1/runs/{id}/logs", auth.SpaceRead, a.runLogs)
	r.Handle("GET /api/v1/runs/{id}/plan", auth.SpaceRead, a.runPlan)

	r.Handle("POST /api/v1/stacks/{id}/tasks", auth.TaskCreate, a.createTask)
	r.Handle("POST /api/v1/runs/{id}/retry", auth.RunRetry, a.retryRun)
	a.notifyRoutes(user)
	a.policyRoutes(user)
	a.contextRoutes(user)
	a.apiKeyRoutes(user)
	a.workerPoolRoutes(user)
	a.auditRoutes(user)
	a.auditWebhookRoutes(user)
	a.roleRoutes(user)
	a.integrationRoutes(user)
	a.driftRoutes(user)
}

// authenticate resolves the caller of r from its bearer token (or basic
// auth password, as OpenTofu's http backend sends it).
func (a *API) authenticate(r *http.Request) (p auth.Principal, err error) {
	a.initThrottle.Do(func() { a.throttle = newAuthThrottle() })
	defer func() {
		// A working token always works; a source that keeps sending bad
		// ones is told to slow down (429) instead of 401. Either way the
		// failure is audited (noteAuth sees it before it becomes a 429).
		if errs.Is(err, errs.Unauthenticated) && presentedCredentials(r) {
			now := time.Now()
			if terr := a.throttle.check(r, now); terr != nil {
				noteAuth(r, p, err, true)
				err = terr
				return
			}
			a.throttle.failed(r, now)
		}
		noteAuth(r, p, err, false)
	}()
	token := httpx.BearerToken(r)
	if token == "" {
		if token = a.sessionCookie(r); token != "" {
			if err := sameOrigin(r, a.PublicURL); err != nil {
				return auth.Principal{}, err
			}
		}
	}
	if token == "" {
		return auth.Principal{}, errs.E(errs.Unauthenticated, "missing API token: send Authorization: Bearer <token>")
	}
	if strings.HasPrefix(token, "gjt_") {
		return auth.Principal{}, errs.E(errs.Unauthenticated, "job tokens are for the worker protocol only")
	}
	if strings.HasPrefix(token, "gst_") {
		rn, managed, err := a.Runs.AuthenticateState(r.Context(), token)
		if errs.Is(err, errs.Unauthenticated) {
			return auth.Principal{}, errs.E(errs.Unauthenticated, "invalid or expired run token")
		}
		if err != nil {
			return auth.Principal{}, err // could not be checked: 5xx, retried
		}
		return auth.Principal{Kind: "run", ID: rn.ID, StackID: rn.StackID, Name: rn.ID, RunType: rn.Type, RunState: rn.State, ManagedState: managed}, nil
	}
	if strings.HasPrefix(token, auth.SessionPrefix) {
		p, err = a.Users.Authenticate(r.Context(), token)
	} else {
		p, err = a.Keys.Authenticate(r.Context(), token)
		if err == nil {
			p, err = a.Users.ActAs(r.Context(), p)
		}
	}
	if err != nil {
		return auth.Principal{}, err
	}
	return a.permissions(r, p)
}

// permissions resolves what a non-admin principal's role bindings (and
// login policy grants) allow.
func (a *API) permissions(r *http.Request, p auth.Principal) (auth.Principal, error) {
	if p.Admin || p.Kind == "run" {
		return p, nil
	}
	perms, admin, err := a.Roles.Resolve(r.Context(), p.Actors(), p.Grants)
	if err != nil {
		return auth.Principal{}, fmt.Errorf("resolving permissions: %w", err)
	}
	p.Perms, p.Admin = perms, admin
	return p, nil
}

// sameOrigin refuses a request authenticated by the session cookie that
// changes something unless the browser says it comes from this site
// (Sec-Fetch-Site, else Origin): SameSite=Lax alone lets a sibling
// subdomain (same site, another origin) post with the cookie. With a
// public URL the Origin must be its origin, scheme and host (an http://
// page of the same host is another origin); without one, its host must be
// the request's.
func sameOrigin(r *http.Request, publicURL string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" {
		if sfs == "same-origin" {
			return nil
		}
	} else if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err == nil && publicURL != "" {
			if pu, perr := url.Parse(publicURL); perr == nil && pu.Host != "" &&
				strings.EqualFold(u.Scheme, pu.Scheme) && strings.EqualFold(u.Host, pu.Host) {
				return nil
			}
		} else if err == nil && u.Host == r.Host {
			return nil
		}
	}
	return errs.E(errs.Forbidden, "a request signed in with the session cookie that changes something must come from this site (Origin or Sec-Fetch-Site); scripts use an API key")
}

func utc(t time.Time) time.Time { return t.UTC() }

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}
