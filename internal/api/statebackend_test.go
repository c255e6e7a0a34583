package api_test

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/run"
)

func md5Header(s string) map[string]string {
	sum := md5.Sum([]byte(s))
	return map[string]string{"Content-MD5": base64.StdEncoding.EncodeToString(sum[:])}
}

func lockInfo(id, op string) string {
	b, _ := json.Marshal(map[string]string{"ID": id, "Operation": op, "Who": "tester@host", "Version": "1.10.7", "Path": ""})
	return string(b)
}

// lockConflict is the 423 body: the holder's lock info plus the envelope.
type lockConflict struct {
	ID        string            `json:"ID"`
	Operation string            `json:"Operation"`
	Who       string            `json:"Who"`
	Created   string            `json:"Created"`
	Info      string            `json:"Info"`
	Error     apiv1.ErrorDetail `json:"error"`
}

func wantLocked(t *testing.T, r response, holder string) lockConflict {
	t.Helper()
	if r.status != 423 {
		t.Fatalf("status = %s, want 423", r)
	}
	var c lockConflict
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatalf("423 body %q: %v", r.body, err)
	}
	if c.ID != holder || c.Error.Code != "locked" || c.Error.Message == "" {
		t.Errorf("423 body = %+v, want the holder %s and the locked envelope", c, holder)
	}
	if _, err := time.Parse(time.RFC3339Nano, c.Created); err != nil {
		t.Errorf("Created = %q is not a time OpenTofu can read: %v", c.Created, err)
	}
	return c
}

func TestStateBackendReadWrite(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)

	if r := e.tfstate("GET", "web", "", e.token, "", nil); r.status != 204 || len(r.body) != 0 {
		t.Fatalf("GET with no state = %s, want 204 and no body", r)
	}
	doc := stateDoc(1, "lin-1", 1)
	if r := e.tfstate("POST", "web", "", e.token, doc, md5Header(doc)); r.status != 200 {
		t.Fatalf("POST = %s, want 200", r)
	}
	r := e.tfstate("GET", "web", "", e.token, "", nil)
	if r.status != 200 || string(r.body) != doc {
		t.Fatalf("GET = %s, want the same bytes", r)
	}
	if got, want := r.header.Get("Content-MD5"), md5Header(doc)["Content-MD5"]; got != want {
		t.Errorf("Content-MD5 = %q, want %q", got, want)
	}

	// The same document again is accepted (OpenTofu retries).
	if r := e.tfstate("POST", "web", "", e.token, doc, nil); r.status != 200 {
		t.Errorf("POST of the current document again = %s, want 200", r)
	}

	tests := []struct {
		name   string
		body   string
		header map[string]string
		status int
		code   string
	}{
		{"bad Content-MD5", stateDoc(2, "lin-1", 1), md5Header("something else"), 400, "invalid"},
		{"Content-MD5 not base64", stateDoc(2, "lin-1", 1), map[string]string{"Content-MD5": "%%%"}, 400, "invalid"},
		{"stale serial", stateDoc(0, "lin-1", 1), nil, 409, "conflict"},
		{"other lineage", stateDoc(5, "lin-other", 1), nil, 409, "conflict"},
		{"same serial, other content", stateDoc(1, "lin-1", 3), nil, 409, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, e.tfstate("POST", "web", "", e.token, tt.body, tt.header), tt.status, tt.code)
		})
	}
	if r := e.tfstate("GET", "web", "", e.token, "", nil); string(r.body) != doc {
		t.Errorf("the refused writes changed the state: %s", r)
	}

	newer := stateDoc(2, "lin-1", 0)
	if r := e.tfstate("POST", "web", "", e.token, newer, md5Header(newer)); r.status != 200 {
		t.Fatalf("POST serial 2 = %s", r)
	}
	var versions apiv1.List[apiv1.StateVersion]
	e.must(e.do("GET", "/api/v1/stacks/web/state/versions", nil), 200, &versions)
	if len(versions.Items) != 2 || versions.Items[0].Serial != 2 || !versions.Items[0].Current || versions.Items[1].Current ||
		versions.Items[0].CreatedBy != "api_key::admin" || versions.Items[0].Lineage != "lin-1" {
		t.Errorf("versions = %+v", versions.Items)
	}
	if r := e.do("GET", "/api/v1/stacks/web/state/versions/1", nil); r.status != 200 || string(r.body) != doc {
		t.Errorf("version 1 = %s", r)
	}
}

