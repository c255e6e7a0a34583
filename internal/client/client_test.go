package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/errs"
)

// recorded is what the fake server saw of one request.
type recorded struct {
	Method, Path, RawQuery, Auth, Body string
}

// fake answers every request with status and body and records it.
func fake(t *testing.T, status int, body string) (*Client, *recorded) {
	t.Helper()
	rec := &recorded{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*rec = recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), string(b)}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return New(srv.URL+"/", "tok"), rec
}

func TestRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		status int
		body   string
		call   func(c *Client) (any, error)
		want   recorded
		check  func(t *testing.T, got any)
	}{
		{
			name: "list spaces", status: 200,
			body: `{"items":[{"id":"root","name":"root"}],"next_cursor":"c2"}`,
			call: func(c *Client) (any, error) { return c.ListSpaces(ctx, ListOptions{Limit: 5, Cursor: "c1"}) },
			want: recorded{Method: "GET", Path: "/api/v1/spaces", RawQuery: "cursor=c1&limit=5"},
			check: func(t *testing.T, got any) {
				l := got.(apiv1.List[apiv1.Space])
				if len(l.Items) != 1 || l.Items[0].ID != "root" || l.NextCursor != "c2" {
					t.Errorf("got %+v", l)
				}
			},
		},
		{
			name: "create space", status: 201, body: `{"id":"dev","name":"Dev","parent":"root"}`,
			call: func(c *Client) (any, error) {
				return c.CreateSpace(ctx, apiv1.SpaceCreate{ID: "dev", Name: "Dev", Labels: []string{"a"}})
			},
			want: recorded{Method: "POST", Path: "/api/v1/spaces", Body: `{"id":"dev","name":"Dev","labels":["a"]}`},
			check: func(t *testing.T, got any) {
				if s := got.(apiv1.Space); s.Parent != "root" || s.Name != "Dev" {
					t.Errorf("got %+v", s)
				}
			},
		},
		{
			name: "update space", status: 200, body: `{"id":"dev"}`,
			call: func(c *Client) (any, error) {
				name := "New"
				return c.UpdateSpace(ctx, "dev", apiv1.SpaceUpdate{Name: &name})
			},
			want: recorded{Method: "PATCH", Path: "/api/v1/spaces/dev", Body: `{"name":"New"}`},
		},
		{
			name: "delete space", status: 204,
			call: func(c *Client) (any, error) { return nil, c.DeleteSpace(ctx, "dev") },
			want: recorded{Method: "DELETE", Path: "/api/v1/spaces/dev"},
		},
		{
			name: "list stacks with filters", status: 200, body: `{"items":[]}`,
			call: func(c *Client) (any, error) {
				return c.ListStacks(ctx, StackListOptions{Space: "dev", Labels: []string{"a", "b"}, ListOptions: ListOptions{Limit: 1}})
			},
			want: recorded{Method: "GET", Path: "/api/v1/stacks", RawQuery: "label=a&label=b&limit=1&space=dev"},
		},
		{
			name: "delete stack force", status: 204,
			call: func(c *Client) (any, error) { return nil, c.DeleteStack(ctx, "net", true) },
			want: recorded{Method: "DELETE", Path: "/api/v1/stacks/net", RawQuery: "force=true"},
		},
		{
			name: "update stack with force", status: 200, body: `{"id":"net"}`,
			call: func(c *Client) (any, error) {
				off := false
				return c.UpdateStack(ctx, "net", apiv1.StackUpdate{ManagedState: &off}, true)
			},
			want: recorded{Method: "PATCH", Path: "/api/v1/stacks/net", RawQuery: "force=true", Body: `{"managed_state":false}`},
		},
		{
			name: "set env escapes name", status: 200, body: `{"name":"A B","secret":true}`,
			call: func(c *Client) (any, error) {
				return c.SetEnv(ctx, "net", "A B", apiv1.EnvVarSet{Value: "v", Secret: true})
			},
			want: recorded{Method: "PUT", Path: "/api/v1/stacks/net/env/A%20B", Body: `{"value":"v","secret":true}`},
		},
		{
			name: "create run", status: 201, body: `{"id":"run-1","state":"QUEUED","type":"PROPOSED"}`,
			call: func(c *Client) (any, error) {
				return c.CreateRun(ctx, "net", apiv1.RunCreate{Type: apiv1.RunProposed})
			},
			want: recorded{Method: "POST", Path: "/api/v1/stacks/net/runs", Body: `{"type":"PROPOSED"}`},
			check: func(t *testing.T, got any) {
				if r := got.(apiv1.Run); r.ID != "run-1" || r.State != apiv1.StateQueued {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "create task", status: 201, body: `{"id":"run-2","state":"QUEUED","type":"TASK"}`,
			call: func(c *Client) (any, error) {
				return c.CreateTask(ctx, "net", apiv1.TaskCreate{Command: "tofu state list"})
			},
			want: recorded{Method: "POST", Path: "/api/v1/stacks/net/tasks", Body: `{"command":"tofu state list"}`},
		},
		{
			name: "list runs", status: 200, body: `{"items":[]}`,
			call: func(c *Client) (any, error) {
				return c.ListRuns(ctx, RunListOptions{Stack: "net", State: "FAILED", Type: "TRACKED", Space: "dev"})
			},
			want: recorded{Method: "GET", Path: "/api/v1/runs", RawQuery: "space=dev&stack=net&state=FAILED&type=TRACKED"},
		},
		{
			name: "confirm run", status: 200, body: `{"id":"run-1","state":"CONFIRMED"}`,
			call: func(c *Client) (any, error) { return c.ConfirmRun(ctx, "run-1") },
			want: recorded{Method: "POST", Path: "/api/v1/runs/run-1/confirm"},
		},
		{
			name: "logs", status: 200, body: `{"offset":3,"next_offset":5,"data":"hi"}`,
			call: func(c *Client) (any, error) { return c.RunLogs(ctx, "run-1", 3, 20*time.Second) },
			want: recorded{Method: "GET", Path: "/api/v1/runs/run-1/logs", RawQuery: "offset=3&wait=20"},
		},
		{
			name: "raw state", status: 200, body: `{"serial":3}`,
			call: func(c *Client) (any, error) { return c.StateVersion(ctx, "net", "current") },
			want: recorded{Method: "GET", Path: "/api/v1/stacks/net/state/versions/current"},
			check: func(t *testing.T, got any) {
				if string(got.([]byte)) != `{"serial":3}` {
					t.Errorf("got %s", got)
				}
			},
		},
		{
			name: "rollback", status: 200, body: `{"serial":4,"current":true}`,
			call: func(c *Client) (any, error) { return c.RollbackState(ctx, "net", apiv1.StateRollback{Serial: 2}) },
			want: recorded{Method: "POST", Path: "/api/v1/stacks/net/state/rollback", Body: `{"serial":2}`},
		},
		{
			name: "health", status: 200, body: `ok`,
			call: func(c *Client) (any, error) { return nil, c.Health(ctx) },
			want: recorded{Method: "GET", Path: "/healthz"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := fake(t, tt.status, tt.body)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.want.Auth = "Bearer tok"
			if *rec != tt.want {
				t.Errorf("request:\n got %+v\nwant %+v", *rec, tt.want)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind errs.Kind
		wantCode string
		wantMsg  string
	}{
		{"not found", 404, `{"error":{"code":"not_found","message":"stack \"x\" not found"}}`, errs.NotFound, "not_found", `not_found: stack "x" not found`},
		{"conflict", 409, `{"error":{"code":"conflict","message":"busy"}}`, errs.Conflict, "conflict", "conflict: busy"},
		{"invalid 422", 422, `{"error":{"code":"invalid","message":"bad id"}}`, errs.Invalid, "invalid", "invalid: bad id"},
		{"invalid 400", 400, `{"error":{"code":"invalid","message":"bad json"}}`, errs.Invalid, "invalid", "invalid: bad json"},
		{"unauthenticated", 401, `{"error":{"code":"unauthenticated","message":"no token"}}`, errs.Unauthenticated, "unauthenticated", "unauthenticated: no token"},
		{"forbidden", 403, `{"error":{"code":"forbidden","message":"no"}}`, errs.Forbidden, "forbidden", "forbidden: no"},
		{"locked", 423, `{"error":{"code":"locked","message":"state locked"}}`, errs.Locked, "locked", "locked: state locked"},
		{"too large", 413, `{"error":{"code":"too_large","message":"big"}}`, errs.TooLarge, "too_large", "too_large: big"},
		{"not json", 502, `Bad Gateway`, errs.Internal, "internal", "internal: 502 Bad Gateway: Bad Gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fake(t, tt.status, tt.body)
			_, err := c.GetStack(context.Background(), "x")
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("got %T %v, want *APIError", err, err)
			}
			if apiErr.Status != tt.status || apiErr.Code != tt.wantCode || apiErr.Kind() != tt.wantKind {
				t.Errorf("got %+v kind %s", apiErr, apiErr.Kind())
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message %q, want %q", err.Error(), tt.wantMsg)
			}
			if !errs.Is(err, tt.wantKind) {
				t.Errorf("errs.KindOf = %s, want %s", errs.KindOf(err), tt.wantKind)
			}
		})
	}
}

// logServer serves a log that grows with each request in parts, long-polling
// (briefly) when the reader is at the end, and marks it done after the last part.
type logServer struct {
	mu    sync.Mutex
	parts []string
	log   string
	waits []string
}

func (s *logServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	offset, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	s.mu.Lock()
	s.waits = append(s.waits, r.URL.Query().Get("wait"))
	if int(offset) >= len(s.log) && len(s.parts) > 0 {
		// At the end: the next part "arrives" during the long poll.
		s.log += s.parts[0]
		s.parts = s.parts[1:]
	}
	chunk := apiv1.LogChunk{Offset: offset, Done: len(s.parts) == 0}
	// Serve at most 4 bytes per answer, like a server with a page size.
	end := min(int(offset)+4, len(s.log))
	chunk.Data = s.log[offset:end]
	chunk.NextOffset = int64(end)
	s.mu.Unlock()
	json.NewEncoder(w).Encode(chunk)
}

func TestFollowLogs(t *testing.T) {
	ls := &logServer{parts: []string{"init\n", "plan\n", "done\n"}}
	srv := httptest.NewServer(ls)
	defer srv.Close()
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := New(srv.URL, "").FollowLogs(ctx, "run-1", &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "init\nplan\ndone\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
	if ls.waits[0] != "20" || ls.waits[len(ls.waits)-1] != "" {
		t.Errorf("wait params %q: want 20 while running, none after done", ls.waits)
	}
}

func TestWaitRun(t *testing.T) {
	states := []string{"QUEUED", "PLANNING", "FINISHED", "FAILED"}
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(apiv1.Run{ID: "run-1", State: states[n]})
		n++
	}))
	defer srv.Close()
	run, err := New(srv.URL, "").WaitRun(context.Background(), "run-1",
		func(r apiv1.Run) bool { return r.State == "FINISHED" }, time.Millisecond)
	if err != nil || run.State != "FINISHED" || n != 3 {
		t.Errorf("got %+v %v after %d polls", run, err, n)
	}
}
