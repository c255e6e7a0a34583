package workerapi_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// TestClaimRecordsRuntimeConfig: a plan job records what the run runs with
// (policies' runtime_config): the stack's settings, the hooks of the stack
// and its contexts in the order the job runs them, and their plain
// variables; no secret.
func TestClaimRecordsRuntimeConfig(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		box, err := secrets.NewBox(bytes.Repeat([]byte{1}, 32))
		if err != nil {
			t.Fatal(err)
		}
		cs := contexts.NewService(d, box, space.NewService(d), f.stacks)
		f.handler.Contexts = cs
		st := f.stack(t, func(s *stack.Stack) {
			s.ProjectRoot, s.ToolVersion = "envs/prod", "1.9.8"
			s.Hooks = stack.Hooks{BeforeInit: []string{"stack init"}, AfterApply: []string{"stack notify"}}
		})
		for _, v := range []stack.EnvVar{{Name: "REGION", Value: "eu-west-1"}, {Name: "DB_PASSWORD", Value: "hunter2", Secret: true}} {
			if _, err := f.stacks.SetEnv(f.ctx, st.ID, v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cs.Create(f.ctx, contexts.Context{ID: "shared", Hooks: contexts.Hooks{BeforeInit: []string{"context init"}, AfterRun: []string{"context cleanup"}}}); err != nil {
			t.Fatal(err)
		}
		for _, v := range []contexts.EnvVar{{Name: "TEAM", Value: "infra"}, {Name: "REGION", Value: "us-east-1"}, {Name: "TOKEN", Value: "s3cr3t", Secret: true}} {
			if _, err := cs.SetEnv(f.ctx, "shared", v); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cs.Attach(f.ctx, "shared", st.ID, 0); err != nil {
			t.Fatal(err)
		}
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, st.ID, run.Tracked)
		if before, err := f.runs.RuntimeConfig(f.ctx, r.ID); err != nil || before != nil {
			t.Fatalf("runtime config before a claim = %+v, %v; want none", before, err)
		}
		claim(t, c)
		got, err := f.runs.RuntimeConfig(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := &run.RuntimeConfig{ProjectRoot: "envs/prod", ToolVersion: "1.9.8",
			Hooks:       map[string][]string{"before_init": {"context init", "stack init"}, "after_apply": {"stack notify"}, "after_run": {"context cleanup"}},
			Environment: map[string]string{"REGION": "eu-west-1", "TEAM": "infra"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("recorded runtime config = %+v, want %+v", got, want)
		}
	})
}
