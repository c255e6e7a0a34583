package run

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/labels"
)

// notes collects the events keys to wake once a transaction committed.
type notes struct{ keys []string }

func (n *notes) add(keys ...string) { n.keys = append(n.keys, keys...) }

// tx runs fn in a transaction and wakes waiters after it committed.
func (s *Service) tx(ctx context.Context, fn func(ctx context.Context, n *notes) error) error {
	var n notes
	return s.db.Tx(ctx, func(ctx context.Context) error {
		n.keys = n.keys[:0]
		if err := fn(ctx, &n); err != nil {
			return err
		}
		// After the outermost transaction commits (a run created inside
		// another service's transaction, e.g. by the scheduler, must not
		// wake a worker before it can be seen).
		if len(n.keys) > 0 {
			keys := append([]string(nil), n.keys...)
			s.db.AfterCommit(ctx, func() { s.hub.Notify(keys...) })
		}
		return nil
	})
}

// change describes a transition and the columns that change with it.
type change struct {
	to     string
	actor  string
	reason string
	sets   []string // extra "col = ?" assignments, each ? taking the next of args
	args   []any
	// logAt is where the new state begins in the stored log: nil for the
	// log's size at the change (the server's own transitions), negative
	// for unknown (a phase reported by a worker that sent no offset).
	logAt *int64
}

// transition moves r to c.to if r is still in the state it was read in.
// It records the timeline entry, and for terminal states releases what the
// run held and lets the next run of the stack go.
func (s *Service) transition(ctx context.Context, n *notes, r *Run, c change) error {
	return s.transitions(ctx, n, r, c)
}