func TestStateBackendLocking(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)

	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("lock-a", "OperationTypePlan"), nil); r.status != 200 {
		t.Fatalf("LOCK a = %s", r)
	}
	// Locking again under the same ID succeeds.
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("lock-a", "OperationTypePlan"), nil); r.status != 200 {
		t.Errorf("LOCK a again = %s, want 200", r)
	}
	c := wantLocked(t, e.tfstate("LOCK", "web", "", e.token, lockInfo("lock-b", "OperationTypeApply"), nil), "lock-a")
	if c.Operation != "OperationTypePlan" || c.Who != "tester@host" {
		t.Errorf("holder = %+v, want lock a's info", c)
	}

	doc := stateDoc(1, "lin", 0)
	wantLocked(t, e.tfstate("POST", "web", "", e.token, doc, nil), "lock-a")
	wantLocked(t, e.tfstate("POST", "web", "ID=lock-b", e.token, doc, nil), "lock-a")
	if r := e.tfstate("POST", "web", "ID=lock-a", e.token, doc, nil); r.status != 200 {
		t.Errorf("POST under the held lock = %s, want 200", r)
	}

	wantLocked(t, e.tfstate("UNLOCK", "web", "", e.token, lockInfo("lock-b", ""), nil), "lock-a")
	if r := e.tfstate("UNLOCK", "web", "", e.token, lockInfo("lock-a", ""), nil); r.status != 200 {
		t.Fatalf("UNLOCK a = %s", r)
	}
	// Unlocking a state that is not locked succeeds.
	if r := e.tfstate("UNLOCK", "web", "", e.token, lockInfo("lock-a", ""), nil); r.status != 200 {
		t.Errorf("UNLOCK of an unlocked state = %s, want 200", r)
	}
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("lock-b", "OperationTypeApply"), nil); r.status != 200 {
		t.Errorf("LOCK b after unlock = %s", r)
	}
	// A rollback waits for the lock.
	wantError(t, e.do("POST", "/api/v1/stacks/web/state/rollback", map[string]any{"serial": 1}), 423, "locked")
}

