package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	runpkg "github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	spacepkg "github.com/gantry-iac/gantry/internal/space"
	stackpkg "github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// testAPI is the real API over a fresh SQLite database with an admin key,
// for the CLI tests: add the services a test needs to API, then serve.
type testAPI struct {
	t      *testing.T
	D      *db.DB
	Box    *secrets.Box
	Log    *slog.Logger
	Hub    *events.Hub
	Spaces *spacepkg.Service
	Stacks *stackpkg.Service
	Runs   *runpkg.Service
	Token  string // the admin API key
	API    *api.API
	URL    string // set by serve
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	ta := &testAPI{t: t, D: d, Box: box, Log: slog.New(slog.DiscardHandler), Hub: events.NewHub(), Spaces: spacepkg.NewService(d)}
	if err := ta.Spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	keys := auth.NewKeys(d)
	if ta.Token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	ta.Stacks, ta.Runs = stackpkg.NewService(d, box), runpkg.NewService(d, ta.Hub, box, ta.Log)
	ta.API = &api.API{Spaces: ta.Spaces, Stacks: ta.Stacks, Runs: ta.Runs, State: state.NewService(d, box), Keys: keys, Log: ta.Log}
	return ta
}

// serve starts the API (wrapped by wrap, if any) and returns the flags
// that point the CLI at it.
func (ta *testAPI) serve(wrap func(*http.ServeMux) http.Handler) []string {
	ta.t.Helper()
	mux := http.NewServeMux()
	ta.API.Routes(mux)
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(mux)
	}
	srv := httptest.NewServer(httpx.WithRequestID(h))
	ta.t.Cleanup(srv.Close)
	ta.URL = srv.URL
	return []string{"--url", srv.URL, "--token", ta.Token}
}
