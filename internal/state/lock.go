package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
)

// LockInfo is OpenTofu's lock information, as sent in LOCK and UNLOCK.
type LockInfo struct {
	ID        string `json:"ID"`
	Operation string `json:"Operation"`
	Info      string `json:"Info"`
	Who       string `json:"Who"`
	Version   string `json:"Version"`
	Created   string `json:"Created"`
	Path      string `json:"Path"`
}

func (s *Service) lock(ctx context.Context, stackID string) (LockInfo, error) {
	l, _, err := s.lockAndHolder(ctx, stackID)
	return l, err
}

// lockAndHolder returns a stack's lock and the run holding it ("" for a
// person).
func (s *Service) lockAndHolder(ctx context.Context, stackID string) (LockInfo, string, error) {
	var raw, run string
	err := s.db.QueryRow(ctx, `SELECT info, holder_run FROM state_locks WHERE stack_id = $1`, stackID).Scan(&raw, &run)
	if errors.Is(err, sql.ErrNoRows) {
		return LockInfo{}, "", errs.E(errs.NotFound, "state of stack %q is not locked", stackID)
	}
	if err != nil {
		return LockInfo{}, "", err
	}
	var l LockInfo
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		return l, run, errs.Wrap(errs.Internal, err, "stored lock info is not JSON")
	}
	return l, run, nil
}

// Lock returns the current lock of a stack's state.
func (s *Service) Lock(ctx context.Context, stackID string) (LockInfo, error) {
	return s.lock(ctx, stackID)
}

func lockedErr(stackID string, l LockInfo) error {
	return &errs.Error{Kind: errs.Locked, Detail: l,
		Message: "state of stack " + stackID + " is locked by " + l.Who + " (lock " + l.ID + ", " + l.Operation + ")"}
}

// heldByOther is the answer to whoever presents the ID of a lock another
// holds: a person presenting a run's lock ID (every 423 shows it), or a
// run presenting a lock it did not take. 423, with the holder's lock info.
func heldByOther(stackID string, l LockInfo, holder, runID string) error {
	who := l.Who
	if holder != "" {
		who = "run " + holder
	}
	msg := "state of stack " + stackID + " is locked by " + who + " (lock " + l.ID + ", " + l.Operation + ")"
	if runID != "" {
		msg += ", not by run " + runID + ": a run uses only the lock it took itself"
	} else {
		msg += ": only that run may use its lock. To write anyway, force-unlock it first (tofu force-unlock " + l.ID +
			", which needs stack:unlock); the run then no longer holds the state"
	}
	return &errs.Error{Kind: errs.Locked, Detail: l, Message: msg}
}

