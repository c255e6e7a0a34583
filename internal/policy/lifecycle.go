package policy

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/policy/cloud"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/run"
)

// The run lifecycle consults policies through run.Policies.
var _ run.Policies = (*Service)(nil)

// Approval implements run.Policies: the approval policies of the run's
// stack, for a run about to wait in stage. On autodeploy stacks they are
// consulted only at QUEUED.
func (s *Service) Approval(ctx context.Context, r run.Run, stage string) (run.Verdict, error) {
	if ok, err := s.typeExists(ctx, engine.TypeApproval); err != nil || !ok {
		return run.Verdict{}, err
	}
	v, err := s.stackView(ctx, r.StackID)
	if err != nil {
		return run.Verdict{}, err
	}
	if stage == run.Unconfirmed && v.Autodeploy {
		return run.Verdict{}, nil
	}
	pols, err := s.ForStack(ctx, v.Stack, engine.TypeApproval)
	if err != nil || len(pols) == 0 {
		return run.Verdict{}, err
	}
	input, err := s.approvalInput(ctx, r, v, stage)
	if err != nil {
		return run.Verdict{}, err
	}
	ev, err := s.evaluate(ctx, pols, engine.TypeApproval, input, r.ID)
	if err != nil {
		return run.Verdict{}, err
	}
	out := run.Verdict{Record: s.record(ev)}
	d := ev.Decision
	switch {
	case len(ev.Errors) > 0:
		out.Outcome, out.Messages = run.OutcomeReject, ev.Errors // fail closed
	case d.Reject:
		out.Outcome, out.Messages = run.OutcomeReject, d.RejectNotes
	case d.Approve:
		out.Outcome, out.Messages = run.OutcomeApprove, d.ApproveNotes
	default:
		out.Outcome = run.OutcomeUndecided
		out.Messages = []string{"approval policies " + policyIDs(pols) + " have not approved yet"}
	}
	return out, nil
}

func policyIDs(pols []Policy) string {
	ids := make([]string, len(pols))
	for i, p := range pols {
		ids[i] = p.ID
	}
	return strings.Join(ids, ", ")
}

func (s *Service) approvalInput(ctx context.Context, r run.Run, v stackView, stage string) (map[string]any, error) {
	reviews, err := s.reviewsInput(ctx, r.ID, stage)
	if err != nil {
		return nil, err
	}
	var changes []any
	plan, err := s.loadPlan(ctx, r.ID)
	if err == nil && plan != nil {
		changes = planChanges(plan)
	} else {
		plan = nil
	}
	cfg, err := s.runtimeConfig(ctx, r, v.Stack)
	if err != nil {
		return nil, err
	}
	ro := runObject(r, v.Branch, changes)
	ro["runtime_config"] = runtimeConfigObject(cfg, plan)
	if ro["repository_runtime_config_changed"], err = s.runtimeConfigChanged(ctx, r, cfg); err != nil {
		return nil, err
	}
	ro["state"] = stage
	return obj{"run": ro, "stack": stackObject(v), "reviews": reviews}, nil
}

// NeedsPlan implements run.Policies: plan policies read the plan JSON.
func (s *Service) NeedsPlan(ctx context.Context, r run.Run) (bool, error) {
	if ok, err := s.typeExists(ctx, engine.TypePlan); err != nil || !ok {
		return false, err
	}
	st, err := s.stacks.Get(ctx, r.StackID)
	if err != nil {
		return false, err
	}
	pols, err := s.ForStack(ctx, st, engine.TypePlan)
	return len(pols) > 0, err
}

// Plan implements run.Policies: the plan policies of the run's stack on
// its plan JSON. A policy that cannot be evaluated denies (fail closed).
func (s *Service) Plan(ctx context.Context, r run.Run) (run.Verdict, error) {
	if ok, err := s.typeExists(ctx, engine.TypePlan); err != nil || !ok {
		return run.Verdict{}, err
	}
	v, err := s.stackView(ctx, r.StackID)
	if err != nil {
		return run.Verdict{}, err
	}
	pols, err := s.ForStack(ctx, v.Stack, engine.TypePlan)
	if err != nil || len(pols) == 0 {
		return run.Verdict{}, err
	}
	input, err := s.planInput(ctx, r, v)
	if err != nil {
		if errs.Is(err, errs.Invalid) {
			return run.Verdict{Outcome: run.OutcomeDeny, Messages: []string{err.Error()}}, nil
		}
		return run.Verdict{}, err
	}
	ev, err := s.evaluate(ctx, pols, engine.TypePlan, input, r.ID)
	if err != nil {
		return run.Verdict{}, err
	}
	out := run.Verdict{Outcome: run.OutcomeAllow, Record: s.record(ev)}
	d := ev.Decision
	switch {
	case len(ev.Errors) > 0 || len(d.Deny) > 0:
		out.Outcome, out.Messages = run.OutcomeDeny, append(append([]string{}, ev.Errors...), d.Deny...)
	case len(d.Warn) > 0:
		out.Outcome, out.Messages = run.OutcomeWarn, d.Warn
	}
	return out, nil
}

