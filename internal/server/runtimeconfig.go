package server

import (
	"context"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

// runtimeConfig says what a run of a stack would run with now, as policies
// see it: the stack's settings, the hooks and the plain variables of the
// stack and its contexts (as the worker protocol's jobs carry them).
func runtimeConfig(cs *contexts.Service) func(context.Context, stack.Stack) (run.RuntimeConfig, error) {
	return func(ctx context.Context, st stack.Stack) (run.RuntimeConfig, error) {
		c := run.RuntimeConfig{ProjectRoot: st.ProjectRoot, ToolVersion: st.ToolVersion}
		eff, err := cs.EffectiveFor(ctx, st, false)
		if err != nil {
			return c, err
		}
		for _, p := range contexts.Phases {
			c.SetHooks(p, *eff.Hooks.Phase(p))
		}
		for _, v := range eff.Env {
			c.AddEnv(v.Name, v.Value, v.Secret)
		}
		return c, nil
	}
}
