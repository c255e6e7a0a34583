package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
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

// Head answers for pinnedRepo only; other repositories are unreachable.
const (
	pinnedRepo = "https://example.com/pinned.git"
	pinnedSHA  = "0123456789abcdef0123456789abcdef01234567"
	testRepo   = "https://example.com/infra.git"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// apiEnv is the public API on real services over SQLite, behind httptest.
type apiEnv struct {
	t      *testing.T
	url    string
	token  string // an admin API key
	runs   *run.Service
	stacks *stack.Service
	state  *state.Service
	logs   *lockedBuffer
	db     *db.DB
	// handler serves the API in process (what the test server serves).
	handler http.Handler
}

// newAPIEnv starts the API; opts may change it first (its Budget).
func newAPIEnv(t *testing.T, opts ...func(*api.API)) *apiEnv {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
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
	e := &apiEnv{t: t, stacks: stack.NewService(d, box), runs: run.NewService(d, events.NewHub(), box, log),
		state: state.NewService(d, box), logs: logs, db: d}
	e.runs.OnTerminal = func(ctx context.Context, r run.Run) error { return e.state.ReleaseRun(ctx, r.ID) }
	e.runs.OnPlanEnd = e.runs.OnTerminal // as the server does
	keys := auth.NewKeys(d)
	if e.token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	a := &api.API{Spaces: spaces, Stacks: e.stacks, Runs: e.runs, State: e.state, Keys: keys, Log: log,
		Head: func(ctx context.Context, repo, branch string) (string, error) {
			if repo == pinnedRepo {
				return pinnedSHA, nil
			}
			return "", errors.New("repository unreachable")
		}}
	for _, o := range opts {
		o(a)
	}
	mux := http.NewServeMux()
	a.Routes(mux)
	ad := httpx.Adapter{Log: log}
	e.handler = httpx.WithRequestID(ad.Recover(mux))
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	t.Cleanup(func() {
		if l := logs.String(); strings.Contains(l, "request failed") {
			t.Errorf("the server logged failed requests (500s):\n%s", l)
		}
	})
	return e
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// request is one call; token "" sends no credentials, basic sends the
// token as the basic auth password (as OpenTofu does).
type request struct {
	method, path string
	token        string
	basic        bool
	contentType  string
	header       map[string]string
	body         io.Reader
}

func (e *apiEnv) send(rq request) response {
	e.t.Helper()
	req, err := http.NewRequest(rq.method, e.url+rq.path, rq.body)
	if err != nil {
		e.t.Fatal(err)
	}
	if rq.token != "" {
		if rq.basic {
			req.SetBasicAuth("gantry", rq.token)
		} else {
			req.Header.Set("Authorization", "Bearer "+rq.token)
		}
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// do sends body (nil: none; string or []byte: as is; else JSON-encoded) as
// the admin.
func (e *apiEnv) do(method, path string, body any) response {
	e.t.Helper()
	rq := request{method: method, path: path, token: e.token}
	switch b := body.(type) {
	case nil:
	case string:
		rq.body, rq.contentType = strings.NewReader(b), "application/json"
	case []byte:
		rq.body, rq.contentType = bytes.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rq.body, rq.contentType = bytes.NewReader(raw), "application/json"
	}
	return e.send(rq)
}

// must checks the status of r and decodes its body into out (if not nil).
func (e *apiEnv) must(r response, status int, out any) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status = %s, want %d", r, status)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("decoding %s: %v", r, err)
		}
	}
}

// wantError checks that r is the error envelope with status and code.
func wantError(t *testing.T, r response, status int, code string) apiv1.ErrorDetail {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %s, want %d", r, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var b struct {
		Error *apiv1.ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error == nil {
		t.Fatalf("body %q is not the error envelope: %v", r.body, err)
	}
	if b.Error.Code != code || b.Error.Message == "" {
		t.Errorf("error = %+v, want code %q and a message", *b.Error, code)
	}
	return *b.Error
}

// createStack makes a stack through the API.
func (e *apiEnv) createStack(id string, extra map[string]any) apiv1.Stack {
	e.t.Helper()
	in := map[string]any{"id": id, "repository": testRepo}
	for k, v := range extra {
		in[k] = v
	}
	var out apiv1.Stack
	e.must(e.do("POST", "/api/v1/stacks", in), http.StatusCreated, &out)
	return out
}

// createRun triggers a run through the API.
func (e *apiEnv) createRun(stackID, typ string) apiv1.Run {
	e.t.Helper()
	var out apiv1.Run
	e.must(e.do("POST", "/api/v1/stacks/"+stackID+"/runs", map[string]any{"type": typ}), http.StatusCreated, &out)
	return out
}

// stateDoc is a version 4 state document with n resources.
func stateDoc(serial int, lineage string, n int) string {
	var res []string
	for i := range n {
		res = append(res, fmt.Sprintf(`{"mode":"managed","type":"terraform_data","name":"r%d","provider":"provider[\"terraform.io/builtin/terraform\"]","instances":[{"schema_version":0,"attributes":{"id":"%d"}}]}`, i, i))
	}
	return fmt.Sprintf(`{"version":4,"terraform_version":"1.10.7","serial":%d,"lineage":%q,"outputs":{},"resources":[%s],"check_results":null}`+"\n",
		serial, lineage, strings.Join(res, ","))
}

// tfstate sends an http backend request for a stack's state as OpenTofu
// does (basic auth).
func (e *apiEnv) tfstate(method, stackID, query, token string, body string, header map[string]string) response {
	e.t.Helper()
	path := "/api/v1/stacks/" + stackID + "/tfstate"
	if query != "" {
		path += "?" + query
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return e.send(request{method: method, path: path, token: token, basic: true, body: rd, header: header})
}