// transitions moves r through the states of steps in one update and one
// insert of their timeline entries (a run that autodeploys goes through
// CONFIRMED to APPLYING at once); only the last may be terminal. Each step
// is seen by the policies and notifications as if made alone.
func (s *Service) transitions(ctx context.Context, n *notes, r *Run, steps ...change) error {
	now := time.Now().UnixNano()
	last := steps[len(steps)-1]
	for _, c := range steps[:len(steps)-1] {
		if Terminal(c.to) {
			return fmt.Errorf("run %s: %s cannot be followed by another state", r.ID, c.to)
		}
	}
	set := "state = $3, updated_at = $4"
	args := []any{r.ID, r.State, last.to, now}
	var sets []string
	for i, c := range steps {
		if i == len(steps)-1 && Terminal(c.to) && c.reason != "" {
			c.sets = append(c.sets, "reason = ?")
			c.args = append(c.args, c.reason)
		}
		// Each ? takes the next argument, after the steps before.
		for _, sa := range c.sets {
			for strings.Contains(sa, "?") {
				args = append(args, c.args[0])
				c.args = c.args[1:]
				sa = strings.Replace(sa, "?", "$"+strconv.Itoa(len(args)), 1)
			}
			sets = append(sets, sa)
		}
	}
	if len(sets) > 0 {
		set += ", " + strings.Join(sets, ", ")
	}
	// The log's size at the change: where the new state begins in the
	// log, unless the worker said (see change.logAt).
	var logSize int64
	err := s.db.QueryRow(ctx, `UPDATE runs SET `+set+` WHERE id = $1 AND state = $2 RETURNING log_size`, args...).Scan(&logSize)
	if err != nil && !isNoRows(err) {
		return err
	}
	if isNoRows(err) {
		cur, err := s.Get(ctx, r.ID)
		if err != nil {
			return err
		}
		return errs.E(errs.Conflict, "run %s is %s, not %s", r.ID, cur.State, r.State)
	}
	// One row per step, numbered after the run's last entry (the update
	// above holds the run's row: no other change of it numbers meanwhile),
	// in the same statement, which returns the numbers (no round trip to
	// learn them first).
	var rows []string
	targs := []any{r.ID, now}
	from := r.State
	for i, c := range steps {
		b := len(targs)
		rows = append(rows, fmt.Sprintf("($1, (SELECT COALESCE(MAX(seq), 0) + %d FROM run_transitions WHERE run_id = $1), $%d, $%d, $2, $%d, $%d, $%d)", i+1, b+1, b+2, b+3, b+4, b+5))
		var logAt any = logSize
		if c.logAt != nil {
			logAt = *c.logAt
			if *c.logAt < 0 {
				logAt = nil
			}
		}
		targs = append(targs, from, c.to, c.actor, c.reason, logAt)
		from = c.to
	}
	seqs, err := db.Collect(ctx, s.db, func(row db.Scanner) (int, error) {
		var seq int
		return seq, row.Scan(&seq)
	}, `INSERT INTO run_transitions (run_id, seq, from_state, to_state, at, actor, reason, log_offset) VALUES `+strings.Join(rows, ", ")+` RETURNING seq`, targs...)
	if err != nil {
		return err
	}
	if len(seqs) != len(steps) {
		return fmt.Errorf("run %s: %d transitions recorded, want %d", r.ID, len(seqs), len(steps))
	}
	lastSeq := slices.Min(seqs) - 1
	n.add(Key(r.ID), LogKey(r.ID))
	wasPlanning := r.State == Planning
	for i, c := range steps {
		from := r.State
		r.State, r.UpdatedAt = c.to, time.Unix(0, now).UTC()
		if s.Policies != nil {
			keys, err := s.Policies.Changed(ctx, *r, from, time.Unix(0, now), lastSeq+i+1)
			if err != nil {
				return err
			}
			n.add(keys...)
		}
	}
	if wasPlanning && !Terminal(last.to) && last.to != Planning && s.OnPlanEnd != nil {
		// The plan is over: what the run locked while planning is let go
		// (an apply locks again itself).
		if err := s.OnPlanEnd(ctx, *r); err != nil {
			return err
		}
	}
	if Terminal(last.to) {
		if last.reason != "" {
			r.Reason = last.reason
		}
		// What was dropped of its log past the limit, at its end.
		if err := s.noteDropped(ctx, n, r.ID); err != nil {
			return err
		}
		// The saved workspace (plan and code) is only needed until the run ends.
		if _, err := s.db.Exec(ctx, `DELETE FROM run_artifacts WHERE run_id = $1 AND name = 'workspace'`, r.ID); err != nil {
			return err
		}
		if s.OnTerminal != nil {
			if err := s.OnTerminal(ctx, *r); err != nil {
				return err
			}
		}
		_, err := s.promote(ctx, n, r.StackID)
		return err
	}
	return nil
}

// promote makes the next runs of a stack READY: every queued proposed run,
// and the oldest queued blocking run if no blocking run holds the stack. A
// run waiting for review before it started (PENDING_REVIEW from QUEUED)
// does not hold the stack.
func (s *Service) promote(ctx context.Context, n *notes, stackID string) ([]Run, error) {
	// Updating the stack row serializes promotions of one stack across
	// transactions on both databases.
	var pool string
	if err := s.db.QueryRow(ctx, `UPDATE stacks SET lock_version = lock_version + 1 WHERE id = $1 RETURNING worker_pool`, stackID).Scan(&pool); err != nil {
		return nil, err
	}
	// One query: every queued non-blocking run, and the oldest queued
	// blocking run if no blocking run is active (a run waiting for review
	// of its queueing does not hold the stack).
	ready, err := db.Collect(ctx, s.db, func(row db.Scanner) (Run, error) { return scan(row) }, `SELECT `+cols+from+` WHERE r.stack_id = $1 AND r.state = 'QUEUED' AND (NOT r.blocking OR (
			r.id = (SELECT MIN(q.id) FROM runs q WHERE q.stack_id = $1 AND q.state = 'QUEUED' AND q.blocking)
			AND NOT EXISTS (SELECT 1 FROM runs b WHERE b.stack_id = $1 AND b.blocking AND b.state <> 'QUEUED' AND b.state NOT IN `+TerminalSQL+`
				AND NOT (b.state = 'PENDING_REVIEW' AND b.review_from = 'QUEUED'))))
		ORDER BY r.id`, stackID)
	if err != nil {
		return nil, err
	}
	for i := range ready {
		if err := s.transition(ctx, n, &ready[i], change{to: Ready, actor: "gantry", reason: "waiting for a worker"}); err != nil {
			return nil, err
		}
	}
	if len(ready) > 0 {
		n.add(PoolKey(pool))
	}
	return ready, nil
}

