package policy

import (
	"context"

	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

// hookPhases are the hook lists of Spacelift's runtime_config.
var hookPhases = []string{"before_init", "after_init", "before_plan", "after_plan", "before_apply", "after_apply",
	"before_destroy", "after_destroy", "before_perform", "after_perform", "after_run"}

// runtimeConfig is what r runs with, as its runtime_config shows: what its
// job ran with once a worker took it; before, what it would run with now;
// nil for a run that ended without a job (or ran before Gantry recorded
// it).
func (s *Service) runtimeConfig(ctx context.Context, r run.Run, st stack.Stack) (*run.RuntimeConfig, error) {
	c, err := s.runs.RuntimeConfig(ctx, r.ID)
	if err != nil || c != nil || run.Terminal(r.State) {
		return c, err
	}
	now, err := s.currentRuntimeConfig(ctx, st)
	if err != nil {
		return nil, err
	}
	return &now, nil
}

// currentRuntimeConfig is what a run of st would run with now.
func (s *Service) currentRuntimeConfig(ctx context.Context, st stack.Stack) (run.RuntimeConfig, error) {
	if s.RuntimeConfig != nil {
		return s.RuntimeConfig(ctx, st)
	}
	c := run.RuntimeConfig{ProjectRoot: st.ProjectRoot, ToolVersion: st.ToolVersion}
	for p, cmds := range map[string][]string{"before_init": st.Hooks.BeforeInit, "after_init": st.Hooks.AfterInit,
		"before_plan": st.Hooks.BeforePlan, "after_plan": st.Hooks.AfterPlan, "before_apply": st.Hooks.BeforeApply, "after_apply": st.Hooks.AfterApply} {
		c.SetHooks(p, cmds)
	}
	vars, err := s.stacks.ListEnv(ctx, st.ID)
	if err != nil {
		return c, err
	}
	for _, v := range vars {
		c.AddEnv(v.Name, v.Value, v.Secret)
	}
	return c, nil
}

// runtimeConfigObject is Spacelift's runtime_config of c (nil: nothing
// known, every field empty). Without a tool version set on the stack, the
// version is the plan's, the one that ran, when there is a plan.
// runner_image and git_sparse_checkout_paths have no Gantry equivalent.
func runtimeConfigObject(c *run.RuntimeConfig, plan map[string]any) obj {
	if c == nil {
		c = &run.RuntimeConfig{}
	}
	version := c.ToolVersion
	if v, ok := plan["terraform_version"].(string); ok && version == "" {
		version = v
	}
	env := obj{}
	for k, v := range c.Environment {
		env[k] = v
	}
	o := obj{"project_root": c.ProjectRoot, "terraform_version": version, "environment": env,
		"runner_image": "", "git_sparse_checkout_paths": []any{}}
	for _, p := range hookPhases {
		o[p] = strs(nonNil(c.Hooks[p]))
	}
	return o
}

// runInput is the run object of r, a run of the stack of v, with its
// runtime_config; plan, if not nil, is its plan JSON.
func (s *Service) runInput(ctx context.Context, r run.Run, v stackView, changes []any, plan map[string]any) (obj, error) {
	ro := runObject(r, v.Branch, changes)
	c, err := s.runtimeConfig(ctx, r, v.Stack)
	if err != nil {
		return nil, err
	}
	ro["runtime_config"] = runtimeConfigObject(c, plan)
	return ro, nil
}

// runtimeConfigChanged is the approval input's
// repository_runtime_config_changed. Gantry reads no runtime configuration
// from the repository: it says whether c, what r runs with, differs from
// what the stack's newest earlier run that started a job ran with (false
// when there is none, or r never ran: c is nil).
func (s *Service) runtimeConfigChanged(ctx context.Context, r run.Run, c *run.RuntimeConfig) (bool, error) {
	if c == nil {
		return false, nil
	}
	prev, err := s.runs.PreviousRuntimeConfig(ctx, r.StackID, r.ID)
	if err != nil || prev == nil {
		return false, err
	}
	return !c.Equal(*prev), nil
}
