package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

func TestMain(m *testing.M) {
	pollInterval = time.Millisecond
	os.Exit(m.Run())
}

// reply is one canned answer of the fake API.
type reply struct {
	status int
	body   any // JSON-encoded, or written as is when a string
}

// route answers the n-th call (from 0) of one "METHOD /path".
type route func(n int) reply

func ok(v any) route { return func(int) reply { return reply{200, v} } }

func status(code int, v any) route { return func(int) reply { return reply{code, v} } }

func apiErr(code int, kind, msg string) route {
	return status(code, apiv1.ErrorBody{Error: apiv1.ErrorDetail{Code: kind, Message: msg}})
}

// seq answers with each value in turn, then repeats the last.
func seq(vs ...any) route {
	return func(n int) reply { return reply{200, vs[min(n, len(vs)-1)]} }
}

// fakeAPI records requests as "METHOD /path?query body" and answers from routes.
type fakeAPI struct {
	mu     sync.Mutex
	routes map[string]route
	calls  map[string]int
	reqs   []string
	auth   []string
	srv    *httptest.Server
}

func newFake(t *testing.T, routes map[string]route) *fakeAPI {
	t.Helper()
	f := &fakeAPI{routes: routes, calls: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.EscapedPath()
	rec := key
	if r.URL.RawQuery != "" {
		rec += "?" + r.URL.RawQuery
	}
	if len(body) > 0 {
		rec += " " + string(body)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	rt, found := f.routes[key]
	n := f.calls[key]
	f.calls[key]++
	f.mu.Unlock()
	if !found {
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(apiv1.ErrorBody{Error: apiv1.ErrorDetail{Code: "not_found", Message: "no route " + key}})
		return
	}
	rep := rt(n)
	if rep.status == http.StatusNoContent {
		w.WriteHeader(rep.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	if s, isString := rep.body.(string); isString {
		io.WriteString(w, s)
		return
	}
	json.NewEncoder(w).Encode(rep.body)
}

func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.reqs...)
}

// isolate keeps the tests away from the user's environment and configuration.
func isolate(t *testing.T) string {
	t.Helper()
	cfg := t.TempDir() + "/gantry/config.json"
	t.Setenv("GANTRY_CONFIG", cfg)
	for _, name := range []string{"GANTRY_URL", "GANTRY_TOKEN", "GANTRY_OUTPUT", "GANTRY_ID"} {
		t.Setenv(name, "")
	}
	return cfg
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code = Main(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

var (
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	space   = apiv1.Space{ID: "dev", Name: "Dev", Parent: "root", Inherit: true, Labels: []string{"a"}, CreatedAt: t0}
	stack   = apiv1.Stack{ID: "net", Name: "Network", Space: "dev", Repository: "https://git.example.com/net.git", Branch: "main", Tool: "opentofu", ManagedState: true, State: "NONE", Hooks: apiv1.Hooks{BeforeInit: []string{"echo init"}}}
	queued  = run("QUEUED")
	secret  = apiv1.EnvVar{Name: "TF_VAR_pw", Value: "s3cret", Secret: true}
	plainV  = apiv1.EnvVar{Name: "REGION", Value: "eu-west-1"}
	outputs = apiv1.List[apiv1.Output]{Items: []apiv1.Output{
		{Name: "vpc_id", Value: "vpc-123"},
		{Name: "password", Value: "hunter2", Sensitive: true},
		{Name: "subnets", Value: []any{"a", "b"}},
	}}
)

func run(state string) apiv1.Run {
	r := apiv1.Run{ID: "run-1", Stack: "net", Space: "dev", Type: "TRACKED", State: state, CommitSHA: "0123456789abcdef", CreatedAt: t0}
	if state == apiv1.StateFailed {
		r.Reason = "plan policy denied"
	}
	return r
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		routes   map[string]route
		wantCode int
		wantReqs []string // nil: not checked
		wantOut  []string // substrings of stdout
		notOut   []string // must not appear in stdout
		wantErr  []string // substrings of stderr
		check    func(t *testing.T, stdout string)
	}{
		{
			name:     "space create",
			args:     []string{"space", "create", "--id", "dev", "--name", "Dev", "--inherit", "--label", "a", "--label", "b", "--description", "d"},
			routes:   map[string]route{"POST /api/v1/spaces": status(201, space)},
			wantReqs: []string{`POST /api/v1/spaces {"id":"dev","name":"Dev","inherit":true,"labels":["a","b"],"description":"d"}`},
			wantOut:  []string{"ID:", "dev", "Parent:", "root"},
		},
		{
			name: "space list follows cursors",
			args: []string{"space", "list"},
			routes: map[string]route{"GET /api/v1/spaces": seq(
				apiv1.List[apiv1.Space]{Items: []apiv1.Space{{ID: "root", Name: "root"}}, NextCursor: "c2"},
				apiv1.List[apiv1.Space]{Items: []apiv1.Space{space}},
			)},
			wantReqs: []string{"GET /api/v1/spaces", "GET /api/v1/spaces?cursor=c2"},
			wantOut:  []string{"ID", "PARENT", "root", "dev"},
		},
		{
			name:     "space show json",
			args:     []string{"space", "show", "--id", "dev", "-o", "json"},
			routes:   map[string]route{"GET /api/v1/spaces/dev": ok(space)},
			wantReqs: []string{"GET /api/v1/spaces/dev"},
			check: func(t *testing.T, out string) {
				var got apiv1.Space
				if err := json.Unmarshal([]byte(out), &got); err != nil || got.ID != "dev" || !got.CreatedAt.Equal(t0) {
					t.Errorf("decode %q: %v %+v", out, err, got)
				}
			},
		},
		{
			name:     "space update sends changed flags only",
			args:     []string{"space", "update", "--id", "dev", "--inherit=false", "--label", ""},
			routes:   map[string]route{"PATCH /api/v1/spaces/dev": ok(space)},
			wantReqs: []string{`PATCH /api/v1/spaces/dev {"inherit":false,"labels":[]}`},
		},
		{
			name:     "space update without changes is a usage error",
			args:     []string{"space", "update", "--id", "dev"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"Error: nothing to update", "Usage:"},
		},
		{
			name:     "space delete",
			args:     []string{"space", "delete", "--id", "dev"},
			routes:   map[string]route{"DELETE /api/v1/spaces/dev": status(204, nil)},
			wantReqs: []string{"DELETE /api/v1/spaces/dev"},
			wantOut:  []string{`Deleted space "dev"`},
		},
		{
			name: "stack create",
			args: []string{"stack", "create", "--id", "net", "--name", "Network", "--space", "dev",
				"--repository", "https://git.example.com/net.git", "--branch", "main", "--project-root", "infra",
				"--tool", "terraform", "--tool-version", "1.9.0", "--autodeploy", "--label", "x",
				"--managed-state=false", "--before-init", "echo a", "--before-init", "echo b", "--after-apply", "echo c"},
			routes: map[string]route{"POST /api/v1/stacks": status(201, stack)},
			wantReqs: []string{`POST /api/v1/stacks {"id":"net","name":"Network","space":"dev","repository":"https://git.example.com/net.git",` +
				`"branch":"main","project_root":"infra","tool":"terraform","tool_version":"1.9.0","labels":["x"],"autodeploy":true,` +
				`"managed_state":false,"hooks":{"before_init":["echo a","echo b"],"after_apply":["echo c"]}}`},
			wantOut: []string{"Network", "Hook before-init:", "echo init"},
		},
		{
			name:     "stack create minimal",
			args:     []string{"stack", "create", "--id", "net", "--repository", "/r"},
			routes:   map[string]route{"POST /api/v1/stacks": status(201, stack)},
			wantReqs: []string{`POST /api/v1/stacks {"id":"net","repository":"/r"}`},
		},
		{
			name:     "stack create without repository",
			args:     []string{"stack", "create", "--id", "net"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{`required flag(s) "repository" not set`},
		},
		{
			name: "stack list with filters and limit",
			args: []string{"stack", "list", "--space", "dev", "--label", "x", "--label", "y", "--limit", "1"},
			routes: map[string]route{"GET /api/v1/stacks": ok(
				apiv1.List[apiv1.Stack]{Items: []apiv1.Stack{stack}, NextCursor: "more"})},
			wantReqs: []string{"GET /api/v1/stacks?label=x&label=y&limit=1&space=dev"},
			wantOut:  []string{"net", "Network", "NONE"},
		},
		{
			name: "stack list json follows cursors",
			args: []string{"stack", "list", "-o", "json"},
			routes: map[string]route{"GET /api/v1/stacks": seq(
				apiv1.List[apiv1.Stack]{Items: []apiv1.Stack{stack}, NextCursor: "c2"},
				apiv1.List[apiv1.Stack]{Items: []apiv1.Stack{{ID: "app"}}},
			)},
			wantReqs: []string{"GET /api/v1/stacks", "GET /api/v1/stacks?cursor=c2"},
			check: func(t *testing.T, out string) {
				var got []apiv1.Stack
				if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 || got[1].ID != "app" {
					t.Errorf("decode %q: %v %+v", out, err, got)
				}
			},
		},
		{
			name:     "stack show",
			args:     []string{"stack", "show", "--id", "net"},
			routes:   map[string]route{"GET /api/v1/stacks/net": ok(stack)},
			wantReqs: []string{"GET /api/v1/stacks/net"},
			wantOut:  []string{"Repository:", "https://git.example.com/net.git", "Managed state:", "true"},
		},
		{
			name:     "stack show not found",
			args:     []string{"stack", "show", "--id", "x"},
			routes:   map[string]route{"GET /api/v1/stacks/x": apiErr(404, "not_found", `stack "x" not found`)},
			wantCode: 1,
			wantErr:  []string{`Error: not_found: stack "x" not found`},
		},
		{
			name: "stack update merges hooks",
			args: []string{"stack", "update", "--id", "net", "--branch", "dev", "--before-plan", "echo plan", "--autodeploy"},
			routes: map[string]route{
				"GET /api/v1/stacks/net":   ok(stack),
				"PATCH /api/v1/stacks/net": ok(stack),
			},
			wantReqs: []string{"GET /api/v1/stacks/net",
				`PATCH /api/v1/stacks/net {"branch":"dev","autodeploy":true,"hooks":{"before_init":["echo init"],"before_plan":["echo plan"]}}`},
		},
		{
			name:     "stack update simple",
			args:     []string{"stack", "update", "--id", "net", "--managed-state=false", "--description", ""},
			routes:   map[string]route{"PATCH /api/v1/stacks/net": ok(stack)},
			wantReqs: []string{`PATCH /api/v1/stacks/net {"description":"","managed_state":false}`},
		},
		{
			name:     "stack delete force",
			args:     []string{"stack", "delete", "--id", "net", "--force"},
			routes:   map[string]route{"DELETE /api/v1/stacks/net": status(204, nil)},
			wantReqs: []string{"DELETE /api/v1/stacks/net?force=true"},
		},
		{
			name:     "env set secret",
			args:     []string{"stack", "env", "set", "--id", "net", "TF_VAR_pw", "s3cret", "--secret"},
			routes:   map[string]route{"PUT /api/v1/stacks/net/env/TF_VAR_pw": ok(secret)},
			wantReqs: []string{`PUT /api/v1/stacks/net/env/TF_VAR_pw {"value":"s3cret","secret":true}`},
			wantOut:  []string{"TF_VAR_pw", "*****"},
			notOut:   []string{"s3cret"},
		},
		{
			name: "env list shows the effective environment, secrets masked",
			args: []string{"stack", "env", "list", "--id", "net"},
			routes: map[string]route{"GET /api/v1/stacks/net/env/effective": ok(apiv1.EffectiveEnv{Variables: []apiv1.EffectiveEnvVar{
				{Name: plainV.Name, Value: plainV.Value, Source: "stack", Checksum: "abc123"},
				{Name: secret.Name, Value: "s3cret", Secret: true, Source: "context", Context: "aws", Checksum: "def456"}}})},
			wantReqs: []string{"GET /api/v1/stacks/net/env/effective"},
			wantOut:  []string{"REGION", "eu-west-1", "*****", "context:aws", "def456"},
			notOut:   []string{"s3cret"},
		},
		{
			name:     "env delete",
			args:     []string{"stack", "env", "delete", "--id", "net", "REGION"},
			routes:   map[string]route{"DELETE /api/v1/stacks/net/env/REGION": status(204, nil)},
			wantReqs: []string{"DELETE /api/v1/stacks/net/env/REGION"},
		},
		{
			name:     "env set needs two arguments",
			args:     []string{"stack", "env", "set", "--id", "net", "ONLY"},
			wantCode: 2,
			wantReqs: []string{},
		},
		{
			name:     "deploy without wait",
			args:     []string{"stack", "deploy", "--id", "net"},
			routes:   map[string]route{"POST /api/v1/stacks/net/runs": status(201, queued)},
			wantReqs: []string{`POST /api/v1/stacks/net/runs {"type":"TRACKED"}`},
			wantOut:  []string{"run-1", "QUEUED"},
		},
		{
			name: "deploy wait finished",
			args: []string{"stack", "deploy", "--id", "net", "--sha", "abc", "--wait"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/runs": status(201, queued),
				"GET /api/v1/runs/run-1":       seq(run("PLANNING"), run("APPLYING"), run("FINISHED")),
			},
			wantReqs: []string{`POST /api/v1/stacks/net/runs {"type":"TRACKED","sha":"abc"}`,
				"GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1"},
			wantOut: []string{"run-1", "FINISHED"},
			wantErr: []string{"run-1 PLANNING", "run-1 APPLYING"},
		},
		{
			name: "deploy wait failed",
			args: []string{"stack", "deploy", "--id", "net", "--wait"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/runs": status(201, queued),
				"GET /api/v1/runs/run-1":       seq(run("PLANNING"), run("FAILED")),
			},
			wantCode: 1,
			wantOut:  []string{"FAILED"},
			wantErr:  []string{"Error: run run-1 ended FAILED: plan policy denied"},
		},
		{
			name: "deploy wait unconfirmed",
			args: []string{"stack", "deploy", "--id", "net", "--wait"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/runs": status(201, queued),
				"GET /api/v1/runs/run-1":       seq(run("PLANNING"), run("UNCONFIRMED")),
			},
			wantOut: []string{"UNCONFIRMED"},
			wantErr: []string{"gantry stack confirm --id net --run run-1"},
		},
		{
			name: "deploy wait json",
			args: []string{"stack", "deploy", "--id", "net", "--wait", "-o", "json"},
			routes: map[string]route{
				"POST /api/v1/stacks/net/runs": status(201, queued),
				"GET /api/v1/runs/run-1":       ok(run("CANCELED")),
			},
			wantCode: 1,
			wantErr:  []string{"Error: run run-1 ended CANCELED"},
			check: func(t *testing.T, out string) {
				var got apiv1.Run
				if err := json.Unmarshal([]byte(out), &got); err != nil || got.State != "CANCELED" {
					t.Errorf("decode %q: %v %+v", out, err, got)
				}
			},
		},
		{
			name: "retry wait",
			args: []string{"run", "retry", "--id", "run-0", "--wait"},
			routes: map[string]route{
				"POST /api/v1/runs/run-0/retry": status(201, queued),
				"GET /api/v1/runs/run-1":        seq(run("PLANNING"), run("FAILED")),
			},
			wantReqs: []string{"POST /api/v1/runs/run-0/retry", "GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1"},
			wantCode: 1,
			wantErr:  []string{"run-1 PLANNING", "Error: run run-1 ended FAILED"},
		},
		{
			name:     "preview",
			args:     []string{"stack", "preview", "--id", "net", "--sha", "abc"},
			routes:   map[string]route{"POST /api/v1/stacks/net/runs": status(201, queued)},
			wantReqs: []string{`POST /api/v1/stacks/net/runs {"type":"PROPOSED","sha":"abc"}`},
		},
		{
			name:     "destroy",
			args:     []string{"stack", "destroy", "--id", "net"},
			routes:   map[string]route{"POST /api/v1/stacks/net/runs": status(201, queued)},
			wantReqs: []string{`POST /api/v1/stacks/net/runs {"type":"DESTROY"}`},
		},
		{
			name:     "task",
			args:     []string{"stack", "task", "--id", "net", "--", "tofu", "state", "list", "-id=x"},
			routes:   map[string]route{"POST /api/v1/stacks/net/tasks": status(201, queued)},
			wantReqs: []string{`POST /api/v1/stacks/net/tasks {"command":"tofu state list -id=x"}`},
		},
		{
			name: "confirm wait",
			args: []string{"stack", "confirm", "--id", "net", "--run", "run-1", "--wait"},
			routes: map[string]route{
				"GET /api/v1/runs/run-1":          seq(run("UNCONFIRMED"), run("APPLYING"), run("FINISHED")),
				"POST /api/v1/runs/run-1/confirm": ok(run("CONFIRMED")),
			},
			wantReqs: []string{"GET /api/v1/runs/run-1", "POST /api/v1/runs/run-1/confirm", "GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1"},
			wantOut:  []string{"FINISHED"},
		},
		{
			name: "confirm refuses a run of another stack",
			args: []string{"stack", "confirm", "--id", "app", "--run", "run-1"},
			routes: map[string]route{
				"GET /api/v1/runs/run-1":          ok(run("UNCONFIRMED")),
				"POST /api/v1/runs/run-1/confirm": ok(run("CONFIRMED")),
			},
			wantCode: 1,
			wantReqs: []string{"GET /api/v1/runs/run-1"},
			wantErr:  []string{`Error: run run-1 belongs to stack "net", not "app"`},
		},
		{
			name: "discard",
			args: []string{"stack", "discard", "--id", "net", "--run", "run-1"},
			routes: map[string]route{
				"GET /api/v1/runs/run-1":          ok(run("UNCONFIRMED")),
				"POST /api/v1/runs/run-1/discard": ok(run("DISCARDED")),
			},
			wantReqs: []string{"GET /api/v1/runs/run-1", "POST /api/v1/runs/run-1/discard"},
			wantOut:  []string{"DISCARDED"},
		},
		{
			name:     "run cancel",
			args:     []string{"run", "cancel", "--id", "run-1"},
			routes:   map[string]route{"POST /api/v1/runs/run-1/cancel": ok(run("CANCELED"))},
			wantReqs: []string{"POST /api/v1/runs/run-1/cancel"},
		},
		{
			name:     "run stop",
			args:     []string{"run", "stop", "--id", "run-1"},
			routes:   map[string]route{"POST /api/v1/runs/run-1/stop": ok(run("STOPPED"))},
			wantReqs: []string{"POST /api/v1/runs/run-1/stop"},
		},
		{
			name:     "run list",
			args:     []string{"run", "list", "--stack", "net", "--state", "FAILED", "--type", "TRACKED", "--space", "dev", "--limit", "10"},
			routes:   map[string]route{"GET /api/v1/runs": ok(apiv1.List[apiv1.Run]{Items: []apiv1.Run{run("FAILED")}})},
			wantReqs: []string{"GET /api/v1/runs?limit=10&space=dev&stack=net&state=FAILED&type=TRACKED"},
			wantOut:  []string{"run-1", "01234567", "FAILED"},
		},
		{
			name:     "env set without a name",
			args:     []string{"stack", "env", "set", "--id", "net", "", "v"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"Error: a variable name is required"},
		},
		{
			name:     "env delete without a name",
			args:     []string{"stack", "env", "delete", "--id", "net", " "},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"Error: a variable name is required"},
		},
		{
			name:     "context env set without a name",
			args:     []string{"context", "env", "set", "--id", "c", "", "v"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"Error: a variable name is required"},
		},
		{
			name:     "context file delete without a path",
			args:     []string{"context", "file", "delete", "--id", "c", ""},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"Error: a file path is required"},
		},
		{
			name:     "run list upper-cases state and type",
			args:     []string{"run", "list", "--state", "finished", "--type", "tracked"},
			routes:   map[string]route{"GET /api/v1/runs": ok(apiv1.List[apiv1.Run]{Items: []apiv1.Run{run("FINISHED")}})},
			wantReqs: []string{"GET /api/v1/runs?limit=50&state=FINISHED&type=TRACKED"},
			wantOut:  []string{"run-1", "FINISHED"},
		},
		{
			name:     "run list with a bogus state",
			args:     []string{"run", "list", "--state", "nope"},
			routes:   map[string]route{"GET /api/v1/runs": apiErr(400, "invalid", `state must be one of QUEUED, READY, FINISHED, got "NOPE"`)},
			wantCode: 1,
			wantErr:  []string{`Error: invalid: state must be one of QUEUED, READY, FINISHED, got "NOPE"`},
		},
		{
			name: "run show",
			args: []string{"run", "show", "--id", "run-1"},
			routes: map[string]route{"GET /api/v1/runs/run-1": ok(func() apiv1.Run {
				r := run("FINISHED")
				r.Delta = &apiv1.Delta{Add: 2, Change: 1}
				r.Transitions = []apiv1.Transition{
					{To: "QUEUED", At: t0, Actor: "user:ann"},
					{From: "QUEUED", To: "READY", At: t0.Add(time.Second), Actor: "scheduler", Reason: "stack free"},
				}
				return r
			}())},
			wantOut: []string{"Delta:", "+2 ~1 -0", "TRANSITION", "QUEUED → READY", "scheduler", "stack free", "user:ann"},
		},
		{
			name: "logs",
			args: []string{"stack", "logs", "--id", "net", "--run", "run-1"},
			routes: map[string]route{
				"GET /api/v1/runs/run-1": ok(run("PLANNING")),
				"GET /api/v1/runs/run-1/logs": seq(
					apiv1.LogChunk{Offset: 0, NextOffset: 5, Data: "init\n"},
					apiv1.LogChunk{Offset: 5, NextOffset: 10, Data: "plan\n"},
					apiv1.LogChunk{Offset: 10, NextOffset: 10},
				),
			},
			wantReqs: []string{"GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1/logs?offset=0",
				"GET /api/v1/runs/run-1/logs?offset=5", "GET /api/v1/runs/run-1/logs?offset=10"},
			wantOut: []string{"init\nplan\n"},
		},
		{
			name: "logs follow",
			args: []string{"stack", "logs", "--id", "net", "--run", "run-1", "-f"},
			routes: map[string]route{
				"GET /api/v1/runs/run-1": ok(run("PLANNING")),
				"GET /api/v1/runs/run-1/logs": seq(
					apiv1.LogChunk{Offset: 0, NextOffset: 5, Data: "init\n"},
					apiv1.LogChunk{Offset: 5, NextOffset: 10, Data: "done\n", Done: true},
					apiv1.LogChunk{Offset: 10, NextOffset: 10, Done: true},
				),
			},
			wantReqs: []string{"GET /api/v1/runs/run-1", "GET /api/v1/runs/run-1/logs?offset=0&wait=20",
				"GET /api/v1/runs/run-1/logs?offset=5&wait=20", "GET /api/v1/runs/run-1/logs?offset=10"},
			wantOut: []string{"init\ndone\n"},
		},
		{
			name:     "outputs",
			args:     []string{"stack", "outputs", "--id", "net"},
			routes:   map[string]route{"GET /api/v1/stacks/net/outputs": ok(outputs)},
			wantReqs: []string{"GET /api/v1/stacks/net/outputs"},
			wantOut:  []string{"vpc-123", "(sensitive)", `["a","b"]`},
			notOut:   []string{"hunter2"},
		},
		{
			name: "outputs: a long value pads nothing",
			args: []string{"stack", "outputs", "--id", "net"},
			routes: map[string]route{"GET /api/v1/stacks/net/outputs": ok(apiv1.List[apiv1.Output]{Items: []apiv1.Output{
				{Name: "blob", Value: strings.Repeat("x", 1<<20)}, {Name: "id", Value: "vpc-123"}}})},
			check: func(t *testing.T, out string) {
				if len(out) > 1<<20+200 {
					t.Errorf("%d bytes for a value of 1 MiB: the table pads to the value's width", len(out))
				}
				if header, _, _ := strings.Cut(out, "\n"); len(header) > 80 {
					t.Errorf("header of %d bytes", len(header))
				}
			},
		},
		{
			name: "state list",
			args: []string{"stack", "state", "list", "--id", "net"},
			routes: map[string]route{"GET /api/v1/stacks/net/state/versions": ok(apiv1.List[apiv1.StateVersion]{Items: []apiv1.StateVersion{
				{Serial: 2, Current: true, Checksum: "abcdef0123456789", CreatedBy: "run-1", CreatedAt: t0},
				{Serial: 1, Checksum: "ffff", CreatedAt: t0},
			}})},
			wantOut: []string{"SERIAL", "abcdef012345", "run-1"},
		},
		{
			name:     "state show current",
			args:     []string{"stack", "state", "show", "--id", "net"},
			routes:   map[string]route{"GET /api/v1/stacks/net/state/versions/current": ok(`{"version":4,"serial":2}`)},
			wantReqs: []string{"GET /api/v1/stacks/net/state/versions/current"},
			wantOut:  []string{`{"version":4,"serial":2}` + "\n"},
		},
		{
			name:     "state show serial",
			args:     []string{"stack", "state", "show", "--id", "net", "--serial", "1"},
			routes:   map[string]route{"GET /api/v1/stacks/net/state/versions/1": ok(`{}`)},
			wantReqs: []string{"GET /api/v1/stacks/net/state/versions/1"},
		},
		{
			name:     "state rollback",
			args:     []string{"stack", "state", "rollback", "--id", "net", "--serial", "1"},
			routes:   map[string]route{"POST /api/v1/stacks/net/state/rollback": ok(apiv1.StateVersion{Serial: 3, Current: true})},
			wantReqs: []string{`POST /api/v1/stacks/net/state/rollback {"serial":1}`},
			wantOut:  []string{"Serial:", "3"},
		},
		{
			name:     "unknown flag",
			args:     []string{"stack", "show", "--id", "net", "--bogus"},
			wantCode: 2,
			wantReqs: []string{},
			wantErr:  []string{"Error: unknown flag: --bogus", "Usage:"},
		},
		{
			name:     "unknown subcommand",
			args:     []string{"stack", "bogus"},
			wantCode: 2,
			wantErr:  []string{`unknown command "bogus"`},
		},
		{
			name:     "bad output format",
			args:     []string{"stack", "show", "--id", "net", "-o", "yaml"},
			wantCode: 2,
			wantReqs: []string{},
		},
		{
			name:    "version",
			args:    []string{"version"},
			wantOut: []string{"gantry "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			api := newFake(t, tt.routes)
			code, out, errOut := runMain(append([]string{"--url", api.srv.URL, "--token", "tok"}, tt.args...)...)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if tt.wantReqs != nil {
				got := api.requests()
				if strings.Join(got, "\n") != strings.Join(tt.wantReqs, "\n") {
					t.Errorf("requests:\n got %q\nwant %q", got, tt.wantReqs)
				}
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.notOut {
				if strings.Contains(out, s) {
					t.Errorf("stdout has %q:\n%s", s, out)
				}
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if strings.Contains(out+errOut, "tok\n") || strings.Contains(out+errOut, "Bearer") {
				t.Errorf("token printed:\n%s\n%s", out, errOut)
			}
			if tt.check != nil {
				tt.check(t, out)
			}
		})
	}
}

func TestEnvironmentVariables(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"POST /api/v1/stacks/net/runs": status(201, queued)})
	t.Setenv("GANTRY_URL", api.srv.URL)
	t.Setenv("GANTRY_TOKEN", "envtok")
	t.Setenv("GANTRY_OUTPUT", "json")
	t.Setenv("GANTRY_SHA", "fromenv")
	code, out, errOut := runMain("stack", "deploy", "--id", "net", "--sha", "flagwins")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := api.requests(); len(got) != 1 || got[0] != `POST /api/v1/stacks/net/runs {"type":"TRACKED","sha":"flagwins"}` {
		t.Errorf("requests %q", got)
	}
	if api.auth[0] != "Bearer envtok" {
		t.Errorf("authorization %q", api.auth[0])
	}
	var r apiv1.Run
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Errorf("GANTRY_OUTPUT=json not applied: %v\n%s", err, out)
	}
}

// An update changes what its command line names: settings left in the
// environment for other commands (GANTRY_SPACE for create and list) must
// not move or rename what it updates.
func TestUpdateIgnoresEnvironmentSettings(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"PATCH /api/v1/stacks/net": ok(stack)})
	t.Setenv("GANTRY_URL", api.srv.URL)
	t.Setenv("GANTRY_TOKEN", "envtok")
	t.Setenv("GANTRY_SPACE", "elsewhere")
	t.Setenv("GANTRY_NAME", "renamed")
	t.Setenv("GANTRY_AUTODEPLOY", "true")
	code, _, errOut := runMain("stack", "update", "--id", "net", "--description", "d")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := api.requests(); len(got) != 1 || got[0] != `PATCH /api/v1/stacks/net {"description":"d"}` {
		t.Errorf("requests %q, want only the description", got)
	}
	if api.auth[0] != "Bearer envtok" {
		t.Errorf("authorization %q: --token still comes from GANTRY_TOKEN", api.auth[0])
	}
}

