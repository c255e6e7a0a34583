package run

// The plan's reports of a job: what the worker does next after planning
// (Planned, PlannedPending), the plan's counts sent later (RecordDelta),
// and the hand-off of a run that waits for a person (HandOff); a retried
// report, whose answer was lost, is answered again (plannedBefore).

import (
	"context"
	"sync"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Next steps after planning.
const (
	NextDone  = "done"  // the run ended: no changes, or proposed
	NextApply = "apply" // apply now in the same workspace
	NextSave  = "save"  // upload the workspace, then hand off: a person decides
)

// Planned records a plan's result and tells the worker what to do next.
//
// The plan policies it evaluates may take their whole timeout: a worker
// that hangs up meanwhile (its own timeout, the network) does not stop
// the report, which is carried through so that the worker's retry finds
// it made. A retry (or a duplicate) answers from the run's state what the
// report answered, without evaluating the policies again; one arriving
// while the report is still being evaluated on this server waits for it.
func (s *Service) Planned(ctx context.Context, runID, workerID string, hasChanges bool, d Delta, autodeploy bool) (string, Run, error) {
	if err := d.validate(); err != nil {
		return "", Run{}, err
	}
	ctx = context.WithoutCancel(ctx)
	defer s.reports.lock(runID)()
	if next, r, done, err := s.plannedBefore(ctx, runID, workerID); done || err != nil {
		return next, r, err
	}
	plan, review, err := s.planVerdicts(ctx, runID, workerID, hasChanges, d)
	if err != nil {
		return "", Run{}, err
	}
	next := ""
	r, err := s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if r.State != Planning {
			return errs.E(errs.Conflict, "run %s is %s, not PLANNING", r.ID, r.State)
		}
		// Only if no report was recorded meanwhile (a retry answered by
		// another server): it would be recorded twice.
		res, err := s.db.Exec(ctx, `UPDATE runs SET has_delta = TRUE, delta_add = $2, delta_change = $3, delta_destroy = $4, has_changes = $5 WHERE id = $1 AND NOT has_delta`,
			r.ID, d.Add, d.Change, d.Destroy, hasChanges)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return errs.E(errs.Conflict, "run %s already has its plan's report", r.ID)
		}
		r.HasDelta, r.Delta, r.HasChanges = true, d, hasChanges
		if err := plan.record(ctx, r.ID); err != nil {
			return err
		}
		r.Notes = planNotes(plan)
		switch {
		case r.StopRequested != "":
			next = NextDone
			return s.transition(ctx, n, r, change{to: Stopped, actor: r.StopRequested, reason: "stopped by " + r.StopRequested})
		case plan.Outcome == OutcomeDeny:
			next = NextDone
			return s.transition(ctx, n, r, change{to: Failed, actor: "policy", reason: messages("denied by plan policy", plan.Messages)})
		case !hasChanges:
			next = NextDone
			return s.transition(ctx, n, r, change{to: Finished, actor: "worker:" + workerID, reason: "no changes"})
		case r.Type == Proposed:
			next = NextDone
			return s.proposedDone(ctx, n, r, workerID, review)
		case autodeploy && plan.Outcome == OutcomeWarn:
			next = NextSave
			return nil
		case autodeploy:
			next = NextApply
			return s.transitions(ctx, n, r, change{to: Confirmed, actor: "gantry", reason: "autodeploy"},
				change{to: Applying, actor: "worker:" + workerID, reason: "applying in the workspace that planned"})
		default:
			next = NextSave
			return nil
		}
	})
	if errs.Is(err, errs.Conflict) {
		// The report was made meanwhile (a retry on another server).
		if n, r2, done, rerr := s.plannedBefore(ctx, runID, workerID); rerr == nil && done {
			return n, r2, nil
		}
	}
	return next, r, err
}

// plannedBefore answers a plan report (Planned or PlannedPending) the run
// shows was made already by this worker's job (done true): the run got its
// plan's counts and is still PLANNING (the answer was NextSave), or went
// from PLANNING straight to APPLYING (NextApply), or to its end, directly or
// through that APPLYING (NextDone: the job is over). A report whose answer
// was lost (a proxy's 502, a failure after the report committed, such as
// issuing the apply's tokens) is retried by the worker and answered so,
// without evaluating the policies again. The answer has no policy notes:
// the receipts have them.
//
// The caller's job token authenticated the run: the job is the one that
// planned (a job token dies with its job's hand-off).
func (s *Service) plannedBefore(ctx context.Context, runID, workerID string) (next string, r Run, done bool, err error) {
	if r, err = s.Get(ctx, runID); err != nil || r.WorkerID != workerID {
		return "", r, false, err
	}
	if r.State == Planning {
		// Only the report with the counts records them while PLANNING (a
		// pending one's arrive while APPLYING), and left the run there.
		return NextSave, r, r.HasDelta, nil
	}
	if r.State != Applying && !Terminal(r.State) {
		return "", r, false, nil
	}
	tr, err := s.Transitions(ctx, runID)
	if err != nil {
		return "", r, false, err
	}
	// The plan report's own moves: PLANNING -> CONFIRMED -> APPLYING, or
	// PLANNING -> the end (an apply job's run got there otherwise: its
	// CONFIRMED came from UNCONFIRMED, and its job has another token).
	from := func(back int) string {
		if len(tr) < back {
			return ""
		}
		return tr[len(tr)-back].From
	}
	autodeployed := func(back int) bool { return from(back) == Confirmed && from(back+1) == Planning }
	switch {
	case r.State == Applying && autodeployed(1):
		return NextApply, r, true, nil
	case Terminal(r.State) && (from(1) == Planning || from(1) == Applying && autodeployed(2)):
		// Ended by the report, or after it: the apply's credentials were
		// refused, or the run was stopped or failed while the worker
		// retried. The job is over either way.
		return NextDone, r, true, nil
	}
	return "", r, false, nil
}

