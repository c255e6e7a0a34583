package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// auditRoutes registers the audit trail: list, export and verify.
func (a *API) auditRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/audit/events", auth.AuditRead, a.listAuditEvents)
	r.Handle("GET /api/v1/audit/export", auth.AuditRead, a.exportAuditEvents)
	r.Handle("POST /api/v1/audit/verify", auth.AuditRead, a.verifyAudit)
}

// auditReader returns the audit service once p may read the trail.
func (a *API) auditReader(p auth.Principal) (*audit.Service, error) {
	if a.Audit == nil {
		return nil, errs.E(errs.Unavailable, "the audit trail is not enabled on this server")
	}
	if err := auth.Authorize(p, auth.AuditRead, space.Root); err != nil {
		return nil, err
	}
	return a.Audit, nil
}

// auditFilter reads the filters shared by list and export.
func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	f := audit.Filter{Actor: q.Get("actor"), Action: q.Get("action"), SubjectType: q.Get("subject_type"),
		SubjectID: q.Get("subject_id"), Space: q.Get("space")}
	var err error
	if f.Since, err = queryTime("since", q.Get("since")); err != nil {
		return f, err
	}
	if f.Until, err = queryTime("until", q.Get("until")); err != nil {
		return f, err
	}
	return f, nil
}

// queryTime parses the RFC 3339 time v of query parameter name ("" is the
// zero time).
func queryTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, errs.E(errs.Invalid, "%s must be an RFC 3339 time such as 2026-01-31T00:00:00Z, got %q", name, v)
	}
	return t, nil
}