func TestTokenFile(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"GET /api/v1/stacks/net": ok(stack)})
	file := t.TempDir() + "/token"
	if err := os.WriteFile(file, []byte("filetok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GANTRY_TOKEN_FILE", file)
	if code, _, errOut := runMain("stack", "show", "--id", "net", "--url", api.srv.URL); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if api.auth[0] != "Bearer filetok" {
		t.Errorf("authorization %q", api.auth[0])
	}
}

// TestExtraCommands checks commands added by other files get the root's
// flags and environment handling.
func TestExtraCommands(t *testing.T) {
	isolate(t)
	t.Setenv("GANTRY_LISTEN", ":9999")
	var got string
	old := extraCommands
	defer func() { extraCommands = old }()
	extraCommands = append(extraCommands, func() *cobra.Command {
		cmd := &cobra.Command{Use: "fake-extra", RunE: func(cmd *cobra.Command, _ []string) error {
			got, _ = cmd.Flags().GetString("listen")
			return fmt.Errorf("boom")
		}}
		cmd.Flags().String("listen", ":8080", "address")
		return cmd
	})
	code, _, errOut := runMain("fake-extra")
	if got != ":9999" {
		t.Errorf("listen = %q, want it from GANTRY_LISTEN", got)
	}
	if code != 1 || !strings.Contains(errOut, "Error: boom") {
		t.Errorf("exit %d stderr %q", code, errOut)
	}
}

// GANTRY_SECRET_FILE names the --secret-file flag's file; it does not also
// fill --secret (which would clash with it).
func TestFileFlagEnvironment(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{"POST /api/v1/webhooks": status(201, apiv1.Webhook{ID: "ops", Kind: "webhook"})})
	file := t.TempDir() + "/secret"
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GANTRY_SECRET_FILE", file)
	code, _, errOut := runMain("webhook", "create", "--id", "ops", "--webhook-url", "https://example.com/x", "--url", api.srv.URL, "--token", "t")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := api.requests(); len(got) != 1 || !strings.Contains(got[0], `"secret":"from-a-file"`) {
		t.Errorf("requests %q", got)
	}
}
