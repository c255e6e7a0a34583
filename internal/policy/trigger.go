package policy

import (
	"context"
	"fmt"
	"slices"

	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/policy/engine"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

// maxTriggerStacks bounds input.stacks of trigger policies.
const maxTriggerStacks = 10000

// TriggeredBy is the triggered_by of runs a trigger policy started.
func TriggeredBy(policyIDs []string) string { return "trigger_policy:" + strings.Join(policyIDs, ",") }

// handleRunEnded evaluates the trigger policies of a blocking run that
// ended and starts a tracked run on every stack they name. Runs started
// this way join the ended run's workflow; a workflow never triggers a
// stack that already ran in it (loop protection), which also makes a
// retried event harmless.
func (s *Service) handleRunEnded(ctx context.Context, ev event) error {
	r, err := s.runs.Get(ctx, ev.RunID)
	if errs.Is(err, errs.NotFound) {
		return s.doneEvent(ctx, ev)
	}
	if err != nil {
		return err
	}
	if labels.Has(r.Flags, NoTriggerFlag) {
		return s.doneEvent(ctx, ev)
	}
	v, err := s.stackView(ctx, r.StackID)
	if err != nil {
		return err
	}
	pols, err := s.ForStack(ctx, v.Stack, engine.TypeTrigger)
	if err != nil {
		return err
	}
	if len(pols) == 0 {
		return s.doneEvent(ctx, ev)
	}
	wf := r.WorkflowID
	if wf == "" {
		wf = r.ID
	}
	workflow, err := s.workflow(ctx, wf)
	if err != nil {
		return err
	}
	input, err := s.triggerInput(ctx, r, v, workflow, pols)
	if err != nil {
		return err
	}
	evaluation, err := s.evaluate(ctx, pols, engine.TypeTrigger, input, r.ID)
	if err != nil {
		return err
	}
	// Check the workflow and create the runs in one transaction that holds
	// the workflow's first run: two replicas ending two runs of one
	// workflow at once cannot both start the same stack.
	return s.db.Tx(ctx, func(ctx context.Context) error {
		notes, err := s.startTriggered(ctx, r, wf, evaluation)
		if err != nil {
			return err // transient: the event is retried
		}
		for i := range evaluation.Receipts {
			evaluation.Receipts[i].Messages = append(evaluation.Receipts[i].Messages, notes[evaluation.Receipts[i].PolicyID]...)
		}
		if err := s.record(evaluation)(ctx, r.ID); err != nil {
			return err
		}
		return s.doneEvent(ctx, ev)
	})
}

// startTriggered creates the runs a trigger decision asks for and returns
// notes, by policy, on what it started and on what it did not and why:
// each policy's receipt tells only of the stacks that policy named. A
// policy may only trigger stacks that could use it: stacks whose space is
// the policy's or inherits from it.
func (s *Service) startTriggered(ctx context.Context, r run.Run, wf string, ev Evaluation) (map[string][]string, error) {
	if len(ev.Decision.Trigger) == 0 {
		return nil, nil
	}
	if _, err := s.db.Exec(ctx, `UPDATE runs SET workflow_id = id WHERE id = $1 AND workflow_id = ''`, wf); err != nil {
		return nil, err
	}
	workflow, err := s.workflow(ctx, wf)
	if err != nil {
		return nil, err
	}
	ran := map[string]bool{r.StackID: true}
	for _, w := range workflow {
		ran[w.StackID] = true
	}
	owners, err := s.FlagOwners(ctx, r.ID) // carried over with the flags
	if err != nil {
		return nil, err
	}
	notes := map[string][]string{}
	// note adds a note to the receipts of the policies in by.
	note := func(by []string, format string, args ...any) {
		for _, p := range by {
			notes[p] = append(notes[p], fmt.Sprintf(format, args...))
		}
	}
	lineages := map[string][]string{}
	for _, target := range ev.Decision.Trigger {
		named := namedBy(ev, target)
		if ran[target] {
			note(named, "stack %s not triggered: it already ran in workflow %s (loop protection)", target, wf)
			continue
		}
		by, err := s.triggerAllowed(ctx, target, ev, lineages)
		if err != nil {
			return nil, err
		}
		// A policy that named the stack but may not trigger it.
		note(slices.DeleteFunc(slices.Clone(named), func(p string) bool { return slices.Contains(by, p) }),
			"stack %s not triggered: %s", target, notTriggerable)
		if len(by) == 0 {
			continue
		}
		created, err := s.runs.Create(ctx, run.New{StackID: target, Type: run.Tracked, TriggeredBy: TriggeredBy(by), WorkflowID: wf,
			Flags: r.Flags, FlagOwners: owners,
			Reason: fmt.Sprintf("triggered by policy %s after run %s of stack %s ended %s", strings.Join(by, ","), r.ID, r.StackID, r.State)})
		switch {
		case errs.Is(err, errs.Invalid) || errs.Is(err, errs.NotFound) || errs.Is(err, errs.Conflict):
			note(by, "stack %s not triggered: %v", target, err)
			continue
		case err != nil:
			return nil, fmt.Errorf("triggering stack %s: %w", target, err)
		}
		ran[target] = true
		note(by, "triggered run %s on stack %s", created.ID, target)
	}
	return notes, nil
}

// namedBy returns the policies whose decision named target.
func namedBy(ev Evaluation, target string) []string {
	var out []string
	for i, d := range ev.Decisions {
		if slices.Contains(d.Trigger, target) {
			out = append(out, ev.Policies[i].ID)
		}
	}
	return out
}

// notTriggerable is why a policy may not trigger a stack, the same words
// for a stack that does not exist and for one in a space that does not
// see the policy's: receipts are read by whoever sees the run, and must
// not tell what exists where they cannot look.
const notTriggerable = "no such stack in the space of the policy that named it or in a space that inherits from it"

// triggerAllowed returns the policies that named target and may trigger
// it (target's space is theirs or inherits from it); none when target is
// no stack.
func (s *Service) triggerAllowed(ctx context.Context, target string, ev Evaluation, lineages map[string][]string) ([]string, error) {
	st, err := s.stacks.Get(ctx, target)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lin, ok := lineages[st.Space]
	if !ok {
		if lin, _, err = s.lineageIDs(ctx, st.Space); err != nil {
			return nil, err
		}
		lineages[st.Space] = lin
	}
	var by []string
	for i, d := range ev.Decisions {
		if slices.Contains(d.Trigger, target) && slices.Contains(lin, ev.Policies[i].Space) {
			by = append(by, ev.Policies[i].ID)
		}
	}
	return by, nil
}

// workflow returns the runs of a workflow, oldest first.
func (s *Service) workflow(ctx context.Context, wf string) ([]run.Run, error) {
	var out []run.Run
	for cursor := ""; ; {
		page, next, err := s.runs.List(ctx, run.Filter{Workflow: wf, Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	root, err := s.runs.Get(ctx, wf)
	if err == nil && root.WorkflowID == "" {
		out = append(out, root)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func (s *Service) triggerInput(ctx context.Context, r run.Run, v stackView, workflow []run.Run, pols []Policy) (map[string]any, error) {
	hist, err := s.history(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	changes, err := s.runChanges(ctx, r)
	if err != nil {
		return nil, err
	}
	ro, err := s.runInput(ctx, r, v, changes, nil)
	if err != nil {
		return nil, err
	}
	ro["states_history"] = hist
	wf := []any{}
	for _, w := range workflow {
		wf = append(wf, obj{"id": w.ID, "stack_id": w.StackID, "state": w.State, "type": w.Type})
	}
	spaces := map[string]bool{}
	for _, p := range pols {
		spaces[p.Space] = true
	}
	stacks, err := s.stacksInput(ctx, spaces)
	if err != nil {
		return nil, err
	}
	return obj{"run": ro, "stack": stackObject(v), "stacks": stacks, "workflow": wf}, nil
}

// stacksInput is input.stacks of trigger policies: every stack that sees
// one of the policies' spaces (the stacks they may trigger), with the
// number of its queued runs.
func (s *Service) stacksInput(ctx context.Context, policySpaces map[string]bool) ([]any, error) {
	queued := map[string]int{}
	rows, err := s.db.Query(ctx, `SELECT stack_id, COUNT(*) FROM runs WHERE state = 'QUEUED' GROUP BY stack_id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return nil, err
		}
		queued[st] = n
	}
	rows.Close()
	out := []any{}
	spaces := map[string]stackView{}
	for cursor := ""; len(out) < maxTriggerStacks; {
		page, next, err := s.stacks.List(ctx, stack.Filter{Cursor: cursor, Limit: 500})
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(page))
		for i, st := range page {
			ids[i] = st.ID
		}
		states, err := s.runs.StackStates(ctx, ids)
		if err != nil {
			return nil, err
		}
		tracked, err := s.runs.TrackedCommits(ctx, ids)
		if err != nil {
			return nil, err
		}
		applied, err := s.runs.AppliedToolVersions(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, st := range page {
			sv, ok := spaces[st.Space]
			if !ok {
				ids, lin, err := s.lineageIDs(ctx, st.Space)
				if err != nil {
					return nil, err
				}
				sv = stackView{space: lin[0]}
				sv.visible = false
				for _, id := range ids {
					sv.visible = sv.visible || policySpaces[id]
				}
				spaces[st.Space] = sv
			}
			if !sv.visible {
				continue
			}
			view := stackView{Stack: st, space: sv.space, state: states[st.ID], applied: applied[st.ID]}
			if r, ok := tracked[st.ID]; ok {
				view.tracked = &r
			}
			o := stackObject(view)
			o["queued_runs"] = queued[st.ID]
			out = append(out, o)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return out, nil
}
