package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/workerapi"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// poolServer is the real API with worker pools over SQLite; it returns the
// flags that point the CLI at it, the pool service and the worker registry.
func poolServer(t *testing.T) ([]string, *workerpool.Service, *workerapi.Registry) {
	t.Helper()
	ta := newTestAPI(t)
	pools := workerpool.NewService(ta.D, ta.Spaces, ta.Hub)
	ta.API.Pools = pools
	return ta.serve(nil), pools, workerapi.NewRegistry(ta.D)
}

// lastLine is the last line of out: where create and reset print the token.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func TestWorkerPoolCommands(t *testing.T) {
	isolate(t)
	conn, pools, reg := poolServer(t)
	ctx := context.Background()
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }

	// Create prints the token once, last, after the warning.
	code, out, errOut := cli("workerpool", "create", "--id", "eu", "--space", "root", "--label", "private", "--description", "EU workers")
	wantRun(t, code, out, errOut, 0, "ID:", "eu", "Space:", "root", "Labels:", "private", "shown only this once", workerpool.TokenPrefix)
	token := lastLine(out)
	if p, ok, _ := pools.Authenticate(ctx, token); !ok || p != "eu" {
		t.Fatalf("the printed token %q does not authenticate pool eu", token)
	}
	// --space is required.
	code, out, errOut = cli("workerpool", "create", "--id", "x")
	if code != 2 || !strings.Contains(errOut, "space") {
		t.Errorf("create without --space: exit %d\n%s%s", code, out, errOut)
	}
	// -o json includes the token.
	code, out, errOut = cli("workerpool", "create", "--id", "us", "--name", "US", "--space", "root", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	var created apiv1.WorkerPoolToken
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID != "us" || created.Name != "US" ||
		!strings.HasPrefix(created.Token, workerpool.TokenPrefix) {
		t.Fatalf("create -o json = %s (%v)", out, err)
	}
	tokens := []string{token, created.Token}

	code, out, errOut = cli("workerpool", "list", "--space", "root")
	wantRun(t, code, out, errOut, 0, "ID", "NAME", "SPACE", "eu", "EU workers", "us", "US")

	// A stack pinned to the pool; the pool cannot be deleted while it is.
	code, out, errOut = cli("stack", "create", "--id", "net", "--repository", "https://git.example.com/net.git", "--worker-pool", "eu")
	wantRun(t, code, out, errOut, 0, "Worker pool:", "eu")
	code, out, errOut = cli("stack", "create", "--id", "bad", "--repository", "https://git.example.com/net.git", "--worker-pool", "nope")
	if code != 1 || !strings.Contains(errOut, `worker pool "nope" does not exist`) {
		t.Errorf("stack with an unknown pool: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("workerpool", "delete", "--id", "eu")
	if code != 1 || !strings.Contains(errOut, "used by 1 stacks") {
		t.Errorf("delete of a pool in use: exit %d\n%s%s", code, out, errOut)
	}

	// Workers, their status, drain.
	code, out, errOut = cli("workerpool", "workers", "--id", "eu")
	wantRun(t, code, out, errOut, 0, "ID", "NAME", "STATUS", "VERSION", "JOBS", "LAST SEEN", "LABELS", "TOOLS")
	// A worker reports its release in its tools (workerapi.ToolGantry):
	// shown as its version, once; one that did not (older) shows "-".
	if _, _, err := reg.Register(ctx, "us", workerapi.RegisterRequest{Name: "new-box",
		Tools: map[string]string{workerapi.ToolGantry: "v1.2.3", "tofu": "1.10.7"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Register(ctx, "us", workerapi.RegisterRequest{Name: "old-box"}, nil); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli("workerpool", "workers", "--id", "us")
	wantRun(t, code, out, errOut, 0, "new-box", "v1.2.3", "tofu=1.10.7")
	if strings.Contains(out, "gantry=") || !regexp.MustCompile(`old-box +IDLE +- `).MatchString(out) {
		t.Errorf("workers of pool us:\n%s", out)
	}
	code, out, errOut = cli("workerpool", "workers", "--id", "us", "-o", "json")
	wantRun(t, code, out, errOut, 0, `"version": "v1.2.3"`)
	// A server of an older release sends no version: the tools have it.
	var buf bytes.Buffer
	workerTable(&buf, []apiv1.Worker{{ID: "wrk-1", Name: "box", Status: "IDLE", Tools: map[string]string{"gantry": "v1.2.3", "tofu": "1.10.7"}}}, time.Now())
	if got := buf.String(); !regexp.MustCompile(`box\s+IDLE\s+v1\.2\.3\s`).MatchString(got) || strings.Contains(got, "gantry=") {
		t.Errorf("a worker listed by an older server:\n%s", got)
	}
	w, _, err := reg.Register(ctx, "eu", workerapi.RegisterRequest{Name: "box-1", Labels: map[string]string{"region": "eu", "az": "a"},
		Tools: map[string]string{"opentofu": "1.10.7"}, Concurrency: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli("workerpool", "workers", "--id", "eu")
	wantRun(t, code, out, errOut, 0, w.ID, "box-1", "IDLE", "az=a,region=eu", "opentofu=1.10.7")
	code, out, errOut = cli("worker", "drain", "--pool", "eu", "--id", w.ID)
	wantRun(t, code, out, errOut, 0, "drained")
	code, out, errOut = cli("workerpool", "show", "--id", "eu")
	wantRun(t, code, out, errOut, 0, "ID:", "eu", "Description:", "EU workers", w.ID, "DRAINED")
	code, out, errOut = cli("workerpool", "show", "--id", "eu", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	var shown poolWithWorkers
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.ID != "eu" || len(shown.Workers) != 1 ||
		shown.Workers[0].Status != apiv1.WorkerDrained || shown.Workers[0].Concurrency != 2 {
		t.Errorf("show -o json = %s (%v)", out, err)
	}
	code, out, errOut = cli("workerpool", "show", "--id", "builtin")
	wantRun(t, code, out, errOut, 0, "builtin", "No workers registered.")
	code, out, errOut = cli("workerpool", "workers", "--id", "builtin", "-o", "json")
	wantRun(t, code, out, errOut, 0, "[]")
	code, _, errOut = cli("worker", "drain", "--pool", "eu", "--id", "wrk-nope")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("drain of an unknown worker: exit %d %s", code, errOut)
	}

	// Update.
	code, out, errOut = cli("workerpool", "update", "--id", "eu", "--name", "Europe", "--label", "")
	wantRun(t, code, out, errOut, 0, "Name:", "Europe", "Labels:", "-")
	if code, _, _ = cli("workerpool", "update", "--id", "eu"); code != 2 {
		t.Errorf("update without changes: exit %d, want 2", code)
	}

	// Reset: a new token, the old one stops working and the workers go.
	code, out, errOut = cli("workerpool", "reset", "--id", "eu")
	wantRun(t, code, out, errOut, 0, "Europe", "new pool token", "shown only this once")
	newToken := lastLine(out)
	if p, ok, _ := pools.Authenticate(ctx, newToken); !ok || p != "eu" || newToken == token {
		t.Errorf("the reset token %q does not authenticate pool eu", newToken)
	}
	if _, ok, _ := pools.Authenticate(ctx, token); ok {
		t.Errorf("the old token still works after reset")
	}
	tokens = append(tokens, newToken)
	code, out, errOut = cli("workerpool", "workers", "--id", "eu", "-o", "json")
	wantRun(t, code, out, errOut, 0, "[]")

	// Tokens appear nowhere else.
	for _, args := range [][]string{
		{"workerpool", "list"}, {"workerpool", "list", "-o", "json"}, {"workerpool", "show", "--id", "eu", "-o", "json"},
		{"workerpool", "show", "--id", "us"}, {"stack", "show", "--id", "net", "-o", "json"},
	} {
		_, out, errOut := cli(args...)
		for _, tok := range tokens {
			if strings.Contains(out+errOut, tok) {
				t.Errorf("%v prints a pool token:\n%s", args, out)
			}
		}
	}

	// Move the stack back to the built-in pool; then the pool can go.
	code, out, errOut = cli("stack", "update", "--id", "net", "--worker-pool", "")
	wantRun(t, code, out, errOut, 0, "Worker pool:", "builtin")
	code, out, errOut = cli("workerpool", "delete", "--id", "eu")
	wantRun(t, code, out, errOut, 0, `Deleted worker pool "eu".`)
	code, _, errOut = cli("workerpool", "show", "--id", "eu")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("show of a deleted pool: exit %d %s", code, errOut)
	}
}

func TestWorkerPoolRequestsOfStackFlags(t *testing.T) {
	isolate(t)
	api := newFake(t, map[string]route{
		"POST /api/v1/stacks":      status(201, stack),
		"PATCH /api/v1/stacks/net": ok(stack),
	})
	conn := []string{"--url", api.srv.URL, "--token", "t"}
	if code, _, errOut := runMain(append([]string{"stack", "create", "--id", "net", "--repository", "/r", "--worker-pool", "eu"}, conn...)...); code != 0 {
		t.Fatalf("create: %s", errOut)
	}
	if code, _, errOut := runMain(append([]string{"stack", "update", "--id", "net", "--worker-pool", ""}, conn...)...); code != 0 {
		t.Fatalf("update: %s", errOut)
	}
	want := []string{`POST /api/v1/stacks {"id":"net","repository":"/r","worker_pool":"eu"}`, `PATCH /api/v1/stacks/net {"worker_pool":""}`}
	if got := api.requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests %q, want %q", got, want)
	}
}
