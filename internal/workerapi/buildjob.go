package workerapi

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/gantry-iac/gantry/internal/contexts"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/integration"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/runtoken"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/tofu"
)

// buildJob reads the job of a claimed run. pending, when set, is its token,
// recorded in the claim's transaction, to sign. It returns the job's
// credentials as minted too, to discard if the job is not handed out.
func (h *Handler) buildJob(ctx context.Context, cl *run.Claimed, pending *runtoken.Pending) (*Job, integration.Minted, error) {
	scope := jobScope(cl)
	// Signed while the rest of the job is read.
	token := h.jobToken(ctx, cl.Run, cl.Run.SpaceID, scope, pending)
	st, err := h.Stacks.Get(ctx, cl.Run.StackID)
	if err != nil {
		return nil, integration.Minted{}, err
	}
	repo, err := h.Stacks.CloneURL(st)
	if err != nil {
		return nil, integration.Minted{}, err
	}
	job := &Job{
		RunID: cl.Run.ID, Kind: cl.Kind, Token: cl.Token, StateToken: cl.StateToken, RunType: cl.Run.Type,
		StackID: st.ID, SpaceID: st.Space, Repository: repo, Branch: st.Branch,
		CommitSHA: cl.Run.CommitSHA, ProjectRoot: st.ProjectRoot, Tool: st.Tool, ToolVersion: st.ToolVersion,
		Command: cl.Run.Command, Targets: cl.Run.Targets, Drift: cl.Run.Drift, ManagedState: st.ManagedState, Autodeploy: st.Autodeploy,
		StatePath: "/api/v1/stacks/" + st.ID + "/tfstate", LogOffset: cl.Run.LogReceived,
		Hooks: Hooks{BeforeInit: st.Hooks.BeforeInit, AfterInit: st.Hooks.AfterInit, BeforePlan: st.Hooks.BeforePlan,
			AfterPlan: st.Hooks.AfterPlan, BeforeApply: st.Hooks.BeforeApply, AfterApply: st.Hooks.AfterApply},
		StackLabels: st.Labels, ReportTimeoutMS: h.ReportTimeout.Milliseconds(), MaxStateSize: h.MaxStateSize,
		AccountName: h.AccountName, RunTrigger: cl.Run.TriggeredBy, RunState: cl.Run.State,
	}
	if cl.Kind == run.KindApply {
		// The plan is read by the tool and version that made it, whatever
		// the stack says now.
		job.Tool, job.ToolVersion = applyTool(cl.Run, st)
	}
	if st.Space != cl.Run.SpaceID {
		// The stack moved since the run was queued: a token of its space.
		token = h.jobToken(ctx, cl.Run, st.Space, scope, nil)
	}
	// The integrations are looked up while the token is signed and the
	// environment read; anything is minted only once both succeeded (a job
	// that cannot be built mints nothing in the clouds).
	proceed := make(chan error, 1)
	var releaseOnce sync.Once
	release := func(err error) { releaseOnce.Do(func() { proceed <- err }) }
	defer release(errors.New("the job could not be built"))
	type minted struct {
		creds jobCredentials
		err   error
	}
	credc := make(chan minted, 1)
	go func() {
		var m minted
		m.creds, m.err = h.credentials(ctx, cl.Run, st, scope, func() error { return <-proceed })
		credc <- m
	}()
	// The environment is read meanwhile too.
	if h.Contexts == nil {
		vars, err := h.Stacks.EnvForJob(ctx, st.ID)
		if err != nil {
			return nil, integration.Minted{}, err
		}
		for _, v := range vars {
			job.Env = append(job.Env, EnvVar{Name: v.Name, Value: v.Value, Secret: v.Secret})
		}
	} else {
		// The stack's environment merged with its contexts' (stack first,
		// then attached contexts by priority, then auto-attached ones), and
		// the hooks in Spacelift's order.
		eff, err := h.Contexts.EffectiveFor(ctx, st, true)
		if err != nil {
			return nil, integration.Minted{}, err
		}
		for _, v := range eff.Env {
			job.Env = append(job.Env, EnvVar{Name: v.Name, Value: v.Value, Secret: v.Secret, Rank: v.Rank})
		}
		for _, f := range eff.Files {
			job.Files = append(job.Files, File{Path: f.Path, Content: f.Content, Secret: f.Secret})
		}
		job.Hooks = Hooks(eff.Hooks)
	}
	if cl.Kind != run.KindApply {
		// What policies see of the run from now on (runtime_config), and
		// the tool its plan is made with, for its apply job.
		if err := h.Runs.SetRuntimeConfig(ctx, cl.Run.ID, runtimeConfig(job), job.Tool); err != nil {
			return nil, integration.Minted{}, err
		}
	}
	if job.OIDCToken, err = token(); err != nil {
		return nil, integration.Minted{}, err
	}
	release(nil)
	m := <-credc
	if m.err != nil {
		return nil, integration.Minted{}, m.err
	}
	job.Revoke, job.CredentialFiles, job.Delegated = m.creds.revoke, m.creds.files, m.creds.delegated
	job.Env = append(job.Env, m.creds.env...)
	return job, m.creds.minted, nil
}

