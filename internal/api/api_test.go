package api_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"time"
)

func TestBadInput(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	e.createStack("calm", nil) // no runs
	rn := e.createRun("web", "PROPOSED")
	huge := `{"id":"big","repository":"/r","description":"` + strings.Repeat("x", 1<<20+10) + `"}`

	tests := []struct {
		name, method, path string
		contentType        string // default application/json
		body               string
		status             int
		code               string
		msg                string // substring of the message, if set
	}{
		{name: "malformed JSON", method: "POST", path: "/api/v1/stacks", body: `{"id":`, status: 400, code: "invalid", msg: "malformed JSON"},
		{name: "unknown field", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","bogus":1}`, status: 400, code: "invalid", msg: "bogus"},
		{name: "unknown hook", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","hooks":{"before_lunch":["x"]}}`, status: 400, code: "invalid", msg: "before_lunch"},
		{name: "id of wrong type", method: "POST", path: "/api/v1/stacks", body: `{"id":5,"repository":"/r"}`, status: 400, code: "invalid", msg: `"id"`},
		{name: "bool of wrong type", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","autodeploy":"yes"}`, status: 400, code: "invalid", msg: "autodeploy"},
		{name: "labels of wrong type", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","labels":"x"}`, status: 400, code: "invalid"},
		{name: "empty body", method: "POST", path: "/api/v1/stacks", body: "", status: 400, code: "invalid", msg: "empty"},
		{name: "array body", method: "POST", path: "/api/v1/stacks", body: `[]`, status: 400, code: "invalid"},
		{name: "trailing data", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r"} {}`, status: 400, code: "invalid"},
		{name: "missing id", method: "POST", path: "/api/v1/stacks", body: `{"repository":"/r"}`, status: 400, code: "invalid", msg: "id is required"},
		{name: "bad slug", method: "POST", path: "/api/v1/stacks", body: `{"id":"Bad_Slug","repository":"/r"}`, status: 400, code: "invalid", msg: "slug"},
		{name: "slug too long", method: "POST", path: "/api/v1/stacks", body: `{"id":"` + strings.Repeat("a", 64) + `","repository":"/r"}`, status: 400, code: "invalid", msg: "slug"},
		{name: "bad tool", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","tool":"pulumi"}`, status: 400, code: "invalid", msg: "tool"},
		{name: "bad tool version", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","tool_version":"latest"}`, status: 400, code: "invalid", msg: "version"},
		{name: "bad branch", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","branch":"a..b"}`, status: 400, code: "invalid", msg: "branch"},
		{name: "project root outside", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","project_root":"../x"}`, status: 400, code: "invalid", msg: "project root"},
		{name: "missing repository", method: "POST", path: "/api/v1/stacks", body: `{"id":"a"}`, status: 400, code: "invalid", msg: "repository"},
		{name: "option-like repository", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"--upload-pack=x"}`, status: 400, code: "invalid", msg: "repository"},
		{name: "bad label", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","labels":["a\"b"]}`, status: 400, code: "invalid", msg: "label"},
		{name: "missing space", method: "POST", path: "/api/v1/stacks", body: `{"id":"a","repository":"/r","space":"nope"}`, status: 400, code: "invalid", msg: "space"},
		{name: "duplicate stack", method: "POST", path: "/api/v1/stacks", body: `{"id":"web","repository":"/r"}`, status: 409, code: "conflict"},
		{name: "oversize body", method: "POST", path: "/api/v1/stacks", body: huge, status: 413, code: "too_large"},
		{name: "wrong content type", method: "POST", path: "/api/v1/stacks", contentType: "text/plain", body: `{"id":"a","repository":"/r"}`, status: 400, code: "invalid", msg: "Content-Type"},
		{name: "update: unknown field", method: "PATCH", path: "/api/v1/stacks/web", body: `{"nme":"x"}`, status: 400, code: "invalid"},
		{name: "update: bad tool", method: "PATCH", path: "/api/v1/stacks/web", body: `{"tool":"pulumi"}`, status: 400, code: "invalid"},
		{name: "update: missing space", method: "PATCH", path: "/api/v1/stacks/web", body: `{"space":"nope"}`, status: 400, code: "invalid"},
		{name: "update: unknown stack", method: "PATCH", path: "/api/v1/stacks/nope", body: `{"name":"x"}`, status: 404, code: "not_found"},
		{name: "get: unknown stack", method: "GET", path: "/api/v1/stacks/nope", status: 404, code: "not_found"},
		{name: "delete: unknown stack", method: "DELETE", path: "/api/v1/stacks/nope", status: 404, code: "not_found"},
		{name: "env: bad name", method: "PUT", path: "/api/v1/stacks/web/env/1BAD", body: `{"value":"x"}`, status: 400, code: "invalid"},
		{name: "env: reserved prefix", method: "PUT", path: "/api/v1/stacks/web/env/GANTRY_RUN_ID", body: `{"value":"x"}`, status: 400, code: "invalid", msg: "reserved"},
		{name: "env: value of wrong type", method: "PUT", path: "/api/v1/stacks/web/env/A", body: `{"value":5}`, status: 400, code: "invalid"},
		{name: "env: unknown stack", method: "PUT", path: "/api/v1/stacks/nope/env/A", body: `{"value":"x"}`, status: 404, code: "not_found"},
		{name: "run: bad type", method: "POST", path: "/api/v1/stacks/web/runs", body: `{"type":"NOPE"}`, status: 400, code: "invalid", msg: "run type"},
		{name: "run: short sha", method: "POST", path: "/api/v1/stacks/web/runs", body: `{"sha":"abc123"}`, status: 400, code: "invalid", msg: "sha"},
		{name: "run: command on a tracked run", method: "POST", path: "/api/v1/stacks/web/runs", body: `{"type":"TRACKED","command":"ls"}`, status: 400, code: "invalid"},
		{name: "run: task without command", method: "POST", path: "/api/v1/stacks/web/runs", body: `{"type":"TASK"}`, status: 400, code: "invalid"},
		{name: "run: unknown stack", method: "POST", path: "/api/v1/stacks/nope/runs", body: `{}`, status: 404, code: "not_found"},
		{name: "runs: limit zero", method: "GET", path: "/api/v1/runs?limit=0", status: 400, code: "invalid", msg: "limit"},
		{name: "runs: limit too big", method: "GET", path: "/api/v1/runs?limit=1001", status: 400, code: "invalid"},
		{name: "stacks: limit not a number", method: "GET", path: "/api/v1/stacks?limit=ten", status: 400, code: "invalid"},
		{name: "spaces: negative limit", method: "GET", path: "/api/v1/spaces?limit=-1", status: 400, code: "invalid"},
		{name: "run: unknown", method: "GET", path: "/api/v1/runs/run-nope", status: 404, code: "not_found"},
		{name: "run: confirm a run that is not unconfirmed", method: "POST", path: "/api/v1/runs/" + rn.ID + "/confirm", status: 409, code: "conflict"},
		{name: "logs: negative offset", method: "GET", path: "/api/v1/runs/" + rn.ID + "/logs?offset=-1", status: 400, code: "invalid"},
		{name: "logs: wait too long", method: "GET", path: "/api/v1/runs/" + rn.ID + "/logs?wait=61", status: 400, code: "invalid"},
		{name: "plan: none yet", method: "GET", path: "/api/v1/runs/" + rn.ID + "/plan", status: 404, code: "not_found"},
		{name: "state version: not a number", method: "GET", path: "/api/v1/stacks/web/state/versions/abc", status: 400, code: "invalid"},
		{name: "state version: missing", method: "GET", path: "/api/v1/stacks/web/state/versions/5", status: 404, code: "not_found"},
		{name: "state version: no current", method: "GET", path: "/api/v1/stacks/web/state/versions/current", status: 404, code: "not_found"},
		{name: "rollback: serial of wrong type", method: "POST", path: "/api/v1/stacks/web/state/rollback", body: `{"serial":"1"}`, status: 400, code: "invalid"},
		{name: "rollback: no state", method: "POST", path: "/api/v1/stacks/calm/state/rollback", body: `{"serial":1}`, status: 404, code: "not_found"},
		{name: "space: bad slug", method: "POST", path: "/api/v1/spaces", body: `{"id":"Not OK"}`, status: 400, code: "invalid"},
		{name: "space: missing parent", method: "POST", path: "/api/v1/spaces", body: `{"id":"x","parent":"nope"}`, status: 400, code: "invalid"},
		{name: "space: root again", method: "POST", path: "/api/v1/spaces", body: `{"id":"root"}`, status: 409, code: "conflict"},
		{name: "space: unknown", method: "GET", path: "/api/v1/spaces/nope", status: 404, code: "not_found"},
		{name: "space: delete root", method: "DELETE", path: "/api/v1/spaces/root", status: 409, code: "conflict"},
		{name: "space: update with unknown field", method: "PATCH", path: "/api/v1/spaces/root", body: `{"parent":"x"}`, status: 400, code: "invalid"},
		{name: "tfstate: not JSON", method: "POST", path: "/api/v1/stacks/web/tfstate", body: `not json`, status: 400, code: "invalid"},
		{name: "tfstate: no lineage", method: "POST", path: "/api/v1/stacks/web/tfstate", body: `{"version":4,"serial":1}`, status: 400, code: "invalid", msg: "lineage"},
		{name: "tfstate: negative serial", method: "POST", path: "/api/v1/stacks/web/tfstate", body: `{"version":4,"serial":-1,"lineage":"l"}`, status: 400, code: "invalid"},
		{name: "tfstate: lock info not JSON", method: "LOCK", path: "/api/v1/stacks/web/tfstate", body: `{`, status: 400, code: "invalid"},
		{name: "tfstate: lock without ID", method: "LOCK", path: "/api/v1/stacks/web/tfstate", body: `{"Operation":"plan"}`, status: 400, code: "invalid"},
		{name: "tfstate: unknown stack", method: "GET", path: "/api/v1/stacks/nope/tfstate", status: 404, code: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := request{method: tt.method, path: tt.path, token: e.token, contentType: tt.contentType}
			if tt.body != "" {
				rq.body = strings.NewReader(tt.body)
				if rq.contentType == "" {
					rq.contentType = "application/json"
				}
			}
			r := e.send(rq)
			d := wantError(t, r, tt.status, tt.code)
			if tt.msg != "" && !strings.Contains(d.Message, tt.msg) {
				t.Errorf("message %q, want it to contain %q", d.Message, tt.msg)
			}
		})
	}
	// Nothing of the refused requests was created.
	var list apiv1.List[apiv1.Stack]
	e.must(e.do("GET", "/api/v1/stacks", nil), 200, &list)
	if len(list.Items) != 2 {
		t.Errorf("%d stacks after the refused requests, want only web and calm", len(list.Items))
	}
}

func TestAuthentication(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	e.createStack("other", nil)
	rn := e.createRun("web", "TRACKED")
	claimed, err := e.runs.Claim(context.Background(), "", "wkr-test")
	if err != nil || claimed == nil || claimed.Run.ID != rn.ID {
		t.Fatalf("Claim = %+v, %v; want run %s", claimed, err, rn.ID)
	}

	tests := []struct {
		name   string
		rq     request
		status int
		code   string
	}{
		{"no token", request{method: "GET", path: "/api/v1/stacks"}, 401, "unauthenticated"},
		{"unknown API key", request{method: "GET", path: "/api/v1/stacks", token: "gnt_" + strings.Repeat("x", 48)}, 401, "unauthenticated"},
		{"short garbage", request{method: "GET", path: "/api/v1/stacks", token: "abc"}, 401, "unauthenticated"},
		{"API key as basic auth password works", request{method: "GET", path: "/api/v1/stacks", token: e.token, basic: true}, 200, ""},
		{"bad basic password", request{method: "GET", path: "/api/v1/stacks", token: "wrong-password-123456", basic: true}, 401, "unauthenticated"},
		{"job token", request{method: "GET", path: "/api/v1/stacks", token: claimed.Token}, 401, "unauthenticated"},
		{"forged state token", request{method: "GET", path: "/api/v1/stacks", token: "gst_" + rn.ID + "_forged"}, 401, "unauthenticated"},
		{"state token on a stack route", request{method: "GET", path: "/api/v1/stacks", token: claimed.StateToken}, 403, "forbidden"},
		{"state token on its own stack", request{method: "GET", path: "/api/v1/stacks/web", token: claimed.StateToken}, 403, "forbidden"},
		{"state token on runs", request{method: "GET", path: "/api/v1/runs/" + rn.ID, token: claimed.StateToken}, 403, "forbidden"},
		{"state token on its state", request{method: "GET", path: "/api/v1/stacks/web/tfstate", token: claimed.StateToken, basic: true}, 204, ""},
		{"state token on another stack's state", request{method: "GET", path: "/api/v1/stacks/other/tfstate", token: claimed.StateToken, basic: true}, 403, "forbidden"},
		{"no token on the state", request{method: "GET", path: "/api/v1/stacks/web/tfstate"}, 401, "unauthenticated"},
		{"unknown route", request{method: "GET", path: "/api/v1/nope", token: e.token}, 404, "not_found"},
		{"unknown route without token", request{method: "GET", path: "/api/v1/nope/deeper"}, 404, "not_found"},
		{"unrouted method", request{method: "PUT", path: "/api/v1/stacks", token: e.token}, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.send(tt.rq)
			if tt.code == "" {
				if r.status != tt.status {
					t.Errorf("status = %s, want %d", r, tt.status)
				}
				return
			}
			wantError(t, r, tt.status, tt.code)
		})
	}

	t.Run("state token expires with its run", func(t *testing.T) {
		if _, err := e.runs.Finish(context.Background(), rn.ID, "wkr-test", false, "test over"); err != nil {
			t.Fatal(err)
		}
		r := e.send(request{method: "GET", path: "/api/v1/stacks/web/tfstate", token: claimed.StateToken, basic: true})
		wantError(t, r, 401, "unauthenticated")
	})
}

func TestStackPagination(t *testing.T) {
	e := newAPIEnv(t)
	var want []string
	for _, id := range []string{"p-3", "p-0", "p-6", "p-1", "p-5", "p-2", "p-4"} {
		e.createStack(id, nil)
		want = append(want, id)
	}
	slices.Sort(want)
	var got []string
	var sizes []int
	cursor := ""
	for page := 0; page < 10; page++ {
		path := "/api/v1/stacks?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var list apiv1.List[apiv1.Stack]
		e.must(e.do("GET", path, nil), 200, &list)
		sizes = append(sizes, len(list.Items))
		for _, s := range list.Items {
			got = append(got, s.ID)
			if s.State != "NONE" {
				t.Errorf("stack %s state = %q, want NONE", s.ID, s.State)
			}
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("pages %v with %v, want %v in pages of 3, 3, 1", sizes, got, want)
	}
}

func TestRunPagination(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("a", nil)
	e.createStack("b", nil)
	var created []string
	for range 7 {
		created = append(created, e.createRun("a", "PROPOSED").ID)
	}
	e.createRun("b", "PROPOSED") // another stack's run, filtered out
	want := slices.Clone(created)
	slices.Reverse(want) // newest first

	var got []string
	var sizes []int
	cursor := ""
	for page := 0; page < 10; page++ {
		path := "/api/v1/runs?stack=a&limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var list apiv1.List[apiv1.Run]
		e.must(e.do("GET", path, nil), 200, &list)
		sizes = append(sizes, len(list.Items))
		for _, r := range list.Items {
			got = append(got, r.ID)
			if r.Stack != "a" || r.Type != "PROPOSED" {
				t.Errorf("run %+v: want a PROPOSED run of stack a", r)
			}
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Errorf("pages %v with %v, want %v in pages of 3, 3, 1", sizes, got, want)
	}
	var all apiv1.List[apiv1.Run]
	e.must(e.do("GET", "/api/v1/runs", nil), 200, &all)
	if len(all.Items) != 8 || all.NextCursor != "" {
		t.Errorf("unfiltered list has %d runs (cursor %q), want 8 on one page", len(all.Items), all.NextCursor)
	}
}

func TestCreateRunPinsHead(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("pinned", map[string]any{"repository": pinnedRepo})
	e.createStack("loose", nil)
	// The head is pinned shortly after the run is created (no worker runs
	// here, so the run stays QUEUED or READY).
	pinned := e.createRun("pinned", "PROPOSED")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var r apiv1.Run
		e.must(e.do("GET", "/api/v1/runs/"+pinned.ID, nil), 200, &r)
		if r.CommitSHA == pinnedSHA {
			break
		}
		if r.CommitSHA != "" || time.Now().After(deadline) {
			t.Fatalf("run commit = %q, want the branch head %s", r.CommitSHA, pinnedSHA)
		}
		time.Sleep(20 * time.Millisecond)
	}
	loose := e.createRun("loose", "PROPOSED")
	time.Sleep(200 * time.Millisecond) // give a wrong pin the chance to show
	var lr apiv1.Run
	e.must(e.do("GET", "/api/v1/runs/"+loose.ID, nil), 200, &lr)
	if lr.CommitSHA != "" {
		t.Errorf("run commit = %q for an unreachable repository, want it left to the worker", lr.CommitSHA)
	}
	sha := strings.Repeat("c", 40)
	var r apiv1.Run
	e.must(e.do("POST", "/api/v1/stacks/pinned/runs", map[string]any{"type": "PROPOSED", "sha": sha}), 201, &r)
	if r.CommitSHA != sha || r.TriggeredBy != "api_key::admin" || len(r.Transitions) == 0 {
		t.Errorf("run = %+v, want the given sha, triggered by api_key::admin, with its timeline", r)
	}
}

func TestStackDeleteWithResources(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("del", nil)
	e.createStack("empty", nil)

	r := e.tfstate("POST", "del", "", e.token, stateDoc(1, "lin-1", 2), nil)
	if r.status != 200 {
		t.Fatalf("writing the state = %s", r)
	}
	d := wantError(t, e.do("DELETE", "/api/v1/stacks/del", nil), 409, "conflict")
	if !strings.Contains(d.Message, "2 resource(s)") {
		t.Errorf("message %q does not count the resources", d.Message)
	}
	// Force is named for CLI and API users alike.
	for _, want := range []string{"gantry stack delete --force", "?force=true"} {
		if !strings.Contains(d.Message, want) {
			t.Errorf("message %q does not say %q", d.Message, want)
		}
	}
	e.must(e.do("GET", "/api/v1/stacks/del", nil), 200, nil)
	e.must(e.do("DELETE", "/api/v1/stacks/del?force=true", nil), 204, nil)
	wantError(t, e.do("GET", "/api/v1/stacks/del", nil), 404, "not_found")
	wantError(t, e.tfstate("GET", "del", "", e.token, "", nil), 404, "not_found")

	// An empty state (all destroyed) does not hold the delete back.
	if r := e.tfstate("POST", "empty", "", e.token, stateDoc(3, "lin-2", 0), nil); r.status != 200 {
		t.Fatalf("writing the state = %s", r)
	}
	e.must(e.do("DELETE", "/api/v1/stacks/empty", nil), 204, nil)
}

func TestStackDeleteWithRunInProgress(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("busy", nil)
	e.createRun("busy", "TRACKED")
	d := wantError(t, e.do("DELETE", "/api/v1/stacks/busy", nil), 409, "conflict")
	for _, want := range []string{"gantry stack delete --force", "?force=true"} {
		if !strings.Contains(d.Message, want) {
			t.Errorf("message %q does not say %q", d.Message, want)
		}
	}
	e.must(e.do("DELETE", "/api/v1/stacks/busy?force=true", nil), 204, nil)
}

func TestEnvSecretsNeverReturned(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", nil)
	const secret = "hunter2-very-secret-value"
	set := e.do("PUT", "/api/v1/stacks/web/env/DB_PASSWORD", map[string]any{"value": secret, "secret": true})
	var v apiv1.EnvVar
	e.must(set, 200, &v)
	if v.Name != "DB_PASSWORD" || !v.Secret || v.Value != "" {
		t.Errorf("PUT answered %+v, want the secret without its value", v)
	}
	e.must(e.do("PUT", "/api/v1/stacks/web/env/REGION", map[string]any{"value": "eu-west-1"}), 200, nil)
	// Replacing keeps one variable of the name.
	e.must(e.do("PUT", "/api/v1/stacks/web/env/DB_PASSWORD", map[string]any{"value": secret + "-2", "secret": true}), 200, nil)
	// Rotating it without "secret" (the --secret forgotten) is refused, not
	// stored in the clear.
	d := wantError(t, e.do("PUT", "/api/v1/stacks/web/env/DB_PASSWORD", map[string]any{"value": secret + "-3"}), 409, "conflict")
	if want := "environment variable DB_PASSWORD is secret: set it with --secret"; !strings.Contains(d.Message, want) {
		t.Errorf("message %q, want it to contain %q", d.Message, want)
	}

	list := e.do("GET", "/api/v1/stacks/web/env", nil)
	var vars apiv1.List[apiv1.EnvVar]
	e.must(list, 200, &vars)
	got := map[string]apiv1.EnvVar{}
	for _, v := range vars.Items {
		got[v.Name] = v
	}
	if len(vars.Items) != 2 || got["DB_PASSWORD"].Value != "" || !got["DB_PASSWORD"].Secret || got["REGION"].Value != "eu-west-1" {
		t.Errorf("env = %+v, want the secret blank and the plain value shown", vars.Items)
	}
	for _, r := range []response{set, list, e.do("GET", "/api/v1/stacks/web", nil), e.do("GET", "/api/v1/stacks", nil)} {
		if bytes.Contains(r.body, []byte(secret)) {
			t.Errorf("a response holds the secret value: %s", r.body)
		}
	}
	e.must(e.do("DELETE", "/api/v1/stacks/web/env/DB_PASSWORD", nil), 204, nil)
	e.must(e.do("GET", "/api/v1/stacks/web/env", nil), 200, &vars)
	if len(vars.Items) != 1 {
		t.Errorf("%d variables after delete, want 1", len(vars.Items))
	}
}

func TestStackCreateDefaultsAndUpdate(t *testing.T) {
	e := newAPIEnv(t)
	s := e.createStack("web", map[string]any{"labels": []string{"b", "a", "b"}, "managed_state": false, "project_root": "./stacks/web/"})
	if s.Name != "web" || s.Space != "root" || s.Branch != "main" || s.Tool != "opentofu" || s.ManagedState || s.State != "NONE" || s.ProjectRoot != "stacks/web" {
		t.Errorf("created %+v, want defaults filled in", s)
	}
	var u apiv1.Stack
	e.must(e.do("PATCH", "/api/v1/stacks/web", map[string]any{"description": "d", "autodeploy": true}), 200, &u)
	if u.Description != "d" || !u.Autodeploy || u.Repository != testRepo || u.ProjectRoot != "stacks/web" {
		t.Errorf("updated %+v, want only description and autodeploy changed", u)
	}
	if !u.UpdatedAt.After(u.CreatedAt) && !u.UpdatedAt.Equal(u.CreatedAt) {
		t.Errorf("updated_at %v before created_at %v", u.UpdatedAt, u.CreatedAt)
	}
	if r := e.do("GET", "/api/v1/stacks/web", nil); !strings.Contains(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
	}
}

// Switching a stack's tool without a version clears the version (the
// other tool's would name a release that does not exist); with one, or
// without switching, the version is as given or kept.
func TestStackToolSwitchClearsVersion(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("web", map[string]any{"tool": "opentofu", "tool_version": "1.10.7"})
	patch := func(in map[string]any) apiv1.Stack {
		t.Helper()
		var u apiv1.Stack // fresh: an absent tool_version must read empty
		e.must(e.do("PATCH", "/api/v1/stacks/web", in), 200, &u)
		return u
	}
	u := patch(map[string]any{"tool": "opentofu"})
	if u.Tool != "opentofu" || u.ToolVersion != "1.10.7" {
		t.Errorf("same tool again: %s %q, want the version kept", u.Tool, u.ToolVersion)
	}
	u = patch(map[string]any{"tool": "terraform"})
	if u.Tool != "terraform" || u.ToolVersion != "" {
		t.Errorf("switched without a version: %s %q, want no version", u.Tool, u.ToolVersion)
	}
	patch(map[string]any{"tool_version": "1.5.7"})
	u = patch(map[string]any{"tool": "", "tool_version": "1.10.6"})
	if u.Tool != "opentofu" || u.ToolVersion != "1.10.6" {
		t.Errorf("switched with a version: %s %q, want opentofu 1.10.6", u.Tool, u.ToolVersion)
	}
	u = patch(map[string]any{"tool": "terraform", "description": "x"})
	if u.ToolVersion != "" {
		t.Errorf("switched without a version: %q", u.ToolVersion)
	}
}
