package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// newContextsEnv is newAPIEnv with the context service wired in; it returns
// a client of it, its token and the server's log.
func newContextsEnv(t *testing.T) (*client.Client, string, *lockedBuffer, *space.Service) {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
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
	stacks := stack.NewService(d, box)
	keys := auth.NewKeys(d)
	token, err := keys.Create(ctx, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	a := &api.API{Spaces: spaces, Stacks: stacks, Runs: run.NewService(d, events.NewHub(), box, log), State: state.NewService(d, box),
		Keys: keys, Log: log, Contexts: contexts.NewService(d, box, spaces, stacks)}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(httpx.Adapter{Log: log}.Recover(mux)))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		if l := logs.String(); strings.Contains(l, "request failed") {
			t.Errorf("the server logged failed requests (500s):\n%s", l)
		}
	})
	return client.New(srv.URL, token), token, logs, spaces
}

func wantAPIError(t *testing.T, err error, status int, contains string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != status || !strings.Contains(ae.Message, contains) {
		t.Errorf("err = %v, want %d containing %q", err, status, contains)
	}
}

func TestContextsAPIRoundTrip(t *testing.T) {
	c, token, logs, spaces := newContextsEnv(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := spaces.Create(ctx, space.Space{ID: "prod", Inherit: true})
	must(err)
	_, err = spaces.Create(ctx, space.Space{ID: "lab"})
	must(err)
	for _, st := range []apiv1.StackCreate{{ID: "web", Space: "prod", Repository: testRepo, Labels: []string{"eu"}}, {ID: "lab-stack", Space: "lab", Repository: testRepo}} {
		_, err := c.CreateStack(ctx, st)
		must(err)
	}
	cr, err := c.CreateContext(ctx, apiv1.ContextCreate{ID: "shared", Labels: []string{"autoattach:eu"}, Description: "d"})
	must(err)
	if cr.Space != "root" || cr.Labels[0] != "autoattach:eu" {
		t.Errorf("created %+v", cr)
	}
	_, err = c.CreateContext(ctx, apiv1.ContextCreate{ID: "aws", Space: "prod"})
	must(err)
	_, err = c.CreateContext(ctx, apiv1.ContextCreate{ID: "aws"})
	wantAPIError(t, err, http.StatusConflict, "already exists")

	const secret = "api-secret-value-1234"
	v, err := c.SetContextEnv(ctx, "aws", "AWS_SECRET", apiv1.ContextEnvVarSet{Value: secret, Secret: true})
	must(err)
	if v.Value != "" || v.Checksum != contexts.Checksum([]byte(secret)) {
		t.Errorf("set secret = %+v", v)
	}
	_, err = c.SetContextEnv(ctx, "aws", "REGION", apiv1.ContextEnvVarSet{Value: "eu-west-1"})
	must(err)
	_, err = c.SetContextEnv(ctx, "shared", "REGION", apiv1.ContextEnvVarSet{Value: "us-east-1"})
	must(err)
	_, err = c.SetContextEnv(ctx, "aws", "GANTRY_X", apiv1.ContextEnvVarSet{Value: "x"})
	wantAPIError(t, err, http.StatusBadRequest, "reserved prefix")
	f, err := c.SetContextFile(ctx, "aws", "creds/token", []byte("file-secret-body"), true)
	must(err)
	if f.Path != "creds/token" || f.Size != 16 || !f.Secret {
		t.Errorf("file = %+v", f)
	}
	_, err = c.SetContextFile(ctx, "aws", "../escape", []byte("x"), false)
	wantAPIError(t, err, http.StatusBadRequest, "inside the workspace")
	_, err = c.SetContextFile(ctx, "aws", "big", make([]byte, contexts.MaxFile+1), false)
	wantAPIError(t, err, http.StatusRequestEntityTooLarge, "2 MiB")
	hk, err := c.AddContextHook(ctx, "aws", "before_plan", "echo aws")
	must(err)
	if len(hk.Hooks.BeforePlan) != 1 {
		t.Errorf("hooks = %+v", hk.Hooks)
	}
	_, err = c.AddContextHook(ctx, "aws", "sometime", "echo x")
	wantAPIError(t, err, http.StatusBadRequest, "unknown hook phase")

	// Lineage: a context of prod cannot go on a stack of lab.
	_, err = c.AttachContext(ctx, "aws", "lab-stack", 0)
	wantAPIError(t, err, http.StatusBadRequest, "does not inherit from")
	at, err := c.AttachContext(ctx, "aws", "web", 2)
	must(err)
	if at.Via != "explicit" || at.Priority != 2 {
		t.Errorf("attachment = %+v", at)
	}
	sc, err := c.StackContexts(ctx, "web")
	must(err)
	if len(sc.Items) != 2 || sc.Items[0].Context != "aws" || sc.Items[1].Via != "autoattach:eu" {
		t.Errorf("stack contexts = %+v", sc.Items)
	}
	_, err = c.SetEnv(ctx, "web", "REGION", apiv1.EnvVarSet{Value: "stack-region"})
	must(err)

	eff, err := c.EffectiveEnv(ctx, "web")
	must(err)
	got := map[string]apiv1.EffectiveEnvVar{}
	for _, v := range eff.Variables {
		got[v.Name] = v
	}
	if r := got["REGION"]; r.Source != "stack" || r.Value != "stack-region" {
		t.Errorf("REGION = %+v, want the stack's", r)
	}
	if s := got["AWS_SECRET"]; s.Source != "context" || s.Context != "aws" || s.Value != "" || s.Checksum != contexts.Checksum([]byte(secret)) {
		t.Errorf("AWS_SECRET = %+v", s)
	}
	if len(eff.Files) != 1 || eff.Files[0].Context != "aws" || len(eff.Hooks.BeforePlan) != 1 {
		t.Errorf("files %+v hooks %+v", eff.Files, eff.Hooks)
	}

	// Secrets are never in any answer, nor in the server's log.
	for _, path := range []string{"/api/v1/contexts/aws/env", "/api/v1/contexts/aws/files", "/api/v1/stacks/web/env/effective", "/api/v1/contexts/aws"} {
		req, _ := http.NewRequest("GET", c.BaseURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		must(err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte("file-secret-body")) {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the server logged a secret")
	}

	must(c.DetachContext(ctx, "aws", "web"))
	wantAPIError(t, c.DetachContext(ctx, "aws", "web"), http.StatusNotFound, "not attached")
	must(c.DeleteContextFile(ctx, "aws", "creds/token"))
	must(c.DeleteContextEnv(ctx, "aws", "REGION"))
	l, err := c.ListContexts(ctx, client.ListOptions{}, "prod")
	must(err)
	if len(l.Items) != 1 || l.Items[0].ID != "aws" {
		t.Errorf("list prod = %+v", l.Items)
	}
	must(c.DeleteContext(ctx, "aws"))
	_, err = c.GetContext(ctx, "aws")
	wantAPIError(t, err, http.StatusNotFound, "not found")
}
