package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/schedule"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// rbacEnv is the whole API (every service) over SQLite (newRBACEnv) or
// another database (newRBACEnvOn), with an admin key.
type rbacEnv struct {
	*apiEnv
	a     *api.API
	db    *db.DB
	audit *audit.Service
}

func newRBACEnv(t *testing.T, opts ...func(*api.API)) *rbacEnv {
	t.Helper()
	d, err := db.Open(context.Background(), "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return newRBACEnvOn(t, d, opts...)
}

func newRBACEnvOn(t *testing.T, d *db.DB, opts ...func(*api.API)) *rbacEnv {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	hub := events.NewHub()
	e := &apiEnv{t: t, stacks: stack.NewService(d, box), runs: run.NewService(d, hub, box, log), state: state.NewService(d, box), logs: logs}
	keys := auth.NewKeys(d)
	if e.token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	n := notify.NewService(d, box, log)
	au := audit.NewService(d, log)
	audit.NewForwarder(au, box, log)
	a := &api.API{Spaces: spaces, Stacks: e.stacks, Runs: e.runs, State: e.state, Keys: keys, Log: log, Notify: n,
		Policies: policy.NewService(d, spaces, e.stacks, e.runs, n, hub, log),
		Contexts: contexts.NewService(d, box, spaces, e.stacks),
		Pools:    workerpool.NewService(d, spaces, hub), Audit: au}
	// Every domain records its changes in its own transaction, as the
	// server wires it.
	hook := au.Hook()
	spaces.Audit, e.stacks.Audit, e.state.Audit, a.Pools.Audit, n.Audit, a.Contexts.Audit = hook, hook, hook, hook, hook, hook
	a.Integrations = integration.New(d, spaces, e.stacks)
	a.Schedules = schedule.New(d)
	a.Schedules.Audit = hook
	a.Drift = drift.New(d, e.runs, a.Schedules, log)
	a.Integrations.Audit = hook
	a.SubjectFor = func(_ context.Context, spaceID, stackID, runType, scope string) string {
		return "space:" + spaceID + ":stack:" + stackID + ":run_type:" + runType + ":scope:" + scope
	}
	a.TokenSubject = func(_ context.Context, spaceID, stackID string) (string, string, string) {
		return "https://gantry.example", "space:" + spaceID + ":stack:" + stackID + ":run_type:*:scope:read", "space:" + spaceID + ":stack:" + stackID + ":run_type:*:scope:write"
	}
	e.runs.Audit, a.Policies.Audit = au, au
	mux := http.NewServeMux()
	for _, o := range opts {
		o(a)
	}
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(httpx.Adapter{Log: log}.Recover(a.Audited(mux))))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return &rbacEnv{apiEnv: e, a: a, db: d, audit: au}
}

// trailLen is the number of events of the audit trail.
func (e *rbacEnv) trailLen() int { return len(e.trailSince(0)) }

// trailSince returns the events of the audit trail after the first n.
func (e *rbacEnv) trailSince(n int) []audit.Event {
	e.t.Helper()
	var out []audit.Event
	if err := e.audit.Each(context.Background(), audit.Filter{}, func(ev audit.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out[n:]
}

// as sends a JSON request with token.
func (e *rbacEnv) as(token, method, path string, body any) response {
	e.t.Helper()
	var rd io.Reader
	ct := ""
	if body != nil {
		b, _ := json.Marshal(body)
		rd, ct = bytes.NewReader(b), "application/json"
	}
	return e.send(request{method: method, path: path, token: token, contentType: ct, body: rd})
}

// actor makes an API key holding exactly actions (a custom role) in space.
func (e *rbacEnv) actor(name, sp string, actions []string) string {
	e.t.Helper()
	var role apiv1.Role
	e.must(e.do("POST", "/api/v1/roles", map[string]any{"id": name, "actions": actions}), http.StatusCreated, &role)
	var key apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": name}), http.StatusCreated, &key)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": name, "space": sp, "api_key": key.ID}), http.StatusCreated, nil)
	return key.Token
}

// fixture is one of everything, in a space of its own.
type fixture struct {
	space, stack, run, policy, context, pool, webhook, notification, auditHook, role, binding, key, integration, user, schedule string
}