// NextPlan asks the worker for the plan JSON before deciding.
const NextPlan = "plan"

// PlannedPending records that a TRACKED or DESTROY plan has changes whose
// JSON is not made yet. On an autodeploy stack nothing needs the plan before
// applying, so the run goes on to APPLYING at once and the worker sends the
// counts later (RecordDelta); otherwise the answer is NextPlan.
//
// As Planned's, a retry (or a duplicate) answers from the run's state what
// the report answered: the run is no longer PLANNING then, so the step
// below refuses it, and plannedBefore finds the report made (asked only
// then: no read on the way of every run).
func (s *Service) PlannedPending(ctx context.Context, runID, workerID string, autodeploy bool) (string, Run, error) {
	defer s.reports.lock(runID)()
	next := ""
	r, err := s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if r.State != Planning {
			return errs.E(errs.Conflict, "run %s is %s, not PLANNING", r.ID, r.State)
		}
		needsPlan := false
		if s.Policies != nil {
			var err error
			if needsPlan, err = s.Policies.NeedsPlan(ctx, *r); err != nil {
				return err
			}
		}
		switch {
		case r.StopRequested != "":
			next = NextDone
			return s.transition(ctx, n, r, change{to: Stopped, actor: r.StopRequested, reason: "stopped by " + r.StopRequested})
		case !autodeploy || (r.Type != Tracked && r.Type != Destroy) || needsPlan:
			next = NextPlan
			return nil
		}
		next = NextApply
		r.HasChanges = true
		return s.transitions(ctx, n, r, change{to: Confirmed, actor: "gantry", reason: "autodeploy", sets: []string{"has_changes = TRUE"}},
			change{to: Applying, actor: "worker:" + workerID, reason: "applying in the workspace that planned"})
	})
	if errs.Is(err, errs.Conflict) {
		// The report was made already: its answer was lost, or it was
		// made meanwhile on another server.
		if n, r2, done, rerr := s.plannedBefore(ctx, runID, workerID); rerr == nil && done {
			return n, r2, nil
		}
	}
	return next, r, err
}

// RecordDelta stores the counts of a plan reported pending, once.
func (s *Service) RecordDelta(ctx context.Context, runID, workerID string, d Delta) (Run, error) {
	if err := d.validate(); err != nil {
		return Run{}, err
	}
	return s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if r.HasDelta {
			return errs.E(errs.Conflict, "run %s already has its plan's counts", r.ID)
		}
		if _, err := s.db.Exec(ctx, `UPDATE runs SET has_delta = TRUE, delta_add = $2, delta_change = $3, delta_destroy = $4 WHERE id = $1`,
			r.ID, d.Add, d.Change, d.Destroy); err != nil {
			return err
		}
		r.HasDelta, r.Delta = true, d
		n.add(Key(r.ID))
		return nil
	})
}

// HandOff records that the worker saved the workspace: the run waits for a
// person, and no worker holds it.
func (s *Service) HandOff(ctx context.Context, runID, workerID string) (Run, error) {
	// As Planned: the approval policies it evaluates are not abandoned
	// when the worker hangs up.
	ctx = context.WithoutCancel(ctx)
	defer s.reports.lock(runID)()
	var verdict Verdict
	if s.Policies != nil {
		r, err := s.Get(ctx, runID)
		if err != nil {
			return r, err
		}
		r.State = Unconfirmed
		if verdict, err = s.Policies.Approval(ctx, r, Unconfirmed); err != nil {
			return r, err
		}
	}
	return s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if r.State != Planning || !r.HasChanges {
			return errs.E(errs.Conflict, "run %s is %s with no saved plan to hand off", r.ID, r.State)
		}
		if r.StopRequested != "" {
			return s.transition(ctx, n, r, change{to: Stopped, actor: r.StopRequested, reason: "stopped by " + r.StopRequested})
		}
		var k int
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM run_artifacts WHERE run_id = $1 AND name = 'workspace'`, r.ID).Scan(&k); err != nil {
			return err
		}
		if k == 0 {
			return errs.E(errs.Conflict, "run %s has no saved workspace", r.ID)
		}
		if err := s.transition(ctx, n, r, change{to: Unconfirmed, actor: "worker:" + workerID, reason: "waiting for confirmation",
			sets: []string{"worker_id = ''", "job_token_hash = ''", "state_token_hash = ''"}}); err != nil {
			return err
		}
		r.WorkerID = ""
		return s.applyApproval(ctx, n, r, Unconfirmed, verdict)
	})
}

// keyedLocks serializes work by key. The zero value is ready.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	users int
}

// lock waits for key's lock and returns its unlock.
func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
