package run

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/truncate"
)

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
func isFK(err error) bool     { return db.IsForeignKeyViolation(err) }

// Job kinds.
const (
	KindPlan  = "plan"  // plan (and apply at once when nobody has to confirm)
	KindApply = "apply" // apply a saved plan after confirmation
	KindTask  = "task"  // init then a user command
)

// FeatureTargets is the worker feature a targeted run (Run.Targets set)
// needs: a worker that does not name it at register (one built before
// targeted runs) would plan, and apply, everything.
const FeatureTargets = "targets"

// Needs returns the worker features a run needs (see Claim: a worker
// without them is not given the run), in the order the claim checks them.
func (r Run) Needs() []string {
	if len(r.Targets) > 0 {
		return []string{FeatureTargets}
	}
	return nil
}

// Claimed is a run a worker just claimed, with the token for its job.
type Claimed struct {
	Run   Run
	Kind  string
	Token string // gjt_<run>_<secret>; valid until the run ends or is handed off
	// StateToken is the run's credential for its stack's state backend
	// (gst_<run>_<secret>): the code a run executes sees it, so it is not
	// the job token, which could report on the job.
	StateToken string
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// Claim gives the next claimable run of the pool to a worker: blocking runs
// before proposed runs, FIFO within a class; confirmed runs waiting for an
// apply count as blocking. It returns nil when nothing is claimable. Each
// of within runs in the claim's transaction once the run is claimed (its
// error undoes the claim): to record what the job is given with it.
func (s *Service) Claim(ctx context.Context, pool, workerID string, within ...func(ctx context.Context, cl *Claimed) error) (*Claimed, error) {
	for attempt := 0; attempt < 5; attempt++ {
		var out *Claimed
		lost := false
		err := s.tx(ctx, func(ctx context.Context, n *notes) error {
			// The run, locked (PostgreSQL: skipping runs other claims
			// hold), in one statement.
			lock := ""
			if s.db.ForUpdateSkipLocked() != "" {
				lock = " FOR UPDATE OF r SKIP LOCKED"
			}
			// A drained worker gets nothing, nor one that lacks a feature the
			// run needs (a targeted plan: "targets"; keep Run.Needs in step,
			// which tells why a run waits). A private pool gets
			// only the runs of stacks it may serve (poolServes).
			r, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+from+` WHERE r.state IN ('READY', 'CONFIRMED') AND r.worker_id = ''
				AND s.worker_pool = $1 AND `+poolServes+` AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = $2
					AND (w.drained OR (r.targets NOT IN ('', '[]') AND w.features NOT LIKE '%"targets"%')))
				ORDER BY r.blocking DESC, r.drift, r.id LIMIT 1`+lock, pool, workerID))
			if isNoRows(err) {
				return nil
			}
			if err != nil {
				return err
			}
			state := r.State
			token := "gjt_" + r.ID + "_" + id.Secret(32)
			stateToken := "gst_" + r.ID + "_" + id.Secret(32)
			kind, to, reason := KindPlan, Preparing, "claimed by worker "+workerID
			if r.Type == Task {
				kind = KindTask
			}
			if state == Confirmed {
				kind, to, reason = KindApply, Applying, "apply claimed by worker "+workerID
			}
			now := time.Now().UnixNano()
			err = s.transition(ctx, n, &r, change{to: to, actor: "worker:" + workerID, reason: reason,
				sets: []string{"worker_id = ?", "job_token_hash = ?", "heartbeat_at = ?", "state_token_hash = ?"},
				args: []any{workerID, hashToken(token), now, hashToken(stateToken)}})
			if errs.Is(err, errs.Conflict) {
				lost = true
				return nil
			}
			if err != nil {
				return err
			}
			r.WorkerID = workerID
			out = &Claimed{Run: r, Kind: kind, Token: token, StateToken: stateToken}
			for _, f := range within {
				if err := f(ctx, out); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !lost {
			return out, nil
		}
	}
	return nil, nil
}

// poolServes is the claim's condition that pool $1 may run the jobs of
// stack s: the built-in pool ("") runs those of the stacks naming it; a
// private pool those of the stacks in its space, or in a space below it
// that inherits from it through every space on the way (the rule of
// workerpool.Service.Usable, which is checked when a stack is set to a
// pool). Checked again at each claim, so that a stack never hands its
// jobs, with their secrets, to a pool it may not use: one of another team
// that took the id of a deleted pool, or a pool its space stopped
// inheriting from.
const poolServes = `($1 = '' OR s.space_id IN (
	WITH RECURSIVE served(id) AS (
		SELECT space_id FROM worker_pools WHERE id = $1
		UNION SELECT c.id FROM spaces c JOIN served p ON c.parent_id = p.id WHERE c.inherit)
	SELECT id FROM served))`

// Unclaim gives back a run a worker claimed but never received (it left
// while the claim committed): PREPARING goes back to READY, APPLYING (an
// apply job) back to CONFIRMED, for another worker to claim.
func (s *Service) Unclaim(ctx context.Context, runID, workerID string) (Run, error) {
	return s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		to := map[string]string{Preparing: Ready, Applying: Confirmed}[r.State]
		if to == "" {
			return errs.E(errs.Conflict, "run %s is %s: the worker already started it", r.ID, r.State)
		}
		if err := s.transition(ctx, n, r, change{to: to, actor: "gantry", reason: "worker " + workerID + " left before receiving the job",
			sets: []string{"worker_id = ''", "job_token_hash = ''", "state_token_hash = ''"}}); err != nil {
			return err
		}
		r.WorkerID = ""
		n.add(PoolKey(r.Pool))
		return nil
	})
}

