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
	return s.PhaseAt(ctx, runID, workerID, to, c, -1)
}

// PhaseAt is PhaseCommit with where the phase begins in the worker's log
// stream (the offset of its next byte; negative: not said, as older
// workers do). It is recorded as a position in the stored log, which the
// worker's offsets may lag behind or run ahead of: lines of Gantry's own
// are stored among the worker's, and the phase's report may come before
// the last lines of the phase before it. Past the log limit, the phase
// begins where the stored log stops.
func (s *Service) PhaseAt(ctx context.Context, runID, workerID, to string, c Commit, logOffset int64) (Run, error) {
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
		at, err := s.storedLogAt(ctx, r.ID, logOffset)
		if err != nil {
			return err
		}
		return s.transition(ctx, n, r, change{to: to, actor: "worker:" + workerID, reason: reason, logAt: &at})
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
