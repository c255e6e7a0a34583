package server

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// What policies see of a run no worker took yet is what its job would
// carry: the hooks of the stack and its contexts in the job's order, and
// their plain variables (the stack's win); no secret.
func TestRuntimeConfigOfAStack(t *testing.T) {
	ctx := context.Background()
	d := dbtest.SQLite(t)
	box, err := secrets.NewBox(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	stacks := stack.NewService(d, box)
	cs := contexts.NewService(d, box, spaces, stacks)
	st, err := stacks.Create(ctx, stack.Stack{ID: "app", Repository: "https://example.com/x.git", ProjectRoot: "envs/prod",
		Hooks: stack.Hooks{BeforeInit: []string{"stack init"}, AfterApply: []string{"stack notify"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []stack.EnvVar{{Name: "REGION", Value: "eu-west-1"}, {Name: "DB_PASSWORD", Value: "hunter2", Secret: true}} {
		if _, err := stacks.SetEnv(ctx, st.ID, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.Create(ctx, contexts.Context{ID: "shared", Hooks: contexts.Hooks{BeforeInit: []string{"context init"}, AfterRun: []string{"context cleanup"}}}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []contexts.EnvVar{{Name: "TEAM", Value: "infra"}, {Name: "REGION", Value: "us-east-1"}, {Name: "TOKEN", Value: "s3cr3t", Secret: true}} {
		if _, err := cs.SetEnv(ctx, "shared", v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.Attach(ctx, "shared", st.ID, 0); err != nil {
		t.Fatal(err)
	}
	got, err := runtimeConfig(cs)(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	want := run.RuntimeConfig{ProjectRoot: "envs/prod",
		Hooks:       map[string][]string{"before_init": {"context init", "stack init"}, "after_apply": {"stack notify"}, "after_run": {"context cleanup"}},
		Environment: map[string]string{"REGION": "eu-west-1", "TEAM": "infra"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runtime config = %+v, want %+v", got, want)
	}
}
