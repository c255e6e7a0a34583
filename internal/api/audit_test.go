package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// auditEnv is the API with its audit trail and middleware, over SQLite.
type auditEnv struct {
	*apiEnv
	db    *db.DB
	audit *audit.Service
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	e := &auditEnv{apiEnv: &apiEnv{t: t, stacks: stack.NewService(d, box), runs: run.NewService(d, events.NewHub(), box, log),
		state: state.NewService(d, box), logs: logs}, db: d, audit: audit.NewService(d, log)}
	e.runs.OnTerminal = func(ctx context.Context, r run.Run) error { return e.state.ReleaseRun(ctx, r.ID) }
	keys := auth.NewKeys(d)
	if e.token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	a := &api.API{Spaces: spaces, Stacks: e.stacks, Runs: e.runs, State: e.state, Keys: keys, Log: log, Audit: e.audit,
		Head: func(ctx context.Context, repo, branch string) (string, error) { return "", errors.New("unreachable") }}
	mux := http.NewServeMux()
	a.Routes(mux)
	// A handler that records its own, specific event, as domain services
	// will: the middleware must not add a second one.
	mux.HandleFunc("POST /api/v1/test/specific", func(w http.ResponseWriter, r *http.Request) {
		audit.SetActor(r.Context(), "api_key::admin", nil)
		if _, err := e.audit.Record(r.Context(), audit.Event{Action: "test.specific", SubjectType: "test", SubjectID: "x"}); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ad := httpx.Adapter{Log: log}
	srv := httptest.NewServer(httpx.WithRequestID(ad.Recover(a.Audited(mux))))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Cleanup(func() {
		if l := logs.String(); strings.Contains(l, "request failed") || strings.Contains(l, "audit") {
			t.Errorf("the server logged errors:\n%s", l)
		}
	})
	return e
}

// events returns the whole trail, oldest first.
func (e *auditEnv) events() []audit.Event {
	e.t.Helper()
	var out []audit.Event
	if err := e.audit.Each(context.Background(), audit.Filter{}, func(ev audit.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// since returns the events after the first n.
func (e *auditEnv) since(n int) []audit.Event {
	e.t.Helper()
	return e.events()[n:]
}

func TestAuditMiddleware(t *testing.T) {
	e := newAuditEnv(t)
	var st apiv1.Stack
	r := e.do("POST", "/api/v1/stacks", map[string]any{"id": "web", "repository": testRepo})
	e.must(r, http.StatusCreated, &st)
	evs := e.events()
	if len(evs) != 1 {
		t.Fatalf("after one create: %+v", evs)
	}
	ev := evs[0]
	if ev.Action != "stack.create" || ev.SubjectType != "stack" || ev.SubjectID != "web" || ev.Actor != "api_key::admin" ||
		ev.Outcome != audit.Success || ev.SourceIP != "127.0.0.1" || ev.RequestID != r.header.Get("X-Request-Id") ||
		ev.RequestID == "" || len(ev.Change) != 0 {
		t.Errorf("create event = %+v", ev)
	}

	// Reads leave no event.
	n := len(e.events())
	e.must(e.do("GET", "/api/v1/stacks", nil), http.StatusOK, nil)
	e.must(e.do("GET", "/api/v1/stacks/web", nil), http.StatusOK, nil)
	if got := e.since(n); len(got) != 0 {
		t.Errorf("GETs recorded %+v", got)
	}

	// One event per mutating request, with its action, subject and
	// outcome; never the body.
	tests := []struct {
		method, path string
		body         any
		status       int
		action, id   string
		outcome      string
		change       string
	}{
		{"PATCH", "/api/v1/stacks/web", map[string]any{"description": "d"}, 200, "stack.update", "web", audit.Success, ""},
		{"PATCH", "/api/v1/stacks/nope", map[string]any{"description": "d"}, 404, "stack.update", "nope", audit.Failed, ""},
		{"PUT", "/api/v1/stacks/web/env/TF_VAR_pw", map[string]any{"value": "hunter2", "secret": true}, 200, "stack.env.set", "web", audit.Success, `{"path":{"name":"TF_VAR_pw"}}`},
		{"DELETE", "/api/v1/stacks/web/env/TF_VAR_pw", nil, 204, "stack.env.delete", "web", audit.Success, `{"path":{"name":"TF_VAR_pw"}}`},
		{"POST", "/api/v1/runs/run-nope/confirm", nil, 404, "run.confirm", "run-nope", audit.Failed, ""},
		{"POST", "/api/v1/spaces", map[string]any{"id": "prod", "name": "Prod"}, 201, "space.create", "prod", audit.Success, ""},
		{"LOCK", "/api/v1/stacks/web/tfstate", `{"ID":"lock-1"}`, 200, "state.lock", "web", audit.Success, ""},
		{"POST", "/api/v1/stacks/web/tfstate?ID=lock-1", stateDoc(1, "lin", 0), 200, "state.write", "web", audit.Success, ""},
		{"GET", "/api/v1/stacks/web/tfstate", nil, 200, "state.download", "web", audit.Success, ""},
		{"UNLOCK", "/api/v1/stacks/web/tfstate", `{"ID":"lock-1"}`, 200, "state.unlock", "web", audit.Success, ""},
		{"LOCK", "/api/v1/stacks/web/tfstate", `{"ID":"lock-2"}`, 200, "state.lock", "web", audit.Success, ""},
		{"UNLOCK", "/api/v1/stacks/web/tfstate", "", 200, "state.unlock", "web", audit.Success, ""}, // Terraform's force-unlock
		{"DELETE", "/api/v1/stacks/web", nil, 204, "stack.delete", "web", audit.Success, ""},
	}
	for _, tt := range tests {
		n := len(e.events())
		r := e.do(tt.method, tt.path, tt.body)
		if r.status != tt.status {
			t.Fatalf("%s %s = %s, want %d", tt.method, tt.path, r, tt.status)
		}
		got := e.since(n)
		if len(got) != 1 {
			t.Errorf("%s %s recorded %d events: %+v", tt.method, tt.path, len(got), got)
			continue
		}
		ev := got[0]
		if ev.Action != tt.action || ev.SubjectID != tt.id || ev.Outcome != tt.outcome || string(ev.Change) != tt.change ||
			ev.Actor != "api_key::admin" {
			t.Errorf("%s %s: event %+v, want %s %s %s %s", tt.method, tt.path, ev, tt.action, tt.id, tt.outcome, tt.change)
		}
	}
	for _, ev := range e.events() {
		if strings.Contains(string(ev.Change), "hunter2") || strings.Contains(string(ev.Change), "lineage") {
			t.Errorf("an event holds a request body: %+v", ev)
		}
	}

	// A handler that records its own event gets no second one.
	n = len(e.events())
	e.must(e.do("POST", "/api/v1/test/specific", nil), http.StatusNoContent, nil)
	if got := e.since(n); len(got) != 1 || got[0].Action != "test.specific" || got[0].RequestID == "" || got[0].SourceIP == "" {
		t.Errorf("specific event: %+v", got)
	}

	// Worker protocol requests are not this middleware's business, and
	// requests without credentials are no event.
	n = len(e.events())
	e.send(request{method: "POST", path: "/api/worker/v1/register"})
	wantError(t, e.send(request{method: "POST", path: "/api/v1/stacks"}), http.StatusUnauthorized, "unauthenticated")
	if got := e.since(n); len(got) != 0 {
		t.Errorf("recorded %+v", got)
	}
	if v, err := e.audit.Verify(context.Background()); err != nil || !v.OK {
		t.Errorf("Verify = %+v, %v", v, err)
	}
}

func TestAuditFailedAuthentication(t *testing.T) {
	e := newAuditEnv(t)
	// A burst of bad tokens from one address: one event, not a flood.
	for range 5 {
		wantError(t, e.send(request{method: "GET", path: "/api/v1/stacks", token: "gnt_not-a-real-token-at-all"}), http.StatusUnauthorized, "unauthenticated")
		wantError(t, e.send(request{method: "POST", path: "/api/v1/stacks", token: "gnt_not-a-real-token-at-all"}), http.StatusUnauthorized, "unauthenticated")
	}
	evs := e.events()
	if len(evs) != 1 {
		t.Fatalf("10 failed authentications in a burst recorded %d events: %+v", len(evs), evs)
	}
	ev := evs[0]
	if ev.Action != audit.AuthFailedAction || ev.Actor != audit.Unknown || ev.Outcome != audit.Denied ||
		ev.SourceIP != "127.0.0.1" || !strings.Contains(string(ev.Change), `"reason":"invalid API token"`) {
		t.Errorf("event = %+v", ev)
	}
	if strings.Contains(string(ev.Change), "not-a-real-token") {
		t.Errorf("the event holds the token: %s", ev.Change)
	}
}

func TestAuditAPI(t *testing.T) {
	e := newAuditEnv(t)
	for _, id := range []string{"a", "b", "c"} {
		e.createStack(id, nil)
	}
	e.must(e.do("DELETE", "/api/v1/stacks/b", nil), http.StatusNoContent, nil)

	// List: newest first, filters, cursor.
	var l apiv1.List[apiv1.AuditEvent]
	e.must(e.do("GET", "/api/v1/audit/events?limit=3", nil), http.StatusOK, &l)
	if len(l.Items) != 3 || l.Items[0].Seq != 4 || l.Items[0].Action != "stack.delete" || l.NextCursor == "" {
		t.Fatalf("first page = %+v", l)
	}
	if ev := l.Items[0]; ev.Hash == "" || ev.PrevHash != l.Items[1].Hash || ev.Roles == nil || ev.At.IsZero() {
		t.Errorf("event = %+v", ev)
	}
	cursor := l.NextCursor
	l = apiv1.List[apiv1.AuditEvent]{}
	e.must(e.do("GET", "/api/v1/audit/events?limit=3&cursor="+cursor, nil), http.StatusOK, &l)
	if len(l.Items) != 1 || l.Items[0].Seq != 1 || l.Items[0].PrevHash != audit.ZeroHash || l.NextCursor != "" {
		t.Fatalf("second page = %+v", l)
	}
	l = apiv1.List[apiv1.AuditEvent]{}
	q := url.Values{"action": {"stack.create"}, "subject_type": {"stack"}, "subject_id": {"c"}, "actor": {"api_key::admin"},
		"since": {"2000-01-01T00:00:00Z"}, "until": {"2999-01-01T00:00:00Z"}}
	e.must(e.do("GET", "/api/v1/audit/events?"+q.Encode(), nil), http.StatusOK, &l)
	if len(l.Items) != 1 || l.Items[0].SubjectID != "c" {
		t.Errorf("filtered = %+v", l)
	}
	wantError(t, e.do("GET", "/api/v1/audit/events?since=yesterday", nil), http.StatusBadRequest, "invalid")
	wantError(t, e.do("GET", "/api/v1/audit/events?cursor=x", nil), http.StatusBadRequest, "invalid")
	wantError(t, e.send(request{method: "GET", path: "/api/v1/audit/events"}), http.StatusUnauthorized, "unauthenticated")

	// Export: everything, oldest first.
	r := e.do("GET", "/api/v1/audit/export", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export = %s %v", r, r.header)
	}
	lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
	if len(lines) != 4 {
		t.Fatalf("export has %d lines:\n%s", len(lines), r.body)
	}
	for i, line := range lines {
		var ev apiv1.AuditEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Seq != int64(i+1) {
			t.Errorf("line %d = %s (%v)", i, line, err)
		}
	}
	r = e.do("GET", "/api/v1/audit/export?format=csv&action=stack.*", nil)
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if r.status != 200 || err != nil || len(rows) != 5 || rows[0][0] != "seq" || rows[1][0] != "1" || rows[4][6] != "stack.delete" {
		t.Fatalf("csv export = %s, %v: %q", r, err, rows)
	}
	wantError(t, e.do("GET", "/api/v1/audit/export?format=xml", nil), http.StatusBadRequest, "invalid")

	// Verify: intact; the three exports (one refused) were recorded too.
	var v apiv1.AuditVerification
	e.must(e.do("POST", "/api/v1/audit/verify", nil), http.StatusOK, &v)
	if !v.OK || v.Checked != 7 || v.HeadSeq != 7 || v.BrokenAt != 0 || v.Reason != "" {
		t.Fatalf("verify = %+v", v)
	}
	// Someone edits a row in the database: verify names it.
	if _, err := e.db.Exec(context.Background(), `UPDATE audit_events SET actor = 'api_key::someone-else' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	e.must(e.do("POST", "/api/v1/audit/verify", nil), http.StatusOK, &v)
	if v.OK || v.BrokenAt != 2 || !strings.Contains(v.Reason, "hash mismatch") {
		t.Fatalf("verify after tampering = %+v", v)
	}
}