// PinCommit records the commit a run will check out, unless it has one or
// a worker already took it.
func (s *Service) PinCommit(ctx context.Context, runID, sha string) error {
	_, err := s.db.Exec(ctx, `UPDATE runs SET commit_sha = $2 WHERE id = $1 AND commit_sha = '' AND state IN ('QUEUED', 'READY')`, runID, sha)
	return err
}

// RunIDFromToken returns the run a job or state token names, without
// checking it.
func RunIDFromToken(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, "gjt_")
	if !ok {
		rest, ok = strings.CutPrefix(token, "gst_")
	}
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}

// Authenticate checks a job token and returns its run. A token is valid
// while its job holds the run: not after the run ended or was handed off.
// With allowEnded, a token of a run that ended still authenticates (so a
// heartbeat can tell the worker to stop). The run has only the fields of
// authCols set (who it is, where, its state and its worker): callers
// needing more read it (the job steps do, in their transaction).
func (s *Service) Authenticate(ctx context.Context, token string, allowEnded bool) (Run, error) {
	r, _, err := s.authenticate(ctx, token, "gjt_", "job_token_hash", allowEnded)
	return r, err
}

// AuthenticateState checks a run's state token: valid while the run's job
// holds it. It also says whether the run's stack keeps managed state. The
// run has only the fields of authCols set.
func (s *Service) AuthenticateState(ctx context.Context, token string) (Run, bool, error) {
	return s.authenticate(ctx, token, "gst_", "state_token_hash", false)
}

// authCols are the columns of a run that a token check reads: every
// request of a run's job and of its tool's state backend is checked, so the
// query stays small.
const authCols = `r.id, r.stack_id, s.space_id, s.worker_pool, r.type, r.state, r.worker_id, r.updated_at`

// authenticate checks a token against the hash in column and returns its
// run (the fields of authCols) and whether the run's stack keeps managed
// state.
func (s *Service) authenticate(ctx context.Context, token, prefix, column string, allowEnded bool) (Run, bool, error) {
	runID, ok := RunIDFromToken(token)
	if !ok || !strings.HasPrefix(token, prefix) {
		return Run{}, false, errs.E(errs.Unauthenticated, "invalid run token")
	}
	// One query for the token's hash and the run.
	var hash string
	var managed bool
	var r Run
	var updated int64
	err := s.db.QueryRow(ctx, `SELECT `+authCols+`, r.`+column+`, s.managed_state`+from+` WHERE r.id = $1`, runID).
		Scan(&r.ID, &r.StackID, &r.SpaceID, &r.Pool, &r.Type, &r.State, &r.WorkerID, &updated, &hash, &managed)
	r.UpdatedAt = time.Unix(0, updated).UTC()
	if err != nil && !isNoRows(err) {
		// A database that does not answer is no reason to tell a worker
		// its job is over: the caller retries a 5xx.
		return Run{}, false, fmt.Errorf("checking a run token: %w", err)
	}
	if err != nil || hash == "" || subtle.ConstantTimeCompare([]byte(hash), []byte(hashToken(token))) != 1 {
		return Run{}, false, errs.E(errs.Unauthenticated, "invalid or expired run token")
	}
	if Terminal(r.State) && !allowEnded {
		return r, managed, errs.E(errs.Unauthenticated, "run token expired: run %s is %s", r.ID, r.State)
	}
	return r, managed, nil
}

