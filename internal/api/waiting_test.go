package api_test

import (
	"net/http"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
)

// A run of the built-in pool says why it may wait long only when the
// server runs no built-in worker: while the built-in workers of a server
// that has them start (the demo's first run), it says nothing.
func TestWaitingForBuiltinWorkers(t *testing.T) {
	for _, c := range []struct {
		workers int
		want    string
	}{
		{0, "no built-in worker is running (the server runs with --builtin-workers 0?) and the stack names no worker pool"},
		{2, ""},
	} {
		e := newRBACEnv(t, func(a *api.API) { a.BuiltinWorkers = c.workers })
		e.must(e.do("POST", "/api/v1/stacks", map[string]any{"id": "web", "repository": pinnedRepo}), http.StatusCreated, nil)
		var rn apiv1.Run
		e.must(e.do("POST", "/api/v1/stacks/web/runs", map[string]any{"type": "PROPOSED", "sha": pinnedSHA}), http.StatusCreated, &rn)
		if rn.State != "READY" || rn.WaitingFor != c.want {
			t.Errorf("%d built-in workers: run %s waiting for %q, want %q", c.workers, rn.State, rn.WaitingFor, c.want)
		}
	}
}