func auditEventOut(ev audit.Event) apiv1.AuditEvent {
	return apiv1.AuditEvent{Seq: ev.Seq, At: ev.At.UTC(), Actor: ev.Actor, Roles: orNone(ev.Roles), SourceIP: ev.SourceIP,
		RequestID: ev.RequestID, Action: ev.Action, SubjectType: ev.SubjectType, SubjectID: ev.SubjectID,
		Space: ev.Space, Change: ev.Change, Outcome: ev.Outcome, PrevHash: ev.PrevHash, Hash: ev.Hash}
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (a *API) listAuditEvents(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	svc, err := a.auditReader(p)
	if err != nil {
		return err
	}
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	var before int64
	if cursor != "" {
		if before, err = strconv.ParseInt(cursor, 10, 64); err != nil || before < 1 {
			return errs.E(errs.Invalid, "cursor %q is not a next_cursor of this list", cursor)
		}
	}
	evs, next, err := svc.List(r.Context(), f, before, limit)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.AuditEvent]{Items: []apiv1.AuditEvent{}}
	for _, ev := range evs {
		out.Items = append(out.Items, auditEventOut(ev))
	}
	if next > 0 {
		out.NextCursor = nextCursor(r, strconv.FormatInt(next, 10))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// auditCSVHeader is the header row of the CSV export.
var auditCSVHeader = []string{"seq", "at", "actor", "roles", "source_ip", "request_id", "action",
	"subject_type", "subject_id", "space", "change", "outcome", "prev_hash", "hash"}

func (a *API) exportAuditEvents(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	svc, err := a.auditReader(p)
	if err != nil {
		return err
	}
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	var write func(ev apiv1.AuditEvent) error
	bw := bufio.NewWriterSize(w, 32<<10)
	switch format {
	case "", "jsonl":
		format = "jsonl"
		enc := json.NewEncoder(bw)
		// change exactly as stored (and hashed): not re-escaped.
		enc.SetEscapeHTML(false)
		write = func(ev apiv1.AuditEvent) error { return enc.Encode(ev) }
	case "csv":
		cw := csv.NewWriter(bw)
		write = func(ev apiv1.AuditEvent) error {
			if err := cw.Write([]string{strconv.FormatInt(ev.Seq, 10), ev.At.Format(time.RFC3339Nano), ev.Actor,
				strings.Join(ev.Roles, ";"), ev.SourceIP, ev.RequestID, ev.Action, ev.SubjectType, ev.SubjectID,
				ev.Space, string(ev.Change), ev.Outcome, ev.PrevHash, ev.Hash}); err != nil {
				return err
			}
			cw.Flush()
			return cw.Error()
		}
		defer func() { cw.Flush() }()
	default:
		return errs.E(errs.Invalid, "format must be jsonl or csv, got %q", format)
	}
	started := false
	start := func() error {
		started = true
		if format == "csv" {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			return csv.NewWriter(bw).WriteAll([][]string{auditCSVHeader})
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		return nil
	}
	err = svc.Each(r.Context(), f, func(ev audit.Event) error {
		if !started {
			if err := start(); err != nil {
				return err
			}
		}
		return write(auditEventOut(ev))
	})
	if err != nil && !started {
		return err // nothing sent yet: an error answer
	}
	if err != nil {
		// Mid-stream: the status is sent; cut the answer short so the
		// client sees a broken transfer, not a complete export.
		a.Log.Error("audit export failed", "request_id", httpx.RequestID(r.Context()), "err", err)
		panic(http.ErrAbortHandler)
	}
	if !started {
		if err := start(); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	svc, err := a.auditReader(p)
	if err != nil {
		return err
	}
	v, err := svc.Verify(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, apiv1.AuditVerification{OK: v.OK, Checked: v.Checked, HeadSeq: v.HeadSeq,
		HeadHash: v.HeadHash, BrokenAt: v.BrokenAt, Reason: v.Reason})
	return nil
}

// auditRecorder records an event in the caller's transaction for the
// stores of package auth (auth.Recorder).
func (a *API) auditRecorder(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error {
	change, err := audit.NewChange(before, after)
	if err != nil {
		return err
	}
	_, err = a.Audit.Record(ctx, audit.Event{Action: action, SubjectType: subjectType, SubjectID: subjectID, Space: space, Change: change})
	return err
}

// noteAuth tells the audit trail who the caller of r is, or that the
// credentials it presented did not work. A request without credentials is
// no security event.
// presentedCredentials reports whether r brings credentials: a bearer
// token (or basic-auth password) or a session cookie. Only those that do
// and fail are audited and throttled (a request with none is just told).
func presentedCredentials(r *http.Request) bool {
	if httpx.BearerToken(r) != "" {
		return true
	}
	_, err := r.Cookie(sessionCookie)
	return err == nil
}

// throttled says that the failure is answered 429 (the source failed too
// often): it is counted, not written (see Audited).
func noteAuth(r *http.Request, p auth.Principal, err error, throttled bool) {
	switch {
	case err == nil:
		roles := p.Perms.Roles()
		if p.Admin {
			roles = append([]string{"admin"}, roles...)
		}
		audit.SetActor(r.Context(), p.String(), roles)
	case errs.Is(err, errs.Unauthenticated) && presentedCredentials(r):
		audit.SetAuthFailure(r.Context(), errs.Public(err))
		if throttled {
			audit.SetAuthThrottled(r.Context())
		}
	}
}

// Audited records, for every request under /api/v1 that changes
// something, one audit event after mux has served it (see auditActions),
// unless the handler recorded its own event; and, rate-limited per source
// IP, every request whose credentials did not work. Requests of the worker
// protocol and other paths pass through. With a.Audit nil it returns mux.
//
// The event is written in its own transaction after the handler's, so a
// crash between the two loses it: domain services that record their own
// event in the change's transaction close that gap.
func (a *API) Audited(mux *http.ServeMux) http.Handler {
	if a.Audit == nil {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			mux.ServeHTTP(w, r)
			return
		}
		ctx := audit.WithRequest(r.Context(), audit.Request{SourceIP: sourceIP(r), RequestID: httpx.RequestID(r.Context())})
		r = r.WithContext(ctx)
		_, pattern := mux.Handler(r)
		ra, audited := auditedRoute(r.Method, pattern)
		read, isRead := refusedRead(r.Method, pattern)
		rec := &auditRecorder{ResponseWriter: w, captureID: audited && ra.idFrom == fromResponse}
		if audited || isRead {
			w = rec
		}
		mux.ServeHTTP(w, r)
		// A handler may have gone on in another goroutine; use a context of
		// our own for the event.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if reason, failed := audit.AuthFailure(ctx); failed {
			if audit.AuthThrottled(ctx) {
				// Refused (429) for the source's earlier failures: counted
				// in memory, reported in the next event of the source (no
				// write per throttled request: the throttle protects the
				// server).
				a.Audit.CountAuthFailure(rctx)
				return
			}
			if _, err := a.Audit.RecordAuthFailure(rctx, reason); err != nil {
				a.Log.Error("recording a failed authentication in the audit trail failed", "request_id", httpx.RequestID(ctx), "err", err)
			}
			return
		}
		if !audited && isRead && rec.status == http.StatusForbidden {
			// Other reads are not recorded, but a refused one is.
			ra, audited = read, true
		}
		req, _ := audit.RequestFrom(ctx)
		if !audited || req.Actor == "" || audit.Recorded(ctx) {
			return
		}
		ev := ra.event(pattern, r.URL.Path, rec)
		addNotes(ctx, &ev)
		if _, err := a.Audit.Record(rctx, ev); err != nil {
			a.Log.Error("recording an audit event failed", "request_id", httpx.RequestID(ctx),
				"method", r.Method, "path", r.URL.Path, "err", err)
		}
	})
}

// sourceIP is the address the request came from: the peer's, or the
// client's behind a trusted proxy (httpx.WithClientIP, --trusted-proxies).
func sourceIP(r *http.Request) string { return httpx.ClientIP(r) }

// auditRecorder notes the status of an answer, and the "id" of a 2xx JSON
// answer when asked to (the id of what a create made). It keeps nothing
// else of the body.
type auditRecorder struct {
	http.ResponseWriter
	status    int
	captureID bool
	body      bytes.Buffer
}

// maxIDBody bounds how much of an answer is kept to read its id.
const maxIDBody = 256 << 10

func (w *auditRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.captureID && w.body.Len()+len(b) <= maxIDBody {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *auditRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// responseID returns the top-level "id" of the answer, if any.
func (w *auditRecorder) responseID() string {
	if !w.captureID || w.status < 200 || w.status > 299 {
		return ""
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(w.body.Bytes(), &v) != nil {
		return ""
	}
	return v.ID
}

// outcome maps an HTTP status to an audit outcome.
func outcome(status int) string {
	switch {
	case status == 0 || (status >= 200 && status <= 299):
		return audit.Success
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return audit.Denied
	}
	return audit.Failed
}

// event makes the generic event of a request to pattern at path.
func (ra routeAudit) event(pattern, path string, rec *auditRecorder) audit.Event {
	params := pathParams(pattern, path)
	ev := audit.Event{Action: ra.action, SubjectType: ra.subject, Outcome: outcome(rec.status)}
	if ra.idFrom == fromResponse {
		ev.SubjectID = rec.responseID()
	} else {
		ev.SubjectID = params[ra.idFrom]
		delete(params, ra.idFrom)
	}
	if ra.subject == "space" {
		ev.Space = ev.SubjectID
	}
	if len(params) > 0 {
		// The other path values (the stack of an attachment, the name of a
		// variable) say what was touched; never the body.
		ev.Change, _ = json.Marshal(map[string]any{"path": params})
	}
	return ev
}

// noteStack tells the generic event of r, written should the change be
// refused or fail, the stack the body named, and its space once known.
func noteStack(r *http.Request, sp, stackID string) {
	audit.Note(r.Context(), sp, map[string]string{"stack": truncate.String(stackID, 255)})
}

// noteSpace tells the generic event of r the space of its subject.
func noteSpace(r *http.Request, sp string) { audit.Note(r.Context(), sp, nil) }

// addNotes adds to a generic event what the handler noted (audit.Note):
// the subject's space and the body values naming what was touched, as
// {"request": {...}} next to the path values.
func addNotes(ctx context.Context, ev *audit.Event) {
	sp, values := audit.Noted(ctx)
	if sp != "" && ev.Space == "" {
		ev.Space = sp
	}
	if len(values) == 0 {
		return
	}
	change := map[string]any{"request": values}
	var prev map[string]any
	if len(ev.Change) > 0 && json.Unmarshal(ev.Change, &prev) == nil {
		for k, v := range prev {
			change[k] = v
		}
	}
	ev.Change, _ = json.Marshal(change)
}

// pathParams returns the values of the wildcards of pattern in path.
func pathParams(pattern, path string) map[string]string {
	_, tmpl, _ := strings.Cut(pattern, " ")
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	out := map[string]string{}
	if len(ts) != len(ps) {
		return out
	}
	for i, t := range ts {
		if name, ok := strings.CutPrefix(t, "{"); ok {
			out[strings.TrimSuffix(strings.TrimSuffix(name, "}"), "...")] = ps[i]
		}
	}
	return out
}

// actionRE is the shape of an audit action (package audit checks it too).
var actionRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$`)

// fromResponse, as a routeAudit's idFrom, takes the subject id from the
// "id" of the answer: the id of what a POST created.
const fromResponse = ""

// routeAudit is how a route is audited: its action, the type of its
// subject, and the path wildcard holding the subject id (fromResponse: the
// answer's id).
type routeAudit struct {
	action, subject, idFrom string
}

// auditedRoute returns how a request of method to the route pattern is
// audited: every route but reads (GET, HEAD, OPTIONS), and the reads listed
// in auditActions (state downloads, exports). A changing route missing from
// the table (a test keeps that from happening) is still audited, as
// "<first path segment>.<method>".
func auditedRoute(method, pattern string) (routeAudit, bool) {
	m, path, ok := strings.Cut(pattern, " ")
	if !ok {
		return routeAudit{}, false
	}
	if ra, ok := auditActions[pattern]; ok {
		return ra, true
	}
	if m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || method != m {
		return routeAudit{}, false
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/api/v1/"), "/")
	seg = strings.ReplaceAll(strings.TrimSuffix(seg, "s"), "-", "_")
	return routeAudit{action: fmt.Sprintf("%s.%s", seg, strings.ToLower(m)), subject: seg, idFrom: "id"}, true
}

// refusedRead returns how a read of the route pattern is audited when it
// is refused (403; reads are not recorded otherwise): as
// "<resource>[.<part>...].read" from the literal segments of its path
// ("GET /api/v1/policies/{id}/attachments": policy.attachments.read), the
// subject the resource, its id the {id} wildcard, the other path values
// in the change.
func refusedRead(method, pattern string) (routeAudit, bool) {
	m, path, ok := strings.Cut(pattern, " ")
	if !ok || (m != http.MethodGet && m != http.MethodHead) || (method != m && !(method == http.MethodHead && m == http.MethodGet)) {
		return routeAudit{}, false
	}
	rest, ok := strings.CutPrefix(path, "/api/v1/")
	if !ok {
		return routeAudit{}, false
	}
	var names []string
	for _, seg := range strings.Split(rest, "/") {
		if seg == "" || strings.HasPrefix(seg, "{") {
			continue
		}
		name := strings.ReplaceAll(seg, "-", "_")
		if len(names) == 0 {
			name = singular(name)
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return routeAudit{}, false
	}
	return routeAudit{action: strings.Join(append(names, "read"), "."), subject: names[0], idFrom: "id"}, true
}

// singular turns a resource's plural name singular: policies, stacks,
// worker_pools -> policy, stack, worker_pool.
func singular(name string) string {
	if s, ok := strings.CutSuffix(name, "ies"); ok {
		return s + "y"
	}
	return strings.TrimSuffix(name, "s")
}

// auditActions maps every route that changes something (and the reads
// worth an event) to its audit action. TestAuditActionsCoverRoutes keeps
// it complete.
var auditActions = map[string]routeAudit{
	"POST /api/v1/spaces":        {"space.create", "space", fromResponse},
	"PATCH /api/v1/spaces/{id}":  {"space.update", "space", "id"},
	"DELETE /api/v1/spaces/{id}": {"space.delete", "space", "id"},

	"POST /api/v1/stacks":                             {"stack.create", "stack", fromResponse},
	"PATCH /api/v1/stacks/{id}":                       {"stack.update", "stack", "id"},
	"DELETE /api/v1/stacks/{id}":                      {"stack.delete", "stack", "id"},
	"PUT /api/v1/stacks/{id}/env/{name}":              {"stack.env.set", "stack", "id"},
	"DELETE /api/v1/stacks/{id}/env/{name}":           {"stack.env.delete", "stack", "id"},
	"POST /api/v1/stacks/{id}/runs":                   {"run.trigger", "run", fromResponse},
	"POST /api/v1/stacks/{id}/drift/reconcile":        {"run.trigger", "run", fromResponse},
	"PUT /api/v1/stacks/{id}/drift-detection":         {"stack.drift_detection.set", "stack", "id"},
	"DELETE /api/v1/stacks/{id}/drift-detection":      {"stack.drift_detection.delete", "stack", "id"},
	"POST /api/v1/stacks/{id}/schedules":              {"stack.schedule.create", "stack", "id"},
	"DELETE /api/v1/stacks/{id}/schedules/{schedule}": {"stack.schedule.delete", "stack", "id"},
	"POST /api/v1/stacks/{id}/state/rollback":         {"state.rollback", "stack", "id"},
	"POST /api/v1/stacks/{id}/notify-push":            {"stack.notify-push", "stack", "id"},
	"GET /api/v1/stacks/{id}/tfstate":                 {"state.download", "stack", "id"},
	"POST /api/v1/stacks/{id}/tfstate":                {"state.write", "stack", "id"},
	"LOCK /api/v1/stacks/{id}/tfstate":                {"state.lock", "stack", "id"},
	"UNLOCK /api/v1/stacks/{id}/tfstate":              {"state.unlock", "stack", "id"},
	"GET /api/v1/stacks/{id}/state/versions/{serial}": {"state.download", "stack", "id"},

	"POST /api/v1/stacks/{id}/tasks":    {"task.create", "run", fromResponse},
	"POST /api/v1/runs/{id}/retry":      {"run.retry", "run", "id"},
	"POST /api/v1/roles":                {"role.create", "role", fromResponse},
	"DELETE /api/v1/roles/{id}":         {"role.delete", "role", "id"},
	"POST /api/v1/role-bindings":        {"role_binding.create", "role_binding", fromResponse},
	"DELETE /api/v1/role-bindings/{id}": {"role_binding.delete", "role_binding", "id"},
	"POST /api/v1/runs/{id}/confirm":    {"run.confirm", "run", "id"},
	"POST /api/v1/runs/{id}/discard":    {"run.discard", "run", "id"},
	"POST /api/v1/runs/{id}/cancel":     {"run.cancel", "run", "id"},
	"POST /api/v1/runs/{id}/stop":       {"run.stop", "run", "id"},
	"POST /api/v1/runs/{id}/reviews":    {"run.review", "run", "id"},

	"POST /api/v1/webhooks":                {"webhook.create", "webhook", fromResponse},
	"PATCH /api/v1/webhooks/{id}":          {"webhook.update", "webhook", "id"},
	"DELETE /api/v1/webhooks/{id}":         {"webhook.delete", "webhook", "id"},
	"POST /api/v1/notifications/{id}/read": {"notification.read", "notification", "id"},

	"POST /api/v1/policies":                            {"policy.create", "policy", fromResponse},
	"PATCH /api/v1/policies/{id}":                      {"policy.update", "policy", "id"},
	"DELETE /api/v1/policies/{id}":                     {"policy.delete", "policy", "id"},
	"POST /api/v1/policies/{id}/attachments":           {"policy.attach", "policy", "id"},
	"DELETE /api/v1/policies/{id}/attachments/{stack}": {"policy.detach", "policy", "id"},
	"POST /api/v1/policies/{id}/simulate":              {"policy.simulate", "policy", "id"},
	"POST /api/v1/policies/{id}/replay":                {"policy.replay", "policy", "id"},
	"POST /api/v1/policy-library/{name}/import":        {"policy.import", "policy", fromResponse},

	"POST /api/v1/contexts":                            {"context.create", "context", fromResponse},
	"PATCH /api/v1/contexts/{id}":                      {"context.update", "context", "id"},
	"DELETE /api/v1/contexts/{id}":                     {"context.delete", "context", "id"},
	"PUT /api/v1/contexts/{id}/env/{name}":             {"context.env.set", "context", "id"},
	"DELETE /api/v1/contexts/{id}/env/{name}":          {"context.env.delete", "context", "id"},
	"PUT /api/v1/contexts/{id}/files":                  {"context.file.set", "context", "id"},
	"DELETE /api/v1/contexts/{id}/files":               {"context.file.delete", "context", "id"},
	"POST /api/v1/contexts/{id}/hooks":                 {"context.hook.add", "context", "id"},
	"POST /api/v1/contexts/{id}/attachments":           {"context.attach", "context", "id"},
	"DELETE /api/v1/contexts/{id}/attachments/{stack}": {"context.detach", "context", "id"},

	"POST /api/v1/users/{id}/disable":                      {"user.disable", "user", "id"},
	"POST /api/v1/users/{id}/enable":                       {"user.enable", "user", "id"},
	"POST /api/v1/integrations":                            {"integration.create", "integration", fromResponse},
	"PATCH /api/v1/integrations/{id}":                      {"integration.update", "integration", "id"},
	"DELETE /api/v1/integrations/{id}":                     {"integration.delete", "integration", "id"},
	"POST /api/v1/integrations/{id}/attachments":           {"integration.attach", "integration", "id"},
	"DELETE /api/v1/integrations/{id}/attachments/{stack}": {"integration.detach", "integration", "id"},

	"POST /api/v1/api-keys":        {"api_key.create", "api_key", fromResponse},
	"DELETE /api/v1/api-keys/{id}": {"api_key.revoke", "api_key", "id"},

	"POST /api/v1/worker-pools":                             {"worker_pool.create", "worker_pool", fromResponse},
	"PATCH /api/v1/worker-pools/{id}":                       {"worker_pool.update", "worker_pool", "id"},
	"DELETE /api/v1/worker-pools/{id}":                      {"worker_pool.delete", "worker_pool", "id"},
	"POST /api/v1/worker-pools/{id}/reset":                  {"worker_pool.reset", "worker_pool", "id"},
	"PUT /api/v1/worker-pools/{id}/public-key":              {"worker_pool.set-key", "worker_pool", "id"},
	"POST /api/v1/worker-pools/{id}/workers/{worker}/drain": {"worker.drain", "worker", "worker"},

	// Samples hold what policies were given: plans (raw, for a stack with
	// raw_policy_input), sign-ins.
	"GET /api/v1/policies/{id}/samples":       {"policy.sample.list", "policy", "id"},
	"GET /api/v1/policies/{id}/samples/{key}": {"policy.sample.read", "policy", "id"},

	"GET /api/v1/audit/export":  {"audit.export", "audit", "id"},
	"POST /api/v1/audit/verify": {"audit.verify", "audit", "id"},
}