// New describes a run to create.
type New struct {
	StackID       string
	Type          string
	CommitSHA     string
	CommitMessage string
	CommitBranch  string // "" for the stack's tracked branch
	CommitAuthor  string
	CommitTag     string
	PullRequestID int
	Command       string
	TriggeredBy   string
	Reason        string
	WorkflowID    string   // the trigger chain the run joins
	Flags         []string // flags carried over (from the run that triggered it)
	// FlagOwners are the policies that own each of Flags (flag -> policy
	// ids): only they may reset it. A flag without owners stays.
	FlagOwners map[string][]string
	Drift      bool     // a drift detection run (PROPOSED only)
	Targets    []string // resource addresses to limit the plan to (TRACKED and PROPOSED)
	Creator    Creator  // what policies see of TriggeredBy
}

// Create queues a run and lets it go if the stack is free.
func (s *Service) Create(ctx context.Context, in New) (Run, error) {
	if in.Type == "" {
		in.Type = Tracked
	}
	switch in.Type {
	case Tracked, Proposed, Destroy:
		if in.Command != "" {
			return Run{}, errs.E(errs.Invalid, "only TASK runs take a command")
		}
	case Task:
		if strings.TrimSpace(in.Command) == "" {
			return Run{}, errs.E(errs.Invalid, "a TASK run needs a command")
		}
		if len(in.Command) > 8192 {
			return Run{}, errs.E(errs.Invalid, "task command longer than 8192 bytes")
		}
	default:
		return Run{}, errs.E(errs.Invalid, "run type must be TRACKED, PROPOSED, DESTROY or TASK, got %q", in.Type)
	}
	if in.Drift && in.Type != Proposed {
		return Run{}, errs.E(errs.Invalid, "only PROPOSED runs detect drift")
	}
	if len(in.Targets) > 0 {
		if in.Type != Tracked && in.Type != Proposed {
			return Run{}, errs.E(errs.Invalid, "only TRACKED and PROPOSED runs take resource targets")
		}
		if err := checkTargets(in.Targets); err != nil {
			return Run{}, err
		}
	}
	runID := id.New("run")
	var verdict Verdict
	if s.Policies != nil {
		var err error
		now := time.Now()
		verdict, err = s.Policies.Approval(ctx, Run{ID: runID, StackID: in.StackID, Type: in.Type, State: Queued, Blocking: in.Type != Proposed,
			CommitSHA: in.CommitSHA, CommitMessage: in.CommitMessage, CommitBranch: in.CommitBranch, CommitAuthor: in.CommitAuthor,
			CommitTag: in.CommitTag, PullRequestID: in.PullRequestID, TriggeredBy: in.TriggeredBy, Command: in.Command,
			Drift: in.Drift, Targets: in.Targets, Flags: in.Flags, WorkflowID: in.WorkflowID, Creator: in.Creator, CreatedAt: now, UpdatedAt: now}, Queued)
		if err != nil {
			return Run{}, err
		}
	}
	// The run is queued when its row is written, after the approval
	// policies decided whether it may be.
	created := time.Now()
	var r Run
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		now := created.UnixNano()
		// The stack's row first, as state.Service.Rollback does: a rollback
		// (refused while the stack has a run in progress) either sees this
		// run or is over before it exists.
		if _, err := s.db.Exec(ctx, `UPDATE stacks SET lock_version = lock_version + 1 WHERE id = $1`, in.StackID); err != nil {
			return err
		}
		res, err := s.db.Exec(ctx, `INSERT INTO runs (id, stack_id, space_id, type, state, blocking, commit_sha, commit_message, triggered_by, command, workflow_id, flags, drift, targets,
				creator_admin, creator_teams, creator_name, creator_ip, commit_branch, commit_author, commit_tag, pull_request_id, created_at, updated_at)
			SELECT $1, id, space_id, $3, 'QUEUED', $4, $5, $6, $7, $8, $10, $11, $12, $13, $14, $15, $20, $21, COALESCE(NULLIF($16, ''), branch), $17, $18, $19, $9, $9
			FROM stacks WHERE id = $2`,
			runID, in.StackID, in.Type, in.Type != Proposed, in.CommitSHA, in.CommitMessage, in.TriggeredBy, in.Command, now, in.WorkflowID, labels.Encode(in.Flags),
			in.Drift, labels.Encode(in.Targets), in.Creator.Admin, labels.Encode(in.Creator.Teams), in.CommitBranch, in.CommitAuthor, in.CommitTag, in.PullRequestID,
			in.Creator.Name, in.Creator.IP)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return errs.E(errs.NotFound, "stack %q not found", in.StackID)
		}
		for flag, owners := range in.FlagOwners {
			if !slices.Contains(in.Flags, flag) {
				continue
			}
			for _, p := range owners {
				if _, err := s.db.Exec(ctx, `INSERT INTO run_flag_owners (run_id, flag, policy_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, runID, flag, p); err != nil {
					return err
				}
			}
		}
		reason := in.Reason
		if reason == "" {
			reason = "triggered by " + in.TriggeredBy
		}
		if _, err := s.db.Exec(ctx, `INSERT INTO run_transitions (run_id, seq, from_state, to_state, at, actor, reason) VALUES ($1, 1, '', 'QUEUED', $2, $3, $4)`,
			runID, now, in.TriggeredBy, reason); err != nil {
			return err
		}
		if r, err = s.Get(ctx, runID); err != nil {
			return err
		}
		if s.Policies != nil {
			keys, err := s.Policies.Changed(ctx, r, "", created, 1)
			if err != nil {
				return err
			}
			n.add(keys...)
		}
		if err := s.applyApproval(ctx, n, &r, Queued, verdict); err != nil {
			return err
		}
		switch {
		case r.State == Queued && !r.Blocking:
			// A proposed run waits for no other run: ready at once.
			if err := s.transition(ctx, n, &r, change{to: Ready, actor: "gantry", reason: "waiting for a worker"}); err != nil {
				return err
			}
			n.add(PoolKey(r.Pool))
		case r.State == Queued:
			promoted, err := s.promote(ctx, n, in.StackID)
			if err != nil {
				return err
			}
			for _, p := range promoted {
				if p.ID == r.ID {
					r = p
				}
			}
		}
		// Last in the transaction: the audit head's lock is held briefly.
		return s.audit(ctx, "trigger", r, nil, map[string]string{"type": r.Type, "stack": r.StackID, "commit": r.CommitSHA, "triggered_by": r.TriggeredBy})
	})
	return r, err
}

// act applies a person's action to a run in one of the allowed states (and
// that check, if not nil, accepts).
func (s *Service) act(ctx context.Context, runID, action string, allowed []string, check func(Run) error, c change) (Run, error) {
	var r Run
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		var err error
		if r, err = s.Get(ctx, runID); err != nil {
			return err
		}
		if !contains(allowed, r.State) {
			return errs.E(errs.Conflict, "cannot %s run %s: it is %s (%s is possible only when %s)", action, runID, r.State, action, strings.Join(allowed, " or "))
		}
		if check != nil {
			if err := check(r); err != nil {
				return err
			}
		}
		before := r.State
		if err := s.transition(ctx, n, &r, c); err != nil {
			return err
		}
		if err := s.audit(ctx, action, r, stateChange(before), stateChange(r.State)); err != nil {
			return err
		}
		if c.to == Confirmed {
			n.add(PoolKey(r.Pool))
		}
		return nil
	})
	return r, err
}

// Confirm lets an UNCONFIRMED run apply its saved plan.
func (s *Service) Confirm(ctx context.Context, runID, actor string) (Run, error) {
	return s.act(ctx, runID, "confirm", []string{Unconfirmed}, nil, change{to: Confirmed, actor: actor, reason: "confirmed by " + actor})
}

// Discard drops the plan of an UNCONFIRMED run, or of one waiting for a
// review at UNCONFIRMED (PENDING_REVIEW): as in Spacelift, a run that
// needs approval before it is confirmed can be discarded at any point.
func (s *Service) Discard(ctx context.Context, runID, actor string) (Run, error) {
	return s.act(ctx, runID, "discard", []string{Unconfirmed, PendingReview}, discardable, change{to: Discarded, actor: actor, reason: "discarded by " + actor})
}

// discardable refuses the discard of a run waiting for a review before it
// started or after a proposed plan: it has no plan to discard.
func discardable(r Run) error {
	if r.State == PendingReview && r.ReviewFrom != Unconfirmed {
		return errs.E(errs.Conflict, "cannot discard run %s: it is PENDING_REVIEW from %s (discard is possible only when UNCONFIRMED, or PENDING_REVIEW from UNCONFIRMED; cancel a run that has not started)",
			r.ID, r.ReviewFrom)
	}
	return nil
}

// Cancel ends a run that has not started.
func (s *Service) Cancel(ctx context.Context, runID, actor string) (Run, error) {
	return s.act(ctx, runID, "cancel", []string{Queued, Ready, PendingReview}, nil, change{to: Canceled, actor: actor, reason: "canceled by " + actor})
}

// Stop asks the worker of a running run to stop it: at its next heartbeat
// the worker interrupts the tool (which then saves what it changed and
// unlocks the state) and reports, and the run becomes STOPPED.
func (s *Service) Stop(ctx context.Context, runID, actor string) (Run, error) {
	var r Run
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		var err error
		if r, err = s.Get(ctx, runID); err != nil {
			return err
		}
		allowed := []string{Preparing, Initializing, Planning, Performing}
		if !contains(allowed, r.State) {
			return errs.E(errs.Conflict, "cannot stop run %s: it is %s (stop is possible only when %s)", runID, r.State, strings.Join(allowed, " or "))
		}
		if r.StopRequested != "" {
			return nil
		}
		res, err := s.db.Exec(ctx, `UPDATE runs SET stop_requested = $3, updated_at = $4 WHERE id = $1 AND state = $2`, r.ID, r.State, actor, time.Now().UnixNano())
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return errs.E(errs.Conflict, "run %s changed while stopping it; try again", r.ID)
		}
		r.StopRequested = actor
		n.add(Key(r.ID))
		return s.audit(ctx, "stop", r, map[string]string{"state": r.State}, map[string]string{"state": r.State, "stop_requested": actor})
	})
	return r, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MaxTargets bounds the resource targets of one run.
const MaxTargets = 100

// checkTargets accepts resource addresses as OpenTofu's -target takes them:
// one line each, no options.
func checkTargets(targets []string) error {
	if len(targets) > MaxTargets {
		return errs.E(errs.Invalid, "at most %d resource targets", MaxTargets)
	}
	for _, t := range targets {
		if t == "" || len(t) > 1024 || strings.HasPrefix(t, "-") || strings.ContainsAny(t, "\r\n\x00 \t") {
			return errs.E(errs.Invalid, "resource target %q is not a resource address", t)
		}
	}
	return nil
}