// applyTool is the tool and version of an apply job after a confirmation:
// those that made the run's plan (its plan JSON's version, without the
// "-dev" of a source build, which the binary's version check drops too).
// A run planned before Gantry recorded its tool takes the stack's.
func applyTool(rn run.Run, st stack.Stack) (tool, version string) {
	if rn.Tool == "" {
		return st.Tool, st.ToolVersion
	}
	version = strings.TrimSuffix(rn.ToolVersion, "-dev")
	if !tofu.ValidVersion(version) {
		version = ""
		if rn.Tool == st.Tool {
			version = st.ToolVersion
		}
	}
	return rn.Tool, version
}

// jobCredentials are the cloud integrations' credentials of a job, as the
// worker gets them, and as minted (to discard if no worker gets them).
type jobCredentials struct {
	env       []EnvVar
	revoke    []Revoke
	files     []File
	delegated []Delegation
	minted    integration.Minted
}

// discard revokes what was minted for a job of rn that no worker gets
// (a failure is logged: the credentials expire anyway).
func (h *Handler) discard(ctx context.Context, rn run.Run, m integration.Minted) {
	if h.Integrations == nil || len(m.Revoke) == 0 {
		return
	}
	if err := h.Integrations.Discard(ctx, m); err != nil {
		h.Log.Warn("revoking the credentials of a job no worker got failed (they expire by themselves)", "run_id", rn.ID, "err", err)
	}
}

// runtimeConfig is what policies see of a job (before the integrations'
// credentials join its environment): the stack's settings, the hooks and
// the plain variables of the stack and its contexts.
func runtimeConfig(job *Job) run.RuntimeConfig {
	c := run.RuntimeConfig{ProjectRoot: job.ProjectRoot, ToolVersion: job.ToolVersion}
	hooks := contexts.Hooks(job.Hooks)
	for _, p := range contexts.Phases {
		c.SetHooks(p, *hooks.Phase(p))
	}
	for _, v := range job.Env {
		c.AddEnv(v.Name, v.Value, v.Secret)
	}
	return c
}

// credentials mints the stack's cloud integrations' credentials for the
// run's scope: variables ranked above the stack's and its contexts' (an
// integration's credentials are not shadowed by accident), secret when
// they are credentials, plain when they are settings (a region, an id).
// ready, if set, is waited for before anything is minted.
func (h *Handler) credentials(ctx context.Context, rn run.Run, st stack.Stack, scope string, ready func() error) (jobCredentials, error) {
	if h.Integrations == nil {
		return jobCredentials{}, nil
	}
	req := integration.Request{RunID: rn.ID, RunType: rn.Type, StackID: st.ID, SpaceID: st.Space, Scope: scope, Ready: ready,
		Token: func(ctx context.Context, audience string) (string, error) {
			if h.Tokens == nil {
				return "", errs.E(errs.Unavailable, "this server issues no OIDC tokens")
			}
			path := st.Space
			if h.SpacePath != nil {
				if p, err := h.SpacePath(ctx, st.Space); err == nil {
					path = p
				}
			}
			tok, _, err := h.Tokens.Issue(ctx, runtoken.Run{SpaceID: st.Space, SpacePath: path, StackID: st.ID, RunID: rn.ID,
				RunType: rn.Type, Scope: scope, Audience: audience})
			return tok, err
		}}
	m, err := h.Integrations.Credentials(ctx, st, req)
	if err != nil {
		return jobCredentials{}, err
	}
	out := make([]EnvVar, 0, len(m.Env))
	for _, v := range m.Env {
		out = append(out, EnvVar{Name: v.Name, Value: v.Value, Secret: v.Secret, Rank: -1})
	}
	var rv []Revoke
	for _, x := range m.Revoke {
		rv = append(rv, Revoke{Kind: x.Kind, Address: x.Address, Namespace: x.Namespace, TokenVar: x.TokenVar})
	}
	var files []File
	for _, f := range m.Files {
		files = append(files, File{Path: f.Name, Content: f.Content, Secret: f.Secret})
	}
	var del []Delegation
	for _, d := range m.Delegated {
		del = append(del, Delegation{ID: d.Integration.ID, Type: d.Integration.Type, Config: d.Integration.Config, Token: d.Token})
	}
	return jobCredentials{env: out, revoke: rv, files: files, delegated: del, minted: m}, nil
}