// jobStep runs fn on a run still held by the worker.
func (s *Service) jobStep(ctx context.Context, runID, workerID string, fn func(ctx context.Context, n *notes, r *Run) error) (Run, error) {
	var r Run
	err := s.tx(ctx, func(ctx context.Context, n *notes) error {
		var err error
		if r, err = s.Get(ctx, runID); err != nil {
			return err
		}
		if Terminal(r.State) {
			return errs.E(errs.Conflict, "run %s is %s: %s", r.ID, r.State, r.Reason)
		}
		if r.WorkerID != workerID {
			return errs.E(errs.Conflict, "run %s is not held by worker %s", r.ID, workerID)
		}
		return fn(ctx, n, &r)
	})
	return r, err
}

// Commit is what a worker learned of the commit it checked out.
type Commit struct {
	SHA     string
	Message string
	Author  string    // git's author name
	At      time.Time // committer date
}

// Phase records that the worker's job entered a new phase: INITIALIZING
// after PREPARING, PLANNING or PERFORMING after INITIALIZING.
// The commit, once the worker knows it, is recorded with the phase.
func (s *Service) Phase(ctx context.Context, runID, workerID, to, sha, message string) (Run, error) {
	return s.PhaseCommit(ctx, runID, workerID, to, Commit{SHA: sha, Message: message})
}

// PhaseCommit is Phase with all the worker knows of the commit: its
// author (kept only if a push did not name one) and its date.
//
// A report of the phase the run is in already is a retry whose answer was
// lost (the worker reports each phase once, and waits for the answer
// before its next report): it is answered again, with nothing recorded.
func (s *Service) PhaseCommit(ctx context.Context, runID, workerID, to string, c Commit) (Run, error) {
	return s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if r.State == to && (to == Initializing || to == Planning || to == Performing) && (c.SHA == "" || c.SHA == r.CommitSHA) {
			return nil
		}
		ok := (r.State == Preparing && to == Initializing) ||
			(r.State == Initializing && to == Planning && r.Type != Task) ||
			(r.State == Initializing && to == Performing && r.Type == Task)
		if !ok {
			return errs.E(errs.Conflict, "run %s cannot go from %s to %s", r.ID, r.State, to)
		}
		if c.SHA != "" {
			message := truncate.String(c.Message, 4096)
			author := r.CommitAuthor
			if author == "" {
				author = c.Author
			}
			author = truncate.String(author, 255)
			if _, err := s.db.Exec(ctx, `UPDATE runs SET commit_sha = $2, commit_message = $3, commit_author = $4, commit_at = $5 WHERE id = $1`,
				r.ID, c.SHA, message, author, db.Nanos(c.At)); err != nil {
				return err
			}
			r.CommitSHA, r.CommitMessage, r.CommitAuthor, r.CommitAt = c.SHA, message, author, c.At
		}
		reason := "init succeeded"
		if to == Initializing {
			reason = "workspace ready at commit " + r.CommitSHA
		}
		return s.transition(ctx, n, r, change{to: to, actor: "worker:" + workerID, reason: reason})
	})
}

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