func (e *rbacEnv) fixture(n int) fixture {
	e.t.Helper()
	f := fixture{space: fmt.Sprintf("sp%d", n), stack: fmt.Sprintf("st%d", n), policy: fmt.Sprintf("pol%d", n),
		context: fmt.Sprintf("ctx%d", n), pool: fmt.Sprintf("pool%d", n), webhook: fmt.Sprintf("hook%d", n),
		auditHook: fmt.Sprintf("ah%d", n), role: fmt.Sprintf("fr%d", n)}
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": f.space}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": f.stack, "space": f.space, "repository": pinnedRepo}), http.StatusCreated, nil)
	var rn apiv1.Run
	e.must(e.do("POST", "/api/v1/stacks/"+f.stack+"/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &rn)
	f.run = rn.ID
	e.must(e.do("POST", "/api/v1/policies", map[string]any{"id": f.policy, "space": f.space, "type": "PLAN",
		"body": "package spacelift\ndeny contains \"no\" if false\n"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/contexts", map[string]any{"id": f.context, "space": f.space}), http.StatusCreated, nil)
	f.user = id.New("usr")
	if _, err := e.db.Exec(context.Background(), `INSERT INTO users (id, issuer, subject, login, created_at) VALUES ($1, 'https://idp', $1, $2, $3)`,
		f.user, "login-"+f.space, time.Now().UnixNano()); err != nil {
		e.t.Fatal(err)
	}
	f.integration = fmt.Sprintf("aws%d", n)
	e.must(e.do("POST", "/api/v1/integrations", map[string]any{"id": f.integration, "space": f.space, "type": "aws",
		"config": map[string]string{"role_arn": "arn:aws:iam::123456789012:role/gantry"}}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/integrations/"+f.integration+"/attachments", map[string]any{"stack": f.stack, "read": true, "write": false}), http.StatusOK, nil)
	e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": f.pool, "space": f.space}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/webhooks", map[string]any{"id": f.webhook, "space": f.space, "url": "http://127.0.0.1:9/hook"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/audit/webhooks", map[string]any{"id": f.auditHook, "url": "http://127.0.0.1:9/audit", "secret": "s3cret-s3cret"}), http.StatusCreated, nil)
	f.notification = id.New("ntf")
	if _, err := e.db.Exec(context.Background(), `INSERT INTO notify_inbox (id, space_id, run_id, stack_id, event, title, body, severity, created_at)
		VALUES ($1, $2, $3, $4, 'run_updated', 't', 'b', 'INFO', $5)`, f.notification, f.space, f.run, f.stack, time.Now().UnixNano()); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.db.Exec(context.Background(), `INSERT INTO notify_deliveries (id, kind, endpoint_id, space_id, run_id, stack_id, method, body, status, created_at, updated_at)
		VALUES ($1, 'webhook', $2, $3, $4, $5, 'POST', '{}', 'DELIVERED', $6, $6)`, id.New("dlv"), f.webhook, f.space, f.run, f.stack, time.Now().UnixNano()); err != nil {
		e.t.Fatal(err)
	}
	e.must(e.do("POST", "/api/v1/roles", map[string]any{"id": f.role, "actions": []string{auth.SpaceRead}}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/roles", map[string]any{"id": f.role + "m", "actions": []string{auth.RoleManage}}), http.StatusCreated, nil)
	var key apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "fk" + f.space}), http.StatusCreated, &key)
	f.key = key.ID
	var b apiv1.RoleBinding
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": f.role, "space": f.space, "group": "fixture-group"}), http.StatusCreated, &b)
	f.binding = b.ID
	e.must(e.do("PUT", "/api/v1/stacks/"+f.stack+"/drift-detection", map[string]any{"schedule": []string{"@daily"}}), http.StatusOK, nil)
	var sc apiv1.Schedule
	e.must(e.do("POST", "/api/v1/stacks/"+f.stack+"/schedules", map[string]any{"kind": "run", "cron": []string{"0 3 * * *"}}), http.StatusCreated, &sc)
	f.schedule = sc.ID
	// A state version, for the state routes.
	st := `{"version":4,"terraform_version":"1.10.7","serial":1,"lineage":"l-` + f.space + `","outputs":{},"resources":[]}`
	r := e.send(request{method: "POST", path: "/api/v1/stacks/" + f.stack + "/tfstate", token: e.token, contentType: "application/json", body: strings.NewReader(st)})
	if r.status != http.StatusOK {
		e.t.Fatalf("state: %s", r)
	}
	return f
}

// call is one request of the matrix: path and body from a fixture.
func matrixCall(pattern string, f fixture) (method, path string, body any) {
	method, path, _ = strings.Cut(pattern, " ")
	repl := map[string]string{"{serial}": "1", "{name}": "TF_VAR_x", "{worker}": "wrk-none", "{key}": "none"}
	switch {
	case strings.HasPrefix(path, "/api/v1/spaces/{id}"):
		repl["{id}"] = f.space
	case strings.HasPrefix(path, "/api/v1/stacks/{id}"):
		repl["{id}"] = f.stack
	case strings.HasPrefix(path, "/api/v1/runs/{id}"):
		repl["{id}"] = f.run
	case strings.HasPrefix(path, "/api/v1/policies/{id}"):
		repl["{id}"] = f.policy
	case strings.HasPrefix(path, "/api/v1/contexts/{id}"):
		repl["{id}"] = f.context
	case strings.HasPrefix(path, "/api/v1/worker-pools/{id}"):
		repl["{id}"] = f.pool
	case strings.HasPrefix(path, "/api/v1/webhooks/{id}"):
		repl["{id}"] = f.webhook
	case strings.HasPrefix(path, "/api/v1/notifications/{id}"):
		repl["{id}"] = f.notification
	case strings.HasPrefix(path, "/api/v1/audit/webhooks/{id}"):
		repl["{id}"] = f.auditHook
	case strings.HasPrefix(path, "/api/v1/roles/{id}"):
		repl["{id}"] = f.role
	case strings.HasPrefix(path, "/api/v1/role-bindings/{id}"):
		repl["{id}"] = f.binding
	case strings.HasPrefix(path, "/api/v1/api-keys/{id}"):
		repl["{id}"] = f.key
	case strings.HasPrefix(path, "/api/v1/integrations/{id}"):
		repl["{id}"] = f.integration
	case strings.HasPrefix(path, "/api/v1/users/{id}"):
		repl["{id}"] = f.user
	}
	repl["{stack}"] = f.stack
	repl["{schedule}"] = f.schedule
	if strings.Contains(path, "policy-library/{name}") {
		repl["{name}"] = "approval-destroy-runs"
	}
	for k, v := range repl {
		path = strings.ReplaceAll(path, k, v)
	}
	q := "?space=" + f.space
	switch pattern {
	case "GET /api/v1/stacks", "GET /api/v1/runs", "GET /api/v1/policies", "GET /api/v1/contexts",
		"GET /api/v1/worker-pools", "GET /api/v1/webhooks", "GET /api/v1/notifications", "GET /api/v1/role-bindings":
		path += q
	case "POST /api/v1/spaces":
		body = map[string]any{"id": f.space + "-child", "parent": f.space}
	case "PATCH /api/v1/spaces/{id}":
		body = map[string]any{"description": "changed"}
	case "POST /api/v1/stacks":
		body = map[string]any{"id": f.stack + "-new", "space": f.space, "repository": pinnedRepo}
	case "PATCH /api/v1/stacks/{id}":
		body = map[string]any{"description": "changed"}
	case "PUT /api/v1/stacks/{id}/env/{name}", "PUT /api/v1/contexts/{id}/env/{name}":
		body = map[string]any{"value": "1"}
	case "POST /api/v1/stacks/{id}/runs":
		body = map[string]any{"type": "PROPOSED", "sha": pinnedSHA}
	case "POST /api/v1/stacks/{id}/tasks":
		body = map[string]any{"command": "true", "sha": pinnedSHA}
	case "POST /api/v1/stacks/{id}/state/rollback":
		body = map[string]any{"serial": 1}
	case "POST /api/v1/stacks/{id}/notify-push":
		body = map[string]any{"branch": "main", "sha": pinnedSHA, "affected_files": []string{"main.tf"}}
	case "POST /api/v1/webhooks":
		body = map[string]any{"id": f.webhook + "-new", "space": f.space, "url": "http://127.0.0.1:9/x"}
	case "PATCH /api/v1/webhooks/{id}":
		body = map[string]any{"labels": []string{"x"}}
	case "POST /api/v1/policies":
		body = map[string]any{"id": f.policy + "-new", "space": f.space, "type": "PLAN", "body": "package spacelift\n"}
	case "PATCH /api/v1/policies/{id}":
		body = map[string]any{"description": "changed"}
	case "POST /api/v1/policies/{id}/attachments", "POST /api/v1/contexts/{id}/attachments":
		body = map[string]any{"stack": f.stack}
	case "POST /api/v1/policies/{id}/simulate":
		body = map[string]any{"input": map[string]any{}}
	case "POST /api/v1/policies/{id}/replay":
		body = map[string]any{"body": "package spacelift\n"}
	case "POST /api/v1/policy-library/{name}/import":
		body = map[string]any{"id": "lib-" + f.space, "space": f.space}
	case "POST /api/v1/runs/{id}/reviews":
		body = map[string]any{"decision": "APPROVE"}
	case "POST /api/v1/contexts":
		body = map[string]any{"id": f.context + "-new", "space": f.space}
	case "PATCH /api/v1/contexts/{id}":
		body = map[string]any{"description": "changed"}
	case "PUT /api/v1/contexts/{id}/files":
		body = map[string]any{"path": "a.txt", "content": base64.StdEncoding.EncodeToString([]byte("x"))}
	case "DELETE /api/v1/contexts/{id}/files":
		path += "?path=a.txt"
	case "POST /api/v1/contexts/{id}/hooks":
		body = map[string]any{"phase": "before_init", "command": "true"}
	case "POST /api/v1/api-keys":
		body = map[string]any{"name": "new-" + f.space}
	case "POST /api/v1/worker-pools":
		body = map[string]any{"id": f.pool + "-new", "space": f.space}
	case "PATCH /api/v1/worker-pools/{id}":
		body = map[string]any{"description": "changed"}
	case "PUT /api/v1/worker-pools/{id}/public-key":
		body = map[string]any{"public_key": ""}
	case "POST /api/v1/audit/webhooks":
		body = map[string]any{"id": f.auditHook + "-new", "url": "http://127.0.0.1:9/a", "secret": "s3cret-s3cret"}
	case "POST /api/v1/roles":
		body = map[string]any{"id": f.role + "-new", "actions": []string{auth.SpaceRead}}
	case "GET /api/v1/integrations":
		path += q
	case "GET /api/v1/integrations/{id}/aws-trust-policy":
		path += "?stack=" + f.stack
	case "GET /api/v1/oidc-setup":
		path += "?provider=azure&stack=" + f.stack
	case "POST /api/v1/integrations":
		body = map[string]any{"id": f.integration + "-new", "space": f.space, "type": "aws", "config": map[string]string{"role_arn": "arn:aws:iam::123456789012:role/x"}}
	case "PATCH /api/v1/integrations/{id}":
		body = map[string]any{"description": "changed"}
	case "POST /api/v1/integrations/{id}/attachments":
		body = map[string]any{"stack": f.stack, "read": true, "write": true}
	case "PUT /api/v1/stacks/{id}/drift-detection":
		body = map[string]any{"schedule": []string{"*/15 * * * *"}, "timezone": "Europe/Berlin"}
	case "POST /api/v1/stacks/{id}/schedules":
		body = map[string]any{"kind": "run", "cron": []string{"0 4 * * *"}}
	case "GET /api/v1/drift":
		path += q
	case "POST /api/v1/stacks/{id}/drift/reconcile":
		body = map[string]any{}
	case "POST /api/v1/role-bindings":
		// A role the caller holds all of (nobody grants more than they hold).
		body = map[string]any{"role": f.role + "m", "space": f.space, "group": "another-group"}
	}
	return method, path, body
}

// filtered lists cover every space: they are filtered item by item.
var filtered = map[string]bool{"GET /api/v1/spaces": true, "GET /api/v1/deliveries": true}

// rootRoutes check their action in the root space; the others in the
// fixture's space.
var rootRoutes = map[string]bool{
	"POST /api/v1/roles": true, "DELETE /api/v1/roles/{id}": true, "GET /api/v1/users": true,
	"POST /api/v1/users/{id}/disable": true, "POST /api/v1/users/{id}/enable": true,
}

// alsoNeeds are the actions a route needs besides its own for the
// matrix's request: a scheduled tracked run needs run:trigger too.
var alsoNeeds = map[string][]string{"POST /api/v1/stacks/{id}/schedules": {auth.RunTrigger},
	"PUT /api/v1/stacks/{id}/drift-detection": {auth.RunTrigger},
	// A retry starts the fixture's (PROPOSED) run again.
	"POST /api/v1/runs/{id}/retry": {auth.RunTrigger},
	// Removing the fixture's binding (of space:read) needs what it grants.
	"DELETE /api/v1/role-bindings/{id}": {auth.SpaceRead}}

// TestRBACRouteMatrix walks every route of the route table with an actor
// that holds exactly the route's action (in the subject's space) and one
// that holds every action but that one (in the root space): the first is
// never refused, the second always gets 403 naming the action and the
// space. A route whose handler checks no action, or another one than the
// table says, fails here.
func TestRBACRouteMatrix(t *testing.T) {
	e := newRBACEnv(t)
	var all []string
	for _, c := range auth.Catalog {
		all = append(all, c.Name)
	}
	notTwoXX := map[string]int{}
	for i, rt := range e.a.RouteTable() {
		if rt.Action == auth.Authenticated {
			continue
		}
		f := e.fixture(i)
		bindSpace := f.space
		if auth.ActionRootOnly(rt.Action) || rootRoutes[rt.Pattern] {
			bindSpace = space.Root
		}
		has := e.actor(fmt.Sprintf("has%d", i), bindSpace, append([]string{rt.Action}, alsoNeeds[rt.Pattern]...))
		var others []string
		for _, a := range all {
			if a != rt.Action {
				others = append(others, a)
			}
		}
		lacks := e.actor(fmt.Sprintf("lacks%d", i), space.Root, others)

		method, path, body := matrixCall(rt.Pattern, f)
		sendAs := func(token string) response {
			if strings.Contains(rt.Pattern, "/tfstate") {
				var rd io.Reader
				if method == "POST" {
					rd = strings.NewReader(`{"version":4,"terraform_version":"1.10.7","serial":2,"lineage":"l-` + f.space + `","outputs":{},"resources":[]}`)
				}
				if method == "LOCK" || method == "UNLOCK" {
					rd = strings.NewReader(`{"ID":"lock-1","Operation":"OperationTypePlan","Who":"me"}`)
				}
				return e.send(request{method: method, path: path, token: token, basic: true, body: rd})
			}
			return e.as(token, method, path, body)
		}
		seen := e.trailLen()
		r := sendAs(lacks)
		if filtered[rt.Pattern] {
			// Lists of every space: filtered, never refused.
			if r.status != http.StatusOK || strings.Contains(string(r.body), f.space) {
				t.Errorf("%s without %s: %s, want 200 without the fixture's space", rt.Pattern, rt.Action, r)
			}
			if r = sendAs(has); r.status != http.StatusOK || !strings.Contains(string(r.body), f.space) {
				t.Errorf("%s with only %s: %s, want 200 with the fixture's space", rt.Pattern, rt.Action, r)
			}
			continue
		}
		if r.status != http.StatusForbidden || !strings.Contains(string(r.body), rt.Action) {
			t.Errorf("%s without %s: %s, want 403 naming the action", rt.Pattern, rt.Action, r)
		}
		// Every refused attempt is in the audit trail, reads included.
		if evs := e.trailSince(seen); len(evs) != 1 || evs[0].Outcome != audit.Denied || evs[0].Actor != fmt.Sprintf("api_key::lacks%d", i) {
			t.Errorf("%s refused: events %+v, want one, denied, by lacks%d", rt.Pattern, evs, i)
		}
		r = sendAs(has)
		if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden || r.status >= 500 {
			t.Errorf("%s with only %s: %s", rt.Pattern, rt.Action, r)
		} else if r.status == http.StatusNotFound && strings.Contains(string(r.body), "not found") && !strings.Contains(string(r.body), "none") &&
			!strings.Contains(string(r.body), "wrk-none") {
			t.Errorf("%s with only %s: %s (hidden?)", rt.Pattern, rt.Action, r)
		} else if r.status >= 300 {
			notTwoXX[rt.Pattern] = r.status
		}
	}
	// Routes whose fixture cannot reach 2xx with one action: the state the
	// fixture's run or objects are in, not authorization.
	want := map[string]int{
		"POST /api/v1/runs/{id}/confirm": 409, "POST /api/v1/runs/{id}/discard": 409, "POST /api/v1/runs/{id}/stop": 409,
		"POST /api/v1/runs/{id}/retry": 409, "GET /api/v1/runs/{id}/plan": 404, "GET /api/v1/policies/{id}/samples/{key}": 404,
		"POST /api/v1/worker-pools/{id}/workers/{worker}/drain": 404, "UNLOCK /api/v1/stacks/{id}/tfstate": 409,
		"DELETE /api/v1/stacks/{id}/env/{name}": 404, "DELETE /api/v1/contexts/{id}/env/{name}": 404,
		"DELETE /api/v1/contexts/{id}/files": 404, "DELETE /api/v1/policies/{id}/attachments/{stack}": 404,
		"DELETE /api/v1/contexts/{id}/attachments/{stack}": 404,
		// Still bound, holds objects, already at that serial, no lock.
		"DELETE /api/v1/roles/{id}": 409, "DELETE /api/v1/spaces/{id}": 409, "DELETE /api/v1/stacks/{id}": 409,
		"POST /api/v1/stacks/{id}/state/rollback": 409,
	}
	for p, st := range notTwoXX {
		if want[p] != st {
			t.Errorf("%s with its action answered %d (not 2xx); add it to want with the reason if expected", p, st)
		}
	}
}

// TestRBACAudit: role, binding and key changes are audited once each, in
// their transaction, with the change; a refused change leaves no change
// event, only the failed attempt (no change).
func TestRBACAudit(t *testing.T) {
	e := newRBACEnv(t)
	events := func(action string) []apiv1.AuditEvent {
		var l apiv1.List[apiv1.AuditEvent]
		e.must(e.do("GET", "/api/v1/audit/events?action="+action, nil), http.StatusOK, &l)
		return l.Items
	}
	e.must(e.do("POST", "/api/v1/roles", map[string]any{"id": "deployer", "actions": []string{auth.RunTrigger, auth.RunConfirm}}), http.StatusCreated, nil)
	var b apiv1.RoleBinding
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "deployer", "group": "ci"}), http.StatusCreated, &b)
	// Refused: unknown space, unknown role. No event.
	if r := e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "deployer", "space": "nowhere", "group": "ci"}); r.status != http.StatusNotFound {
		t.Errorf("binding in a missing space: %s", r)
	}
	if r := e.do("POST", "/api/v1/role-bindings", map[string]any{"role": "nope", "group": "ci"}); r.status != http.StatusNotFound {
		t.Errorf("binding an unknown role: %s", r)
	}
	e.must(e.do("DELETE", "/api/v1/role-bindings/"+b.ID, nil), http.StatusNoContent, nil)
	var k apiv1.APIKeyCreated
	e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": "ci"}), http.StatusCreated, &k)
	e.must(e.do("DELETE", "/api/v1/api-keys/"+k.ID, nil), http.StatusNoContent, nil)

	for action, want := range map[string]string{"role.create": `"deployer"`, "role_binding.create": `"after"`, "role_binding.delete": `"before"`,
		"api_key.create": `"ci"`, "api_key.revoke": `"revoked_at"`} {
		all := events(action)
		evs := slices.DeleteFunc(slices.Clone(all), func(ev apiv1.AuditEvent) bool { return ev.Outcome != "success" })
		if action == "role_binding.create" && len(all)-len(evs) != 2 {
			t.Errorf("the two refused bindings are not audited as failed attempts: %+v", all)
		}
		if len(evs) != 1 {
			t.Errorf("%s: %d events, want 1: %+v", action, len(evs), evs)
			continue
		}
		if ev := evs[0]; ev.Actor != "api_key::admin" || ev.Outcome != "success" || !strings.Contains(string(ev.Change), want) ||
			strings.Contains(string(ev.Change), k.Token) {
			t.Errorf("%s: %+v change %s", action, ev, ev.Change)
		}
	}
	if evs := events("role_binding.create"); len(evs) == 1 && !strings.Contains(string(evs[0].Change), `"ci"`) {
		t.Errorf("binding event lacks the actor: %s", evs[0].Change)
	}
}

// TestDomainAuditInTransaction: every kind of change records one event,
// in the change's transaction, with before/after and never a secret; a
// change that fails records no success event.
func TestDomainAuditInTransaction(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(1)
	e.must(e.do("PUT", "/api/v1/stacks/"+f.stack+"/env/DB_PASSWORD", map[string]any{"value": "hunter2-secret", "secret": true}), http.StatusOK, nil)
	e.must(e.do("PATCH", "/api/v1/stacks/"+f.stack, map[string]any{"description": "new"}), http.StatusOK, nil)
	e.must(e.do("PUT", "/api/v1/contexts/"+f.context+"/env/TOKEN", map[string]any{"value": "ctx-secret-value", "secret": true}), http.StatusOK, nil)
	e.must(e.do("PATCH", "/api/v1/webhooks/"+f.webhook, map[string]any{"secret": "hmac-secret-value"}), http.StatusOK, nil)
	// Failing changes: a stack in a missing space, a stale state write.
	if r := e.do("POST", "/api/v1/stacks", map[string]any{"id": "ghost", "space": "nowhere", "repository": pinnedRepo}); r.status != http.StatusBadRequest {
		t.Errorf("stack in a missing space: %s", r)
	}
	var l apiv1.List[apiv1.AuditEvent]
	e.must(e.do("GET", "/api/v1/audit/events?limit=1000", nil), http.StatusOK, &l)
	count := map[string]int{}
	for _, ev := range l.Items {
		// The domain's own event has before/after; the API's generic one
		// (written after the transaction) has none.
		if ev.Outcome == "success" && (strings.Contains(string(ev.Change), `"after"`) || strings.Contains(string(ev.Change), `"before"`)) {
			count[ev.Action]++
		}
		for _, secret := range []string{"hunter2-secret", "ctx-secret-value", "hmac-secret-value", "s3cret-s3cret"} {
			if strings.Contains(string(ev.Change), secret) {
				t.Errorf("%s holds a secret: %s", ev.Action, ev.Change)
			}
		}
		if ev.Action == "stack.update" && (!strings.Contains(string(ev.Change), `"before"`) || !strings.Contains(string(ev.Change), `"new"`)) {
			t.Errorf("stack.update change: %s", ev.Change)
		}
		if ev.Action == "stack.env.set" && !strings.Contains(string(ev.Change), "DB_PASSWORD") {
			t.Errorf("stack.env.set change: %s", ev.Change)
		}
	}
	// The fixture made one of each; each change is recorded once (the
	// domain's event, not also the API's generic one).
	for _, action := range []string{"space.create", "stack.create", "stack.update", "stack.env.set", "context.create", "context.env.set",
		"worker_pool.create", "webhook.create", "webhook.update", "state.write", "policy.create", "run.trigger"} {
		if count[action] != 1 {
			t.Errorf("%s: %d success events, want 1", action, count[action])
		}
	}
	for _, ev := range l.Items {
		if ev.Action == "stack.create" && ev.Outcome == "success" && ev.SubjectID == "ghost" {
			t.Errorf("a failed create left a success event: %+v", ev)
		}
	}
}

// TestRBACEscalation: the ways a holder of some actions could give itself
// more are closed.
func TestRBACEscalation(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(1)
	// A space admin of a child may not switch inherit on (it would open
	// the parent's contexts, pools and read access to it).
	child := e.actor("child-admin", f.space, []string{auth.SpaceWrite, auth.SpaceAdmin, auth.SpaceRead})
	if r := e.as(child, "PATCH", "/api/v1/spaces/"+f.space, map[string]any{"inherit": true}); r.status != http.StatusForbidden ||
		!strings.Contains(string(r.body), "space:admin in space root") {
		t.Errorf("child admin turning inherit on: %s", r)
	}
	if r := e.as(child, "PATCH", "/api/v1/spaces/"+f.space, map[string]any{"description": "fine"}); r.status != http.StatusOK {
		t.Errorf("child admin changing the description: %s", r)
	}
	e.must(e.do("PATCH", "/api/v1/spaces/"+f.space, map[string]any{"inherit": true}), http.StatusOK, nil)
	// role:manage grants only what its holder holds.
	rm := e.actor("role-manager", space.Root, []string{auth.RoleManage, auth.SpaceRead})
	for _, role := range []string{auth.RoleAdmin, auth.RoleWriter} {
		if r := e.as(rm, "POST", "/api/v1/role-bindings", map[string]any{"role": role, "space": space.Root, "group": "mine"}); r.status != http.StatusForbidden {
			t.Errorf("role manager granting %s: %s", role, r)
		}
	}
	if r := e.as(rm, "POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleReader, "space": f.space, "group": "mine"}); r.status != http.StatusForbidden {
		t.Errorf("role manager granting space-reader (it lacks stack:state-read): %s", r)
	}
	if r := e.as(rm, "POST", "/api/v1/role-bindings", map[string]any{"role": f.role, "space": f.space, "group": "mine"}); r.status != http.StatusCreated {
		t.Errorf("role manager granting what it holds: %s", r)
	}
	// Unbinding follows the same rule: a role manager of the space may
	// not remove a binding more powerful than itself.
	trm := e.actor("team-role-manager", f.space, []string{auth.RoleManage, auth.SpaceRead})
	var strong, weak apiv1.RoleBinding
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "space": f.space, "group": "team-admins"}), http.StatusCreated, &strong)
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": f.role, "space": f.space, "group": "team-readers"}), http.StatusCreated, &weak)
	if r := e.as(trm, "DELETE", "/api/v1/role-bindings/"+strong.ID, nil); r.status != http.StatusForbidden ||
		!strings.Contains(string(r.body), "may not remove role space-admin") {
		t.Errorf("role manager removing a space-admin binding: %s", r)
	}
	if r := e.as(trm, "DELETE", "/api/v1/role-bindings/"+weak.ID, nil); r.status != http.StatusNoContent {
		t.Errorf("role manager removing a binding of what it holds: %s", r)
	}
	var rootAdmin apiv1.RoleBinding
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleAdmin, "space": space.Root, "group": "admins"}), http.StatusCreated, &rootAdmin)
	if r := e.as(rm, "DELETE", "/api/v1/role-bindings/"+rootAdmin.ID, nil); r.status != http.StatusForbidden {
		t.Errorf("role manager removing an admin binding: %s", r)
	}
	e.must(e.do("DELETE", "/api/v1/role-bindings/"+strong.ID, nil), http.StatusNoContent, nil)
	e.must(e.do("DELETE", "/api/v1/role-bindings/"+rootAdmin.ID, nil), http.StatusNoContent, nil)
	// LOGIN policies (which make admins) are written by admins only.
	pc := e.actor("policy-writer", space.Root, []string{auth.PolicyCreate, auth.SpaceRead})
	r := e.as(pc, "POST", "/api/v1/policies", map[string]any{"id": "let-me-in", "type": "LOGIN", "body": "package spacelift\nadmin := true\n"})
	if r.status != http.StatusForbidden || !strings.Contains(string(r.body), "LOGIN") {
		t.Errorf("policy:create holder writing a LOGIN policy: %s", r)
	}
	// A LOGIN policy outside the root space would never apply: refused.
	r = e.do("POST", "/api/v1/policies", map[string]any{"id": "login-team", "type": "LOGIN", "space": f.space, "body": "package spacelift\nallow := true\n"})
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "root space") {
		t.Errorf("a LOGIN policy in space %s: %s", f.space, r)
	}
	// A space holding role bindings cannot be deleted (they would apply to
	// a later space of the same id).
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "short-lived"}), http.StatusCreated, nil)
	var b apiv1.RoleBinding
	e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": auth.RoleReader, "space": "short-lived", "group": "g"}), http.StatusCreated, &b)
	if r := e.do("DELETE", "/api/v1/spaces/short-lived", nil); r.status != http.StatusConflict || !strings.Contains(string(r.body), "role bindings") {
		t.Errorf("deleting a space with bindings: %s", r)
	}
	e.must(e.do("DELETE", "/api/v1/role-bindings/"+b.ID, nil), http.StatusNoContent, nil)
	e.must(e.do("DELETE", "/api/v1/spaces/short-lived", nil), http.StatusNoContent, nil)
	// A pool in a hidden space is answered as missing, not named.
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "secret-team"}), http.StatusCreated, nil)
	e.must(e.do("POST", "/api/v1/worker-pools", map[string]any{"id": "secret-pool", "space": "secret-team"}), http.StatusCreated, nil)
	sc := e.actor("stack-creator", f.space, []string{auth.StackCreate, auth.SpaceRead})
	r = e.as(sc, "POST", "/api/v1/stacks", map[string]any{"id": "mine", "space": f.space, "repository": pinnedRepo, "worker_pool": "secret-pool"})
	if r.status != http.StatusBadRequest || strings.Contains(string(r.body), "secret-team") {
		t.Errorf("stack on a hidden pool: %s", r)
	}
	// Moving a stack the caller sees to a space it cannot see: the space
	// is answered as missing, in the same words as one that does not
	// exist, and the stack stays where it was.
	sa := e.actor("team-admin", f.space, []string{auth.StackCreate, auth.StackUpdate, auth.SpaceRead})
	for _, target := range []string{"secret-team", "no-such-space"} {
		r = e.as(sa, "PATCH", "/api/v1/stacks/"+f.stack, map[string]any{"space": target})
		if d := wantError(t, r, http.StatusNotFound, "not_found"); d.Message != fmt.Sprintf("space %q not found", target) {
			t.Errorf("moving a stack to %s: %s", target, r)
		}
	}
	var moved apiv1.Stack
	e.must(e.do("GET", "/api/v1/stacks/"+f.stack, nil), http.StatusOK, &moved)
	if moved.Space != f.space {
		t.Errorf("a refused move left the stack in %s", moved.Space)
	}
}
