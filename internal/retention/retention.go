// Package retention deletes the history an operator chose not to keep
// (gantry server --run-retention, --state-retention-versions; gantry admin
// prune): runs that ended longer ago than the run retention, with
// everything that belongs to them, and the state versions of each stack
// beyond its newest N. What is always kept is listed on [Pruner.Prune]
// and in docs/operations.md (Retention).
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
)

// MinRunRetention is the shortest run retention accepted: a run is never
// deleted while someone may still be reading what it just did.
const MinRunRetention = time.Hour

// Policy is what is kept. The zero Policy keeps everything.
type Policy struct {
	// RunAge: runs that ended longer ago than this are deleted (0: none).
	RunAge time.Duration
	// StateVersions: each stack keeps its newest N state versions (0: all).
	StateVersions int
}

// Enabled reports whether p deletes anything at all.
func (p Policy) Enabled() bool { return p.RunAge > 0 || p.StateVersions > 0 }

// Check refuses a policy that makes no sense.
func (p Policy) Check() error {
	if p.RunAge < 0 || (p.RunAge > 0 && p.RunAge < MinRunRetention) {
		return fmt.Errorf("--run-retention must be 0 (keep every run) or at least %s, got %s", MinRunRetention, p.RunAge)
	}
	if p.StateVersions < 0 {
		return fmt.Errorf("--state-retention-versions must be 0 (keep every version) or at least 1, got %d", p.StateVersions)
	}
	return nil
}

// Counts is what a pass deleted (or, dry, would delete).
type Counts struct {
	Runs          int
	RunLogBytes   int64 // the stored logs of those runs
	StateVersions int
	StateBytes    int64 // the size of those versions' documents
}

func (c *Counts) add(o Counts) {
	c.Runs += o.Runs
	c.RunLogBytes += o.RunLogBytes
	c.StateVersions += o.StateVersions
	c.StateBytes += o.StateBytes
}

// Result is what one pass deleted, in all and per stack.
type Result struct {
	Counts
	// EndedBefore is the run cutoff: runs that ended before it may go
	// (zero when runs are kept).
	EndedBefore time.Time
	ByStack     map[string]Counts
}

func (r *Result) addStack(stackID string, c Counts) {
	if r.ByStack == nil {
		r.ByStack = map[string]Counts{}
	}
	s := r.ByStack[stackID]
	s.add(c)
	r.ByStack[stackID] = s
	r.add(c)
}

// Defaults of a Pruner's batches.
const (
	DefaultBatch          = 500      // runs or state versions per transaction
	DefaultStateBatchSize = 64 << 20 // bytes of state documents per transaction
)

// lockKey is the lock (a PostgreSQL advisory lock) that makes one replica
// prune at a time: the others wait, then find nothing left to delete.
const lockKey = 0x67616e7472790003

// Pruner applies a Policy to the database.
type Pruner struct {
	db  *db.DB
	log *slog.Logger
	// Audit records one event per kind (run.prune, state.prune) for each
	// pass that deleted any of it.
	Audit audit.Hook
	// Batch is how many runs one transaction examines (and so deletes at
	// most), or state versions it deletes (default DefaultBatch): SQLite's single writer is never held
	// for long. StateBatchSize bounds a transaction's state versions by
	// their size too (default DefaultStateBatchSize; one at least).
	Batch          int
	StateBatchSize int64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns a pruner of d's history; a nil log discards.
func New(d *db.DB, log *slog.Logger) *Pruner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pruner{db: d, log: log, Batch: DefaultBatch, StateBatchSize: DefaultStateBatchSize, Now: time.Now}
}

func (p *Pruner) batch() int {
	if p.Batch > 0 {
		return p.Batch
	}
	return DefaultBatch
}

func (p *Pruner) stateBatchSize() int64 {
	if p.StateBatchSize > 0 {
		return p.StateBatchSize
	}
	return DefaultStateBatchSize
}