func (s *Service) planInput(ctx context.Context, r run.Run, v stackView) (map[string]any, error) {
	plan, err := s.loadPlan(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if plan == nil {
		return nil, errs.E(errs.Invalid, "the run has no plan JSON for its plan policies to read")
	}
	prev, err := s.previousRun(ctx, r, v)
	if err != nil {
		return nil, err
	}
	custom, err := s.customMetadata(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	ro, err := s.runInput(ctx, r, v, planChanges(plan), plan)
	if err != nil {
		return nil, err
	}
	sl := obj{
		"run": ro, "stack": stackObject(v),
		"commit": runCommit(r, v.Branch).object(), "request": request(r.Creator.IP, time.Now()),
	}
	// As Spacelift: on a stack's first run previous_run is missing, not null.
	if prev != nil {
		sl["previous_run"] = prev
	}
	input := obj{
		"spacelift":            sl,
		"terraform":            plan,
		"gantry":               obj{"resources": cloud.Normalize(plan)},
		"third_party_metadata": obj{"custom": custom},
	}
	if !v.RawPolicyInput {
		input = engine.SanitizePlan(input)
	}
	return input, nil
}

// customMetadata is what the worker found in <key>.custom.spacelift.json
// (or .custom.gantry.json) files at the project root. A run without such
// files has none; one whose metadata cannot be read is denied (fail
// closed: a cost policy must not pass for want of its input).
func (s *Service) customMetadata(ctx context.Context, runID string) (map[string]any, error) {
	out := obj{}
	data, err := s.runs.Artifact(ctx, runID, run.ArtifactMetadata)
	if errs.Is(err, errs.NotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, errs.E(errs.Invalid, "the run's custom policy metadata does not parse: %v", err)
	}
	return out, nil
}

// previousRun is the stack's newest terminal tracked run before r (nil if
// none), as Spacelift's previous_run; v is their stack.
func (s *Service) previousRun(ctx context.Context, r run.Run, v stackView) (obj, error) {
	runs, _, err := s.runs.List(ctx, run.Filter{Stack: r.StackID, Type: run.Tracked, Cursor: r.ID, Limit: 20})
	if err != nil {
		return nil, err
	}
	for _, p := range runs {
		if run.Terminal(p.State) {
			changes, err := s.runChanges(ctx, p)
			if err != nil {
				return nil, err
			}
			return s.runInput(ctx, p, v, changes, nil)
		}
	}
	return nil, nil
}

// Changed implements run.Policies: inside the transaction of a state
// change it records the event that drives notification policies (every
// change) and trigger policies (a blocking run that ended), so that they
// are evaluated even if the server stops right after.
func (s *Service) Changed(ctx context.Context, r run.Run, from string, at time.Time, seq int) ([]string, error) {
	var kinds []string
	if ok, err := s.anyOfType(ctx, engine.TypeNotification); err != nil {
		return nil, err
	} else if ok {
		kinds = append(kinds, EventRunUpdated)
	}
	if r.Blocking && run.Terminal(r.State) {
		// A missed trigger cannot be made up for: ask the database, not the
		// cache.
		if ok, err := s.typeExists(ctx, engine.TypeTrigger); err != nil {
			return nil, err
		} else if ok {
			kinds = append(kinds, EventRunEnded)
		}
	}
	for _, k := range kinds {
		payload, _ := json.Marshal(obj{"from": from, "state": r.State, "at": at.UnixNano(), "reason": r.Reason, "seq": seq})
		if _, err := s.db.Exec(ctx, `INSERT INTO policy_events (id, kind, run_id, payload, next_at, created_at) VALUES ($1, $2, $3, $4, $5, $5)`,
			id.New("pev"), k, r.ID, string(payload), at.UnixNano()); err != nil {
			return nil, err
		}
	}
	if len(kinds) > 0 {
		return []string{EventsKey}, nil
	}
	return nil, nil
}