// checkWriteLock lets a write through when the state is not locked, or
// when the writer holds the lock: its ID, and the same holder (runID, ""
// for a person). A run's lock ID alone does not let a person write under
// a running apply.
func (s *Service) checkWriteLock(ctx context.Context, stackID, lockID, runID string) error {
	l, holder, err := s.lockAndHolder(ctx, stackID)
	if errs.Is(err, errs.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.ID != lockID {
		return lockedErr(stackID, l)
	}
	if holder != runID {
		return heldByOther(stackID, l, holder, runID)
	}
	return nil
}

// Acquire locks a stack's state for the holder described by info. runID
// names the run holding it ("" for a person), so that the lock is released
// when that run ends. Locking again with the same lock ID succeeds. A
// person's lock is an audit event; a run's own lock is part of the run.
func (s *Service) Acquire(ctx context.Context, stackID string, info LockInfo, runID string) error {
	if info.ID == "" {
		return errs.E(errs.Invalid, "lock info needs an ID")
	}
	// OpenTofu reads Created as a time and fails on the whole reply when it
	// is not one: always store a valid time.
	if _, err := time.Parse(time.RFC3339Nano, info.Created); err != nil {
		info.Created = time.Now().UTC().Format(time.RFC3339Nano)
	}
	raw, _ := json.Marshal(info)
	if runID != "" {
		// A run's lock (OpenTofu inside a run, twice per run): one
		// statement when the state is free, and no audit event.
		res, err := s.db.Exec(ctx, `INSERT INTO state_locks (stack_id, lock_id, info, holder_run, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (stack_id) DO NOTHING`, stackID, info.ID, string(raw), runID, time.Now().UnixNano())
		if db.IsForeignKeyViolation(err) {
			return errs.E(errs.NotFound, "stack %q not found", stackID)
		}
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			return nil
		}
		// Locked already: by this lock ID (a retry) or by someone else.
	}
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		l, holder, err := s.lockAndHolder(ctx, stackID)
		switch {
		case err == nil && l.ID == info.ID && holder == runID:
			return nil
		case err == nil && l.ID == info.ID:
			return heldByOther(stackID, l, holder, runID)
		case err == nil:
			return lockedErr(stackID, l)
		case !errs.Is(err, errs.NotFound):
			return err
		}
		_, err = s.db.Exec(ctx, `INSERT INTO state_locks (stack_id, lock_id, info, holder_run, created_at) VALUES ($1, $2, $3, $4, $5)`,
			stackID, info.ID, string(raw), runID, time.Now().UnixNano())
		if db.IsUniqueViolation(err) {
			return errLostRace
		}
		if db.IsForeignKeyViolation(err) {
			return errs.E(errs.NotFound, "stack %q not found", stackID)
		}
		if err != nil {
			return err
		}
		if runID != "" {
			return nil
		}
		return s.record(ctx, "state.lock", stackID, nil, map[string]any{"lock": info.ID, "who": info.Who, "operation": info.Operation})
	})
	if err == errLostRace {
		// Another locker won the race (PostgreSQL, concurrent transactions):
		// report the winner, as OpenTofu expects.
		l, holder, lerr := s.lockAndHolder(ctx, stackID)
		switch {
		case lerr != nil:
			return errs.E(errs.Locked, "state of stack %s was locked concurrently; try again", stackID)
		case l.ID == info.ID && holder == runID:
			return nil
		case l.ID == info.ID:
			return heldByOther(stackID, l, holder, runID)
		}
		return lockedErr(stackID, l)
	}
	return err
}

var errLostRace = errors.New("lost the race for the lock")

// Release unlocks a stack's state held under lockID. Releasing a state that
// is not locked succeeds; a lock held under another ID is refused. An
// empty lockID releases whatever lock is held (Terraform's force-unlock
// sends no ID), under the same rules. runID
// names the run releasing it ("" for a person): a run may release only the
// lock it holds, and doing so makes no audit event, like its Acquire.
func (s *Service) Release(ctx context.Context, stackID, lockID, runID string) error {
	if runID != "" && lockID != "" {
		// A run releasing its own lock: one statement, no audit event.
		res, err := s.db.Exec(ctx, `DELETE FROM state_locks WHERE stack_id = $1 AND lock_id = $2 AND holder_run = $3`, stackID, lockID, runID)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			return nil
		}
		// Not its lock, or not locked: the checks below say which.
	}
	return s.db.Tx(ctx, func(ctx context.Context) error {
		l, holder, err := s.lockAndHolder(ctx, stackID)
		if errs.Is(err, errs.NotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if runID != "" && holder != runID {
			who := "a person"
			if holder != "" {
				who = "run " + holder
			}
			return errs.E(errs.Forbidden, "run %s may only release the lock it holds itself (this one is held by %s)", runID, who)
		}
		if lockID != "" && l.ID != lockID {
			return lockedErr(stackID, l)
		}
		if _, err = s.db.Exec(ctx, `DELETE FROM state_locks WHERE stack_id = $1`, stackID); err != nil {
			return err
		}
		if runID != "" {
			return nil // the run's own lock (checked above)
		}
		before := map[string]any{"lock": l.ID, "who": l.Who, "operation": l.Operation}
		if lockID == "" {
			before["without_id"] = true // Terraform's force-unlock
		}
		return s.record(ctx, "state.unlock", stackID, before, nil)
	})
}

// ReleaseRun drops the locks a run held; it is called when the run ends, so
// a killed tool never leaves its stack locked.
func (s *Service) ReleaseRun(ctx context.Context, runID string) error {
	if runID == "" {
		return nil
	}
	_, err := s.db.Exec(ctx, `DELETE FROM state_locks WHERE holder_run = $1`, runID)
	return err
}