// Finish ends the worker's job: FINISHED when ok, else FAILED with reason.
func (s *Service) Finish(ctx context.Context, runID, workerID string, ok bool, reason string) (Run, error) {
	return s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if !contains(workingStates, r.State) {
			return errs.E(errs.Conflict, "run %s is %s: nothing to finish", r.ID, r.State)
		}
		to, actor := Finished, "worker:"+workerID
		if r.StopRequested != "" {
			return s.transition(ctx, n, r, change{to: Stopped, actor: r.StopRequested, reason: "stopped by " + r.StopRequested})
		}
		if ok && r.State != Applying && r.State != Performing {
			return errs.E(errs.Conflict, "run %s is %s: only an apply or a task can finish successfully", r.ID, r.State)
		}
		if !ok {
			to = Failed
			if reason == "" {
				reason = "the job failed"
			}
			reason += s.savedSoFar(ctx, *r)
		} else if reason == "" {
			reason = map[string]string{Applying: "applied", Performing: "task completed"}[r.State]
		}
		return s.transition(ctx, n, r, change{to: to, actor: actor, reason: reason})
	})
}

// FailJob fails a claimed run whose job the server could not hand out (a
// cloud refused its credentials, say): its worker never started it, so
// the log, which nobody else will write, ends with the reason, as a
// worker's own failure does.
func (s *Service) FailJob(ctx context.Context, runID, workerID, reason string) (Run, error) {
	return s.jobStep(ctx, runID, workerID, func(ctx context.Context, n *notes, r *Run) error {
		if !contains(workingStates, r.State) {
			return errs.E(errs.Conflict, "run %s is %s: nothing to fail", r.ID, r.State)
		}
		if err := s.transition(ctx, n, r, change{to: Failed, actor: "gantry", reason: reason}); err != nil {
			return err
		}
		return s.closeLog(ctx, n, r.ID, "Run failed: "+reason)
	})
}

// Beat is the answer to a worker's heartbeat.
type Beat struct {
	Stop   bool   // the worker must stop the job
	Reason string // why
	// State is the run's state once the worker has stopped: STOPPED for a
	// stop request (the worker's Finish makes it so), the state of a run
	// that already ended, "" when the run is gone or another worker holds
	// it. The worker's closing log line says it.
	State string
}

// Heartbeat records that the worker still holds the run. It reports whether
// the worker must stop (the run ended meanwhile, for example stopped).
func (s *Service) Heartbeat(ctx context.Context, runID, workerID string) (Beat, error) {
	now := time.Now().UnixNano()
	if _, err := s.db.Exec(ctx, `UPDATE runs SET heartbeat_at = $3 WHERE id = $1 AND worker_id = $2 AND state NOT IN `+TerminalSQL, runID, workerID, now); err != nil {
		return Beat{}, err
	}
	r, err := s.Get(ctx, runID)
	if errs.Is(err, errs.NotFound) {
		return Beat{Stop: true, Reason: "run deleted"}, nil
	}
	if err != nil {
		return Beat{}, err // the database failed: the worker goes on and retries
	}
	if Terminal(r.State) {
		return Beat{Stop: true, Reason: "run is " + r.State + ": " + r.Reason, State: r.State}, nil
	}
	if r.WorkerID != workerID {
		return Beat{Stop: true, Reason: "run is no longer held by this worker"}, nil
	}
	if r.StopRequested != "" {
		return Beat{Stop: true, Reason: "stop requested by " + r.StopRequested, State: Stopped}, nil
	}
	return Beat{}, nil
}

// Lost says which runs FailLost fails.
type Lost struct {
	// Before fails the runs whose last heartbeat is older (zero: none
	// for their heartbeat).
	Before time.Time
	// Workers fails the runs these workers hold, whatever their heartbeat
	// (a restarted server's built-in workers).
	Workers []string
	// Keep, when set, spares the runs it returns true for: their worker is
	// known to be alive (one of the server's own built-in workers).
	Keep func(runID string) bool
	// Reason replaces "worker <id> lost: no heartbeat since <time>".
	Reason string
}