// Prune deletes what pol does not keep, in transactions of at most Batch
// runs or state versions, and returns what it deleted (also when it
// fails part way: what committed stays deleted). One replica prunes at a
// time. Runs go first, then state versions: a run kept for a version
// deleted now goes at the next pass.
//
// A run is deleted, with its log, artifacts, transitions, policy receipts,
// reviews, notification deliveries and inbox messages, when it is
// terminal and ended (its last update) before now - pol.RunAge, unless:
//   - it is the newest terminal run of its type (tracked, proposed,
//     destroy, task) on its stack, or the stack's tracked commit (its
//     newest tracked run with a known commit on the tracked branch);
//   - a stored state version names it (the run that wrote it), or it
//     holds the stack's state lock;
//   - its stack has a run waiting for a person (UNCONFIRMED,
//     PENDING_REVIEW);
//   - a schedule's last run, the stack's last drift check or last good
//     one, or open drift (first or last seen by it) names it;
//   - a policy event or a notification of it is still to be delivered.
//
// State versions: each stack keeps its newest pol.StateVersions versions
// (the current one always among them).
func (p *Pruner) Prune(ctx context.Context, pol Policy) (Result, error) {
	if err := pol.Check(); err != nil {
		return Result{}, err
	}
	var res Result
	err := p.db.WithLock(ctx, lockKey, func(ctx context.Context) error {
		var errRuns, errState error
		if pol.RunAge > 0 {
			errRuns = p.pruneRuns(ctx, pol.RunAge, &res)
		}
		if pol.StateVersions > 0 {
			errState = p.pruneStates(ctx, pol.StateVersions, &res)
		}
		return errors.Join(errRuns, errState)
	})
	p.report(ctx, pol, res)
	return res, err
}

// DryRun returns what Prune would delete now, deleting nothing and
// holding no write transaction.
func (p *Pruner) DryRun(ctx context.Context, pol Policy) (Result, error) {
	if err := pol.Check(); err != nil {
		return Result{}, err
	}
	var res Result
	if pol.RunAge > 0 {
		res.EndedBefore = p.Now().Add(-pol.RunAge)
		for after := ""; ; {
			batch, next, err := p.runCandidates(ctx, res.EndedBefore, after)
			if err != nil {
				return res, err
			}
			for _, c := range batch {
				res.addStack(c.stackID, Counts{Runs: 1, RunLogBytes: c.logSize})
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	if pol.StateVersions > 0 {
		stacks, err := p.stacksOver(ctx, pol.StateVersions)
		if err != nil {
			return res, err
		}
		for _, st := range stacks {
			floor, err := p.stateFloor(ctx, st, pol.StateVersions)
			if err != nil {
				return res, err
			}
			var c Counts
			if err := p.db.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM state_versions WHERE stack_id = $1 AND serial < $2`,
				st, floor).Scan(&c.StateVersions, &c.StateBytes); err != nil {
				return res, err
			}
			res.addStack(st, c)
		}
	}
	return res, nil
}

// report logs and audits what a pass deleted.
func (p *Pruner) report(ctx context.Context, pol Policy, res Result) {
	// The audit events are recorded even when the pass was cut short:
	// what committed is gone.
	ctx = context.WithoutCancel(ctx)
	if res.Runs > 0 {
		p.log.Info("pruned runs past the run retention", "runs", res.Runs, "log_bytes", res.RunLogBytes,
			"stacks", countStacks(res, func(c Counts) int { return c.Runs }), "ended_before", res.EndedBefore, "run_retention", pol.RunAge)
		if err := p.Audit.Record(ctx, "run.prune", "run", "", "", nil, map[string]any{"runs": res.Runs, "log_bytes": res.RunLogBytes,
			"ended_before": res.EndedBefore.UTC().Format(time.RFC3339Nano), "run_retention": pol.RunAge.String()}); err != nil {
			p.log.Error("recording the audit event of pruned runs failed", "runs", res.Runs, "err", err)
		}
	}
	if res.StateVersions > 0 {
		stacks := countStacks(res, func(c Counts) int { return c.StateVersions })
		p.log.Info("pruned state versions past the state retention", "state_versions", res.StateVersions, "bytes", res.StateBytes,
			"stacks", stacks, "keep", pol.StateVersions)
		if err := p.Audit.Record(ctx, "state.prune", "state", "", "", nil, map[string]any{"state_versions": res.StateVersions,
			"bytes": res.StateBytes, "stacks": stacks, "keep": pol.StateVersions}); err != nil {
			p.log.Error("recording the audit event of pruned state versions failed", "state_versions", res.StateVersions, "err", err)
		}
	}
}

func countStacks(res Result, of func(Counts) int) int {
	n := 0
	for _, c := range res.ByStack {
		if of(c) > 0 {
			n++
		}
	}
	return n
}