func TestStateBackendRunToken(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	rn := e.createRun("web", "TRACKED")
	claimed, err := e.runs.Claim(context.Background(), "", "wkr-test")
	if err != nil || claimed == nil {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	tok := claimed.StateToken
	e.applying(rn.ID, "wkr-test")
	if r := e.tfstate("LOCK", "web", "", tok, lockInfo("run-lock", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("LOCK with the run token = %s", r)
	}
	c := wantLocked(t, e.tfstate("LOCK", "web", "", e.token, lockInfo("person", "OperationTypePlan"), nil), "run-lock")
	if c.Info != "" && !strings.Contains(c.Info, rn.ID) {
		t.Errorf("Info = %q", c.Info)
	}
	doc := stateDoc(1, "lin", 1)
	if r := e.tfstate("POST", "web", "ID=run-lock", tok, doc, nil); r.status != 200 {
		t.Fatalf("POST with the run token = %s", r)
	}
	var versions apiv1.List[apiv1.StateVersion]
	e.must(e.do("GET", "/api/v1/stacks/web/state/versions", nil), 200, &versions)
	if len(versions.Items) != 1 || versions.Items[0].Run != rn.ID || versions.Items[0].CreatedBy != "run::"+rn.ID {
		t.Errorf("versions = %+v, want one written by the run", versions.Items)
	}
	// The run's lock goes with the run.
	if _, err := e.runs.Finish(context.Background(), rn.ID, "wkr-test", false, "done"); err != nil {
		t.Fatal(err)
	}
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("person", "OperationTypePlan"), nil); r.status != 200 {
		t.Errorf("LOCK after the run ended = %s, want the run's lock released", r)
	}
}

func TestStateBackendUnmanagedStack(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("own", map[string]any{"managed_state": false})
	for _, m := range []string{"GET", "POST", "LOCK", "UNLOCK"} {
		body := ""
		switch m {
		case "POST":
			body = stateDoc(1, "lin", 0)
		case "LOCK", "UNLOCK":
			body = lockInfo("x", "")
		}
		wantError(t, e.tfstate(m, "own", "", e.token, body, nil), 409, "conflict")
	}
	// A run of that stack is refused too (its token says so by itself).
	e.createRun("own", "TRACKED")
	claimed, err := e.runs.Claim(context.Background(), "", "wkr-test")
	if err != nil || claimed == nil {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	for _, m := range []string{"GET", "LOCK"} {
		body := ""
		if m == "LOCK" {
			body = lockInfo("x", "")
		}
		wantError(t, e.tfstate(m, "own", "", claimed.StateToken, body, nil), 409, "conflict")
	}
}

func TestOutputs(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	var outs apiv1.List[apiv1.Output]
	e.must(e.do("GET", "/api/v1/stacks/web/outputs", nil), 200, &outs)
	if len(outs.Items) != 0 {
		t.Errorf("outputs with no state = %+v", outs.Items)
	}
	doc := `{"version":4,"serial":1,"lineage":"l","outputs":{"url":{"value":"https://x","type":"string"},"pw":{"value":"s3cret-output","type":"string","sensitive":true}},"resources":[]}`
	if r := e.tfstate("POST", "web", "", e.token, doc, nil); r.status != 200 {
		t.Fatal(r)
	}
	r := e.do("GET", "/api/v1/stacks/web/outputs", nil)
	e.must(r, 200, &outs)
	if len(outs.Items) != 2 || outs.Items[0].Name != "pw" || !outs.Items[0].Sensitive || outs.Items[0].Value != nil ||
		outs.Items[1].Name != "url" || outs.Items[1].Value != "https://x" {
		t.Errorf("outputs = %+v", outs.Items)
	}
	if strings.Contains(string(r.body), "s3cret-output") {
		t.Errorf("a sensitive output value was returned: %s", r.body)
	}
}

// Documents the state backend accepts must not make later reads of the
// stack answer 500.
func TestAcceptedStateNeverBreaksReads(t *testing.T) {
	tests := []struct{ name, doc string }{
		{"outputs not an object", `{"version":4,"serial":1,"lineage":"l","outputs":[],"resources":[]}`},
		{"resources not a list", `{"version":4,"serial":1,"lineage":"l","outputs":{},"resources":{}}`},
		{"format version 3", `{"version":3,"serial":1,"lineage":"l","modules":[]}`},
		// OpenTofu's client-side encryption: serial and lineage, no version.
		{"client-side encrypted", `{"serial":1,"lineage":"l","meta":{"key_provider.pbkdf2.k":"e30="},"encrypted_data":"AAAA","encryption_version":"v0"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAPIEnv(t)
			e.createStack("web", nil)
			r := e.tfstate("POST", "web", "", e.token, tt.doc, nil)
			if r.status != 200 {
				if r.status >= 500 {
					t.Fatalf("POST = %s", r)
				}
				return // refused up front: fine
			}
			for _, rq := range []struct{ method, path string }{
				{"GET", "/api/v1/stacks/web/outputs"},
				{"DELETE", "/api/v1/stacks/web"},
			} {
				if r := e.do(rq.method, rq.path, nil); r.status >= 500 {
					t.Errorf("%s %s = %s, want no server error for a state the backend accepted", rq.method, rq.path, r)
				}
			}
		})
	}
}

// A proposed run's state token only reads; a run may not release a lock
// it does not hold (the 423 answer shows the holder's lock id).
func TestStateBackendRunTokenLimits(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	e.createRun("web", "PROPOSED")
	proposed, err := e.runs.Claim(context.Background(), "", "wkr-1")
	if err != nil || proposed == nil {
		t.Fatalf("Claim = %v, %v", proposed, err)
	}
	if r := e.tfstate("GET", "web", "", proposed.StateToken, "", nil); r.status != 204 && r.status != 200 {
		t.Fatalf("GET with a proposed run's token = %s", r)
	}
	for _, m := range []string{"POST", "LOCK", "UNLOCK"} {
		body := stateDoc(1, "lin", 0)
		if m != "POST" {
			body = lockInfo("x", "")
		}
		wantError(t, e.tfstate(m, "web", "", proposed.StateToken, body, nil), 403, "forbidden")
	}
	// A person's lock: a tracked run's token cannot release it.
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("person", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("LOCK = %s", r)
	}
	e.createRun("web", "TRACKED")
	tracked, err := e.runs.Claim(context.Background(), "", "wkr-2")
	if err != nil || tracked == nil {
		t.Fatalf("Claim = %v, %v", tracked, err)
	}
	wantError(t, e.tfstate("UNLOCK", "web", "", tracked.StateToken, lockInfo("person", ""), nil), 403, "forbidden")
	if r := e.tfstate("UNLOCK", "web", "", e.token, lockInfo("person", ""), nil); r.status != 200 {
		t.Fatalf("the person's UNLOCK = %s", r)
	}
	if r := e.tfstate("LOCK", "web", "", tracked.StateToken, lockInfo("run", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("the run's LOCK = %s", r)
	}
	if r := e.tfstate("UNLOCK", "web", "", tracked.StateToken, lockInfo("run", ""), nil); r.status != 200 {
		t.Fatalf("the run's own UNLOCK = %s", r)
	}
}

// The 423 a person gets shows the lock id of a running apply; with it, the
// person still may not write: the run's lock is the run's. Force-unlocking
// (UNLOCK with the id, stack:unlock) comes first, and the 423 says so.
func TestStateBackendRunLockNotForPeople(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	e.createRun("web", "TRACKED")
	claimed, err := e.runs.Claim(context.Background(), "", "wkr-test")
	if err != nil || claimed == nil {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	e.applying(claimed.Run.ID, "wkr-test")
	if r := e.tfstate("LOCK", "web", "", claimed.StateToken, lockInfo("run-lock", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("the run's LOCK = %s", r)
	}
	doc := stateDoc(1, "lin", 1)
	c := wantLocked(t, e.tfstate("POST", "web", "ID=run-lock", e.token, doc, nil), "run-lock")
	if !strings.Contains(c.Error.Message, "force-unlock") || !strings.Contains(c.Error.Message, claimed.Run.ID) {
		t.Errorf("423 message %q, want it to name the run and say to force-unlock first", c.Error.Message)
	}
	wantLocked(t, e.tfstate("LOCK", "web", "", e.token, lockInfo("run-lock", "OperationTypeApply"), nil), "run-lock")
	if r := e.tfstate("POST", "web", "ID=run-lock", claimed.StateToken, doc, nil); r.status != 200 {
		t.Fatalf("the run's own POST = %s", r)
	}
	if r := e.tfstate("UNLOCK", "web", "", e.token, lockInfo("run-lock", ""), nil); r.status != 200 {
		t.Fatalf("force-unlock = %s", r)
	}
	if r := e.tfstate("POST", "web", "", e.token, stateDoc(2, "lin", 1), nil); r.status != 200 {
		t.Fatalf("POST after the force-unlock = %s", r)
	}
}

// A key that may not roll back is told so (403) before anything about its
// request body (400).
func TestRollbackPermissionBeforeBody(t *testing.T) {
	e := newRBACEnv(t)
	e.createStack("web", nil)
	reader := e.actor("reader", "root", []string{auth.SpaceRead, auth.StateRead})
	roller := e.actor("roller", "root", []string{auth.StateRollback})
	for _, rq := range []request{
		{method: "POST", path: "/api/v1/stacks/web/state/rollback", contentType: "text/plain", body: strings.NewReader(`{"serial":1}`)},
		{method: "POST", path: "/api/v1/stacks/web/state/rollback", contentType: "application/json", body: strings.NewReader(`not json`)},
	} {
		rq.token = reader
		wantError(t, e.send(rq), 403, "forbidden")
		// With the permission, the body is checked.
		rq.token = roller
		wantError(t, e.send(rq), 400, "invalid")
	}
}

// An output that echoes a secret variable (value = var.pw, TF_VAR_pw a
// secret) is not sensitive in the state, but its value is masked for
// everyone, as in the run's log: the stack's own secrets, its contexts'
// secret variables and files. The state itself still has it.
func TestOutputsMaskSecrets(t *testing.T) {
	e := newRBACEnv(t)
	e.createStack("web", nil)
	e.must(e.do("PUT", "/api/v1/stacks/web/env/TF_VAR_pw", map[string]any{"value": "stack-pw-1234", "secret": true}), 200, nil)
	e.must(e.do("PUT", "/api/v1/stacks/web/env/TF_VAR_region", map[string]any{"value": "eu-west-1"}), 200, nil)
	e.must(e.do("POST", "/api/v1/contexts", map[string]any{"id": "shared"}), 201, nil)
	e.must(e.do("PUT", "/api/v1/contexts/shared/env/TF_VAR_db", map[string]any{"value": "ctx-db-5678", "secret": true}), 200, nil)
	e.must(e.do("PUT", "/api/v1/contexts/shared/env/TF_VAR_pin", map[string]any{"value": "90817263", "secret": true}), 200, nil)
	e.must(e.do("PUT", "/api/v1/contexts/shared/files", map[string]any{"path": "key.pem", "secret": true,
		"content": base64.StdEncoding.EncodeToString([]byte("-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----\n"))}), 200, nil)
	e.must(e.do("POST", "/api/v1/contexts/shared/attachments", map[string]any{"stack": "web"}), 200, nil)

	doc := `{"version":4,"serial":1,"lineage":"l","outputs":{
		"pw_echo":{"value":"stack-pw-1234","type":"string"},
		"conn":{"value":"postgres://app:ctx-db-5678@db/app","type":"string"},
		"pin":{"value":90817263,"type":"number"},
		"key_line":{"value":["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"],"type":["list","string"]},
		"region":{"value":"eu-west-1","type":"string"}},"resources":[]}`
	if r := e.tfstate("POST", "web", "", e.token, doc, nil); r.status != 200 {
		t.Fatal(r)
	}
	reader := e.actor("reader", "root", []string{auth.SpaceRead})
	for _, token := range []string{reader, e.token} {
		r := e.send(request{method: "GET", path: "/api/v1/stacks/web/outputs", token: token})
		var outs apiv1.List[apiv1.Output]
		e.must(r, 200, &outs)
		for _, leak := range []string{"stack-pw-1234", "ctx-db-5678", "90817263", "MIIEvQ"} {
			if strings.Contains(string(r.body), leak) {
				t.Errorf("outputs show the secret %q: %s", leak, r.body)
			}
		}
		got := map[string]any{}
		for _, o := range outs.Items {
			got[o.Name] = o.Value
		}
		want := map[string]any{"pw_echo": "*****", "conn": "postgres://app:*****@db/app", "pin": "*****", "key_line": []any{"*****"}, "region": "eu-west-1"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("outputs = %v, want %v", got, want)
		}
	}
	if r := e.tfstate("GET", "web", "", e.token, "", nil); !strings.Contains(string(r.body), "stack-pw-1234") {
		t.Errorf("the state download lost the value: %s", r)
	}
}

// A lock body that cannot be read is refused for what went wrong, not as
// a lock info larger than 64 KiB.
func TestStateLockBodyReadErrors(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	r := e.send(request{method: "LOCK", path: "/api/v1/stacks/web/tfstate", token: e.token, basic: true,
		body: strings.NewReader(lockInfo("big", "plan") + strings.Repeat(" ", 64<<10))})
	if d := wantError(t, r, 413, "too_large"); !strings.Contains(d.Message, "lock info larger than") {
		t.Errorf("oversize lock info: %q", d.Message)
	}
	// A body shorter than its Content-Length: the client stopped sending.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	auth := base64.StdEncoding.EncodeToString([]byte("gantry:" + e.token))
	fmt.Fprintf(conn, "LOCK /api/v1/stacks/web/tfstate HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\nContent-Length: 100\r\n\r\n{\"ID\":", auth)
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(body), "unexpected EOF") || strings.Contains(string(body), "larger") {
		t.Errorf("truncated lock info = %d %s, want 400 saying the body ended early", resp.StatusCode, body)
	}
}

// applying takes a claimed tracked run through its plan, with changes, to
// APPLYING, as an autodeploy stack's worker does.
func (e *apiEnv) applying(runID, worker string) {
	e.t.Helper()
	ctx := context.Background()
	for _, to := range []string{run.Initializing, run.Planning} {
		if _, err := e.runs.Phase(ctx, runID, worker, to, "", ""); err != nil {
			e.t.Fatal(err)
		}
	}
	if next, _, err := e.runs.Planned(ctx, runID, worker, true, run.Delta{Add: 1}, true); err != nil || next != run.NextApply {
		e.t.Fatalf("Planned = %q, %v; want apply", next, err)
	}
}

// While it prepares, initializes and plans, a tracked run's state token
// reads and locks the state (`plan` locks it) but does not write it; what
// it locked is released when the plan ends, whether the run waits for a
// person (UNCONFIRMED) or applies at once (autodeploy), and the apply
// writes.
func TestStateBackendPlanningIsReadOnly(t *testing.T) {
	ctx := context.Background()
	e := newAPIEnv(t)
	e.createStack("web", nil)
	if r := e.tfstate("POST", "web", "", e.token, stateDoc(1, "lin", 0), nil); r.status != 200 {
		t.Fatalf("a person's POST = %s", r)
	}
	planning := func(worker string) *run.Claimed {
		t.Helper()
		rn := e.createRun("web", "TRACKED")
		cl, err := e.runs.Claim(ctx, "", worker)
		if err != nil || cl == nil || cl.Run.ID != rn.ID {
			t.Fatalf("Claim = %v, %v", cl, err)
		}
		wantError(t, e.tfstate("POST", "web", "", cl.StateToken, stateDoc(2, "lin", 1), nil), 403, "forbidden")
		for _, to := range []string{run.Initializing, run.Planning} {
			if _, err := e.runs.Phase(ctx, rn.ID, worker, to, "", ""); err != nil {
				t.Fatal(err)
			}
		}
		if r := e.tfstate("GET", "web", "", cl.StateToken, "", nil); r.status != 200 {
			t.Fatalf("GET while planning = %s", r)
		}
		if r := e.tfstate("LOCK", "web", "", cl.StateToken, lockInfo("tofu-plan", "OperationTypePlan"), nil); r.status != 200 {
			t.Fatalf("LOCK while planning = %s", r)
		}
		r := e.tfstate("POST", "web", "ID=tofu-plan", cl.StateToken, stateDoc(2, "lin", 1), nil)
		wantError(t, r, 403, "forbidden")
		if !strings.Contains(string(r.body), "PLANNING") || !strings.Contains(string(r.body), "APPLYING") {
			t.Errorf("403 = %s, want it to name the phase", r.body)
		}
		if r := e.tfstate("UNLOCK", "web", "", cl.StateToken, lockInfo("tofu-plan", ""), nil); r.status != 200 {
			t.Fatalf("UNLOCK while planning = %s", r)
		}
		// Code of the run keeps a lock of its own past the plan.
		if r := e.tfstate("LOCK", "web", "", cl.StateToken, lockInfo("evil-hold", "OperationTypePlan"), nil); r.status != 200 {
			t.Fatalf("LOCK while planning = %s", r)
		}
		return cl
	}

	// Waiting for a person: the lock goes at the hand-off.
	cl := planning("wkr-1")
	if next, _, err := e.runs.Planned(ctx, cl.Run.ID, "wkr-1", true, run.Delta{Add: 1}, false); err != nil || next != run.NextSave {
		t.Fatalf("Planned = %q, %v", next, err)
	}
	wantLocked(t, e.tfstate("LOCK", "web", "", e.token, lockInfo("person", "OperationTypePlan"), nil), "evil-hold")
	if err := e.runs.PutArtifact(ctx, cl.Run.ID, "workspace", []byte("ws")); err != nil {
		t.Fatal(err)
	}
	if r, err := e.runs.HandOff(ctx, cl.Run.ID, "wkr-1"); err != nil || r.State != run.Unconfirmed {
		t.Fatalf("HandOff = %s, %v", r.State, err)
	}
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("person", "OperationTypePlan"), nil); r.status != 200 {
		t.Fatalf("a person's LOCK at UNCONFIRMED = %s, want the run's lock released", r)
	}
	if r := e.tfstate("UNLOCK", "web", "", e.token, lockInfo("person", ""), nil); r.status != 200 {
		t.Fatal(r)
	}
	// Confirmed, the apply job writes.
	if _, err := e.runs.Confirm(ctx, cl.Run.ID, "api_key::admin"); err != nil {
		t.Fatal(err)
	}
	apply, err := e.runs.Claim(ctx, "", "wkr-2")
	if err != nil || apply == nil || apply.Kind != run.KindApply {
		t.Fatalf("Claim = %+v, %v", apply, err)
	}
	if r := e.tfstate("LOCK", "web", "", apply.StateToken, lockInfo("tofu-apply", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("the apply's LOCK = %s", r)
	}
	if r := e.tfstate("POST", "web", "ID=tofu-apply", apply.StateToken, stateDoc(2, "lin", 1), nil); r.status != 200 {
		t.Fatalf("the apply's POST = %s", r)
	}
	if _, err := e.runs.Finish(ctx, cl.Run.ID, "wkr-2", true, ""); err != nil {
		t.Fatal(err)
	}

	// Autodeploy: the lock goes when the run moves on to APPLYING, in the
	// same job, whose token then writes.
	cl = planning("wkr-3")
	if next, _, err := e.runs.Planned(ctx, cl.Run.ID, "wkr-3", true, run.Delta{Add: 1}, true); err != nil || next != run.NextApply {
		t.Fatalf("Planned = %q, %v", next, err)
	}
	if r := e.tfstate("LOCK", "web", "", cl.StateToken, lockInfo("tofu-apply", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("the apply's LOCK = %s, want the plan's lock released", r)
	}
	if r := e.tfstate("POST", "web", "ID=tofu-apply", cl.StateToken, stateDoc(3, "lin", 2), nil); r.status != 200 {
		t.Fatalf("the apply's POST = %s", r)
	}
}

// terraformUnlock sends an UNLOCK as Terraform's http backend sends it on
// `terraform force-unlock`: its Unlock ignores the lock ID, so the body is
// empty (Content-Length 0, with the Content-MD5 of nothing).
func (e *apiEnv) terraformUnlock(stackID, token string) response {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	auth := base64.StdEncoding.EncodeToString([]byte("gantry:" + token))
	fmt.Fprintf(conn, "UNLOCK /api/v1/stacks/%s/tfstate HTTP/1.1\r\nHost: x\r\nUser-Agent: Go-http-client/1.1\r\n"+
		"Content-Length: 0\r\nAuthorization: Basic %s\r\nContent-Md5: 1B2M2Y8AsgTpgAEUs8tKQ==\r\n"+
		"Content-Type: application/json\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n", stackID, auth)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: body, header: resp.Header}
}

// Terraform's force-unlock sends no lock ID: the UNLOCK releases whatever
// lock is held, with the rules of an UNLOCK naming it (stack:unlock for a
// person; a run's token only its own run's lock).
func TestStateBackendUnlockWithoutID(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	if r := e.terraformUnlock("web", e.token); r.status != 200 {
		t.Fatalf("UNLOCK without an ID of an unlocked state = %s, want 200", r)
	}
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("person", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("LOCK = %s", r)
	}
	e.createRun("web", "TRACKED")
	tracked, err := e.runs.Claim(context.Background(), "", "wkr-1")
	if err != nil || tracked == nil {
		t.Fatalf("Claim = %v, %v", tracked, err)
	}
	wantError(t, e.terraformUnlock("web", tracked.StateToken), 403, "forbidden")
	wantError(t, e.tfstate("UNLOCK", "web", "", tracked.StateToken, "{}", nil), 403, "forbidden")
	wantLocked(t, e.tfstate("LOCK", "web", "", e.token, lockInfo("other", "OperationTypeApply"), nil), "person")

	if r := e.terraformUnlock("web", e.token); r.status != 200 {
		t.Fatalf("the person's UNLOCK without an ID = %s, want 200", r)
	}
	// Unlocked: the run takes the lock, and releases its own without an ID.
	if r := e.tfstate("LOCK", "web", "", tracked.StateToken, lockInfo("run", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("the run's LOCK after the force-unlock = %s", r)
	}
	if r := e.terraformUnlock("web", tracked.StateToken); r.status != 200 {
		t.Fatalf("the run's own UNLOCK without an ID = %s", r)
	}
	// A person's "{}" (no ID) releases a run's lock, as its ID would.
	if r := e.tfstate("LOCK", "web", "", tracked.StateToken, lockInfo("run", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("the run's LOCK = %s", r)
	}
	if r := e.tfstate("UNLOCK", "web", "", e.token, "{}", nil); r.status != 200 {
		t.Fatalf("UNLOCK {} = %s", r)
	}
	if r := e.tfstate("LOCK", "web", "", e.token, lockInfo("again", "OperationTypeApply"), nil); r.status != 200 {
		t.Fatalf("LOCK after UNLOCK {} = %s", r)
	}
	// LOCK still needs an ID.
	wantError(t, e.tfstate("LOCK", "web", "", e.token, "{}", nil), 400, "invalid")
}

// A run shows the tool its plan job ran with and the version that made
// its plan.
func TestRunShowsItsTool(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	created := e.createRun("web", "TRACKED")
	if created.Tool != "" || created.ToolVersion != "" {
		t.Errorf("a queued run's tool = %q %q, want none", created.Tool, created.ToolVersion)
	}
	claimed, err := e.runs.Claim(context.Background(), "", "wkr-1")
	if err != nil || claimed == nil {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	if err := e.runs.SetRuntimeConfig(context.Background(), claimed.Run.ID, run.RuntimeConfig{}, "opentofu"); err != nil {
		t.Fatal(err)
	}
	if err := e.runs.PutArtifact(context.Background(), claimed.Run.ID, "plan.json", []byte(`{"terraform_version":"1.10.7"}`)); err != nil {
		t.Fatal(err)
	}
	var got apiv1.Run
	e.must(e.do("GET", "/api/v1/runs/"+claimed.Run.ID, nil), http.StatusOK, &got)
	if got.Tool != "opentofu" || got.ToolVersion != "1.10.7" {
		t.Errorf("run's tool = %q %q, want opentofu 1.10.7", got.Tool, got.ToolVersion)
	}
}