// FailLost fails the runs in a job in progress that l names, and returns
// how many it failed.
func (s *Service) FailLost(ctx context.Context, l Lost) (int, error) {
	var conds []string
	var args []any
	if !l.Before.IsZero() {
		args = append(args, l.Before.UnixNano())
		conds = append(conds, `r.heartbeat_at < $1`)
	}
	for _, w := range l.Workers {
		args = append(args, w)
		conds = append(conds, `r.worker_id = $`+strconv.Itoa(len(args)))
	}
	if len(conds) == 0 {
		return 0, nil
	}
	q := `SELECT r.id FROM runs r WHERE r.worker_id <> '' AND r.state IN ('PREPARING','INITIALIZING','PLANNING','PERFORMING','APPLYING') AND (` +
		strings.Join(conds, " OR ") + `)`
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rows.Next() {
		var runID string
		if err := rows.Scan(&runID); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, runID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	failed := 0
	for _, runID := range ids {
		if l.Keep != nil && l.Keep(runID) {
			continue
		}
		err := s.tx(ctx, func(ctx context.Context, n *notes) error {
			r, err := s.Get(ctx, runID)
			if err != nil || !contains(workingStates, r.State) {
				return err
			}
			// Re-check under the transaction: a heartbeat or a hand-over
			// since the scan means the worker is not lost after all.
			stale := !l.Before.IsZero() && r.HeartbeatAt.Before(l.Before)
			if !stale && !contains(l.Workers, r.WorkerID) {
				return nil
			}
			reason := l.Reason
			if reason == "" {
				reason = "worker " + r.WorkerID + " lost: no heartbeat since " + r.HeartbeatAt.Format(time.RFC3339)
			}
			if r.State == Applying {
				reason += " " + s.appliedSoFar(ctx, r)
			}
			if err := s.transition(ctx, n, &r, change{to: Failed, actor: "gantry", reason: reason}); err != nil {
				return err
			}
			// The log ends with the reason, as a worker's own failure does.
			if err := s.closeLog(ctx, n, r.ID, "Run failed: "+reason); err != nil {
				return err
			}
			failed++
			return nil
		})
		if err != nil && !errs.Is(err, errs.Conflict) {
			return failed, err
		}
	}
	return failed, nil
}

// appliedSoFar says, for an apply that is failed without its worker's
// word, what of its state is kept: the state versions the server stored
// are all it has.
func (s *Service) appliedSoFar(ctx context.Context, r Run) string {
	const check = "check the stack's resources before the next run"
	serial, saved, known := s.lastSaved(ctx, r)
	switch {
	case known && saved:
		return fmt.Sprintf("(during apply: the last state it saved, serial %d, is kept; changes made after it was saved may be missing from it: %s)", serial, check)
	case known:
		return "(during apply: it saved no state, so the stack's state is the one from before the apply; changes the apply made may be missing from it: " + check + ")"
	}
	return "(during apply: the state versions it saved, if any, are kept; changes made after the last one may be missing: check the stack's state and resources before the next run)"
}

// savedSoFar says, for a run its worker reports failed, the last state
// version its run token stored, if it stored one: the worker's reason
// (OpenTofu's "Failed to upload state", say) may not know that a later
// retry, or the push of the state OpenTofu kept, stored it after all.
func (s *Service) savedSoFar(ctx context.Context, r Run) string {
	serial, saved, known := s.lastSaved(ctx, r)
	if !known || !saved {
		return ""
	}
	return fmt.Sprintf(" (the last state this run saved, serial %d, is kept: check whether it holds all of the run's changes before the next run)", serial)
}

// lastSaved returns the serial of the last state version r's run token
// stored; known is false when that could not be found out.
func (s *Service) lastSaved(ctx context.Context, r Run) (serial int64, saved, known bool) {
	if s.StateSaved == nil {
		return 0, false, false
	}
	serial, saved, err := s.StateSaved(ctx, r.StackID, r.ID)
	if err != nil {
		s.log.Warn("finding the state versions a failed run saved failed", "run_id", r.ID, "err", err)
		return 0, false, false
	}
	return serial, saved, true
}

// CountHeld returns how many runs a worker holds in a job in progress
// (PREPARING to APPLYING/PERFORMING): a draining server waits for them.
func (s *Service) CountHeld(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM runs r WHERE r.worker_id <> '' AND r.state IN ('PREPARING','INITIALIZING','PLANNING','PERFORMING','APPLYING')`).Scan(&n)
	return n, err
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
