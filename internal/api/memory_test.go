package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
)

// countingReader counts the bytes read from it: what a handler took of a
// request body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// serve sends req to the API in process (the body is read only as the
// handler reads it).
func (e *apiEnv) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

// waitBudget waits until n requests wait on b (a request queues as soon as
// it is served: this bounds a goroutine's start, not what is tested).
func waitBudget(t *testing.T, b *httpx.Budget, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, w := b.Stats(); w == n {
			return
		}
		if time.Now().After(deadline) {
			_, w := b.Stats()
			t.Fatalf("%d requests wait for the budget, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A state larger than the limit is refused from its Content-Length, before
// a byte of it is read, with a message that names the limit and the flag
// that raises it; one of unknown length is read no further than the limit.
func TestStatePostTooLargeRefusedBeforeReading(t *testing.T) {
	e := newAPIEnv(t)
	e.state.MaxSize = 1000
	e.createStack("web", nil)
	post := func(body *countingReader, length int64) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/v1/stacks/web/tfstate", body)
		req.ContentLength = length
		req.SetBasicAuth("gantry", e.token)
		return e.serve(req)
	}

	body := &countingReader{r: strings.NewReader(strings.Repeat("x", 5000))}
	rec := post(body, 5000)
	msg := wantError(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, http.StatusRequestEntityTooLarge, "too_large").Message
	if n := body.n.Load(); n != 0 {
		t.Errorf("the handler read %d bytes of a body announced past the limit, want none", n)
	}
	for _, want := range []string{"the state (5000 bytes, 4.9 KiB) is larger than this server's state size limit of 1000 bytes",
		"--max-state-size", "GANTRY_MAX_STATE_SIZE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("413 message %q lacks %q", msg, want)
		}
	}
	if l := e.logs.String(); !strings.Contains(l, "--max-state-size") || !strings.Contains(l, "stack_id=web") {
		t.Errorf("the server's log does not tell the operator about the refused state:\n%s", l)
	}

	body = &countingReader{r: strings.NewReader(strings.Repeat("x", 5000))}
	rec = post(body, -1) // chunked: no Content-Length
	msg = wantError(t, response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}, http.StatusRequestEntityTooLarge, "too_large").Message
	if n := body.n.Load(); n > 1001 {
		t.Errorf("the handler read %d bytes of a body of unknown length, want at most the limit and one", n)
	}
	if !strings.Contains(msg, "larger than this server's state size limit of 1000 bytes") || !strings.Contains(msg, "--max-state-size") {
		t.Errorf("413 message = %q", msg)
	}

	doc := stateDoc(1, "lin-1", 1)
	if rec := post(&countingReader{r: strings.NewReader(doc)}, int64(len(doc))); rec.Code != http.StatusOK {
		t.Fatalf("POST of a state under the limit = %d %s", rec.Code, rec.Body)
	}
}

// A state POST waits for its share of the memory budget before it reads
// its body: while the budget is taken, nothing of the body is read.
func TestStatePostWaitsForTheBudget(t *testing.T) {
	budget := httpx.NewBudget(100_000)
	e := newAPIEnv(t, func(a *api.API) { a.Budget = budget })
	e.createStack("web", nil)
	doc := stateDoc(1, "lin-1", 3)
	// Free: less than the two copies of the document the POST needs.
	release, err := budget.Acquire(context.Background(), 100_000-2*int64(len(doc))+1)
	if err != nil {
		t.Fatal(err)
	}
	body := &countingReader{r: strings.NewReader(doc)}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		req := httptest.NewRequest("POST", "/api/v1/stacks/web/tfstate", body)
		req.SetBasicAuth("gantry", e.token)
		done <- e.serve(req)
	}()
	waitBudget(t, budget, 1)
	if n := body.n.Load(); n != 0 {
		t.Fatalf("the waiting POST read %d bytes of its body, want none", n)
	}
	release()
	rec := <-done
	if rec.Code != http.StatusOK || body.n.Load() != int64(len(doc)) {
		t.Fatalf("POST after the budget freed = %d %s (read %d bytes)", rec.Code, rec.Body, body.n.Load())
	}
	if used, waiting := budget.Stats(); used != 0 || waiting != 0 {
		t.Errorf("budget after the POST: %d bytes held, %d waiting; want none", used, waiting)
	}
}

// Plan downloads take their weight of the budget before they load the
// plan: a redacted one (decoded, redacted, encoded again) far more than a
// whole one. Past the budget they wait, for as long as their request lasts.
func TestPlanDownloadsWaitForTheBudget(t *testing.T) {
	const size = 1 << 20
	budget := httpx.NewBudget(20 * size)
	e := newAPIEnv(t, func(a *api.API) { a.Budget = budget })
	e.must(e.do("POST", "/api/v1/spaces", map[string]any{"id": "team"}), http.StatusCreated, nil)
	e.createStack("web", map[string]any{"space": "team"})
	rn := e.createRun("web", "PROPOSED")
	// A plan JSON whose sealed size is size.
	plan := `{"format_version":"1.2","x":"` + strings.Repeat("p", size-29-len(`{"format_version":"1.2","x":""}`)) + `"}`
	if err := e.runs.PutArtifact(context.Background(), rn.ID, run.ArtifactPlanJSON, []byte(plan)); err != nil {
		t.Fatal(err)
	}
	if got, err := e.runs.ArtifactSize(context.Background(), rn.ID, run.ArtifactPlanJSON); err != nil || got != size {
		t.Fatalf("ArtifactSize = %d, %v; want %d", got, err, size)
	}
	tokens := map[string]string{}
	for _, k := range []struct{ name, role string }{{"reader", "space-reader"}, {"writer", "space-writer"}} {
		var key apiv1.APIKeyCreated
		e.must(e.do("POST", "/api/v1/api-keys", map[string]any{"name": k.name}), http.StatusCreated, &key)
		e.must(e.do("POST", "/api/v1/role-bindings", map[string]any{"role": k.role, "space": "team", "api_key": k.name}), http.StatusCreated, nil)
		tokens[k.name] = key.Token
	}
	get := func(ctx context.Context, who string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/runs/"+rn.ID+"/plan", nil)
		req.Header.Set("Authorization", "Bearer "+tokens[who])
		return e.serve(req)
	}
	// Others hold all but 3 plans' worth.
	release, err := budget.Acquire(context.Background(), 17*size)
	if err != nil {
		t.Fatal(err)
	}
	if rec := get(context.Background(), "writer"); rec.Code != http.StatusOK || rec.Body.Len() != len(plan) {
		t.Fatalf("whole plan = %d (%d bytes), want 200 and the plan", rec.Code, rec.Body.Len())
	}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- get(context.Background(), "reader") }()
	waitBudget(t, budget, 1)
	select {
	case rec := <-done:
		t.Fatalf("the redacted plan was served (%d) with 3 plans' worth of budget free, want it to wait for 8", rec.Code)
	default:
	}
	// A request that ends while it waits leaves the queue.
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan *httptest.ResponseRecorder, 1)
	go func() { gone <- get(ctx, "reader") }()
	waitBudget(t, budget, 2)
	cancel()
	if rec := <-gone; rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a request that ended while waiting = %d %s, want 503", rec.Code, rec.Body)
	}
	waitBudget(t, budget, 1)

	release()
	rec := <-done
	if rec.Code != http.StatusOK || rec.Header().Get("Gantry-Plan-Redacted") != "true" {
		t.Fatalf("redacted plan after the budget freed = %d %s", rec.Code, rec.Header())
	}
	if used, waiting := budget.Stats(); used != 0 || waiting != 0 {
		t.Errorf("budget after the downloads: %d bytes held, %d waiting; want none", used, waiting)
	}
}

// The state backend's GET reads a small state (up to 1 MiB, what OpenTofu
// reads at each command) in one query, without waiting for the budget; a
// larger one waits for its share before it is loaded.
func TestStateGetWaitsForTheBudgetWhenLarge(t *testing.T) {
	budget := httpx.NewBudget(64 << 20)
	e := newAPIEnv(t, func(a *api.API) { a.Budget = budget })
	e.createStack("small", nil)
	e.createStack("large", nil)
	small, large := stateDoc(1, "lin-s", 3), stateDoc(1, "lin-l", 20000)
	if len(large) <= 1<<20 {
		t.Fatalf("the large state is %d bytes, want over 1 MiB", len(large))
	}
	for stack, doc := range map[string]string{"small": small, "large": large} {
		if r := e.tfstate("POST", stack, "", e.token, doc, nil); r.status != http.StatusOK {
			t.Fatalf("POST %s state = %s", stack, r)
		}
	}
	get := func(stack string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/api/v1/stacks/"+stack+"/tfstate", nil)
		req.SetBasicAuth("gantry", e.token)
		return e.serve(req)
	}
	// Others hold the whole budget.
	release, err := budget.Acquire(context.Background(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if rec := get("small"); rec.Code != http.StatusOK || rec.Body.String() != small {
		t.Fatalf("small state GET with the budget taken = %d (%d bytes), want 200 and the state", rec.Code, rec.Body.Len())
	}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() { done <- get("large") }()
	waitBudget(t, budget, 1)
	release()
	if rec := <-done; rec.Code != http.StatusOK || rec.Body.String() != large {
		t.Fatalf("large state GET after the budget freed = %d (%d bytes), want 200 and the state", rec.Code, rec.Body.Len())
	}
	if used, waiting := budget.Stats(); used != 0 || waiting != 0 {
		t.Errorf("budget after the GETs: %d bytes held, %d waiting; want none", used, waiting)
	}
	// No state yet: 204, as before.
	e.createStack("empty", nil)
	if rec := get("empty"); rec.Code != http.StatusNoContent {
		t.Errorf("GET of a stack without state = %d, want 204", rec.Code)
	}
}
