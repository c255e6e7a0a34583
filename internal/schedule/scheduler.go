package schedule

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
)

// Runs is what the scheduler asks of runs (package run).
type Runs interface {
	Create(ctx context.Context, in run.New) (run.Run, error)
	Get(ctx context.Context, runID string) (run.Run, error)
	Confirm(ctx context.Context, runID, actor string) (run.Run, error)
	StackStates(ctx context.Context, stackIDs []string) (map[string]string, error)
}

// Stacks deletes stacks (package stack).
type Stacks interface {
	Delete(ctx context.Context, stackID string, force bool) error
}

// Actor is who the scheduler's changes are recorded as.
const Actor = "gantry/schedules"

// leaderKey is the advisory lock of the scheduler on PostgreSQL.
const leaderKey = 0x67616e7472790001

// Scheduler queues the runs of due schedules.
type Scheduler struct {
	s      *Service
	runs   Runs
	stacks Stacks
	log    *slog.Logger
	leader interface {
		Hold(ctx context.Context) bool
		Release()
	}
	// Interval is how often due schedules are looked for (default 1 s).
	Interval time.Duration
	// Batch bounds the schedules fired per tick (default 500); the rest
	// are fired at the next tick.
	Batch int
	// BuiltinDriftRunLimit caps the drift detection runs of the built-in
	// pool at once (0: no limit). Private pools have their own.
	BuiltinDriftRunLimit int
}

// NewScheduler returns the scheduler of s.
func (s *Service) NewScheduler(runs Runs, stacks Stacks, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{s: s, runs: runs, stacks: stacks, log: log, leader: s.db.NewLeader(leaderKey), Interval: time.Second, Batch: 500}
}

// Run ticks until ctx ends. Only the replica holding the lead ticks.
func (sch *Scheduler) Run(ctx context.Context) {
	defer sch.leader.Release()
	t := time.NewTicker(sch.Interval)
	defer t.Stop()
	leading := false
	for {
		if sch.leader.Hold(ctx) {
			if !leading {
				sch.log.Info("this server schedules")
				leading = true
			}
			if _, err := sch.Tick(ctx, time.Now()); err != nil && ctx.Err() == nil {
				sch.log.Warn("scheduler tick failed", "err", err)
			}
		} else if leading {
			sch.log.Info("another server schedules now")
			leading = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick fires the schedules due at now and follows up scheduled deletes
// waiting for their destroy run. It returns how many schedules fired.
func (sch *Scheduler) Tick(ctx context.Context, now time.Time) (int, error) {
	ctx = audit.WithRequest(ctx, audit.Request{Actor: Actor})
	ids, err := sch.ids(ctx, `SELECT id FROM schedules WHERE next_run_at > 0 AND next_run_at <= $1 AND status = 'active'
		ORDER BY next_run_at, id LIMIT $2`, now.UnixNano(), sch.Batch)
	if err != nil {
		return 0, err
	}
	// One schedule that fails (the database refused its transaction) is
	// tried again at the next tick; it does not hold the others back.
	fired := 0
	var first error
	for _, id := range ids {
		if ctx.Err() != nil {
			return fired, ctx.Err()
		}
		ok, err := sch.fire(ctx, id, now)
		if err != nil {
			sch.log.Warn("firing a schedule failed; trying again at the next tick", "schedule", id, "err", err)
			first = cmp.Or(first, err)
			continue
		}
		if ok {
			fired++
		}
	}
	waiting, err := sch.ids(ctx, `SELECT id FROM schedules WHERE status = 'waiting' ORDER BY id LIMIT $1`, sch.Batch)
	if err != nil {
		return fired, err
	}
	for _, id := range waiting {
		if err := sch.followDelete(ctx, id); err != nil {
			sch.log.Warn("following a scheduled delete failed; trying again at the next tick", "schedule", id, "err", err)
			first = cmp.Or(first, err)
		}
	}
	return fired, first
}

func (sch *Scheduler) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	return db.Collect(ctx, sch.s.db, func(row db.Scanner) (string, error) {
		var id string
		err := row.Scan(&id)
		return id, err
	}, q, args...)
}

// lock reads a schedule for update inside a transaction.
func (sch *Scheduler) lock(ctx context.Context, id string) (Schedule, error) {
	q := `SELECT ` + cols + ` FROM schedules WHERE id = $1`
	if sch.s.db.Dialect == db.Postgres {
		q += ` FOR UPDATE`
	}
	return scan(sch.s.db.QueryRow(ctx, q, id))
}

// outcome is what firing a schedule did.
type outcome struct {
	runID  string
	note   string
	status string
	retry  time.Duration // try again after this instead of moving on (0: move on)
}

// fire queues the run of one due schedule and moves it on, in one
// transaction. A schedule someone else fired, removed or changed meanwhile
// is left alone.
func (sch *Scheduler) fire(ctx context.Context, id string, now time.Time) (bool, error) {
	fired := false
	var failure error
	err := sch.s.db.Tx(ctx, func(ctx context.Context) error {
		// The stack's row first, then the schedule's: the order of the
		// schedule service (Service.lockStack) and of run creation.
		var stackID string
		if err := sch.s.db.QueryRow(ctx, `SELECT stack_id FROM schedules WHERE id = $1`, id).Scan(&stackID); err != nil {
			if isNoRows(err) {
				return nil
			}
			return err
		}
		if _, err := sch.s.db.LockRow(ctx, "stacks", stackID); err != nil {
			return err
		}
		sc, err := sch.lock(ctx, id)
		if err != nil {
			if isNoRows(err) {
				return nil
			}
			return err
		}
		if sc.Status != StatusActive || sc.NextRunAt.IsZero() || sc.NextRunAt.After(now) {
			return nil
		}
		out, err := sch.queue(ctx, sc)
		if err != nil {
			if !refusal(err) {
				return err
			}
			// A refusal (an approval policy's error, a stack that
			// cannot run): roll back whatever was written and
			// record why, below.
			failure = err
			return err
		}
		fired = true
		return sch.advance(ctx, sc, now, out)
	})
	if failure != nil {
		sch.log.Warn("a schedule could not queue its run", "schedule", id, "err", failure)
		err = sch.s.db.Tx(ctx, func(ctx context.Context) error {
			sc, err := sch.lock(ctx, id)
			if err != nil {
				if isNoRows(err) {
					return nil
				}
				return err
			}
			if sc.Status != StatusActive || sc.NextRunAt.After(now) {
				return nil
			}
			return sch.advance(ctx, sc, now, outcome{note: "could not queue the run: " + failure.Error()})
		})
	}
	return fired, err
}

// advance records what firing did and moves the schedule to its next due
// time after now (a due time missed while no server scheduled is run once,
// not once per missed tick).
func (sch *Scheduler) advance(ctx context.Context, sc Schedule, now time.Time, out outcome) error {
	var nextDue, nextRun time.Time
	status := StatusActive
	switch {
	case out.retry > 0:
		nextDue, nextRun = sc.NextDue, now.Add(out.retry)
	case sc.Kind == KindDelete:
		status = StatusDone
		if out.status != "" {
			status = out.status
		}
	default:
		spec, err := Parse(sc.Crons, sc.Timezone)
		if err == nil {
			nextDue, nextRun = spec.Due(sc.ID, now, sch.s.Jitter)
		}
		if nextDue.IsZero() {
			// Cron looks five years ahead: 29 February is due in 2096,
			// then not before 2104.
			status = StatusDone
			if out.note == "" {
				out.note = "ended: its cron expressions match no date in the next five years"
			}
		}
	}
	lastRun := sc.LastRunID
	if out.runID != "" {
		lastRun = out.runID
	}
	if out.note != "" {
		sch.log.Info("schedule skipped", "schedule", sc.ID, "stack", sc.StackID, "kind", sc.Kind, "note", out.note)
	}
	_, err := sch.s.db.Exec(ctx, `UPDATE schedules SET next_due = $2, next_run_at = $3, last_due = $4, last_run_id = $5, last_note = $6,
		status = $7, updated_at = $8 WHERE id = $1`,
		sc.ID, db.Nanos(nextDue), db.Nanos(nextRun), db.Nanos(sc.NextDue), lastRun, out.note, status, now.UnixNano())
	return err
}

// queue creates the run a due schedule asks for, or says why not.
func (sch *Scheduler) queue(ctx context.Context, sc Schedule) (outcome, error) {
	due := sc.NextDue.Format(time.RFC3339)
	switch sc.Kind {
	case KindDrift:
		if note, err := sch.driftBlocked(ctx, sc); err != nil || note != "" {
			return outcome{note: note}, err
		}
		r, err := sch.runs.Create(ctx, run.New{StackID: sc.StackID, Type: run.Proposed, Drift: true, TriggeredBy: TriggerDrift,
			Reason: fmt.Sprintf("drift detection scheduled at %s (%s)", due, strings.Join(sc.Crons, ", "))})
		return outcome{runID: r.ID}, err
	case KindRun:
		r, err := sch.runs.Create(ctx, run.New{StackID: sc.StackID, Type: run.Tracked, TriggeredBy: TriggerRun,
			Reason: fmt.Sprintf("tracked run scheduled at %s (%s)", due, strings.Join(sc.Crons, ", "))})
		return outcome{runID: r.ID}, err
	case KindTask:
		r, err := sch.runs.Create(ctx, run.New{StackID: sc.StackID, Type: run.Task, Command: sc.Command, TriggeredBy: TriggerTask,
			Reason: fmt.Sprintf("task scheduled at %s (%s)", due, strings.Join(sc.Crons, ", "))})
		return outcome{runID: r.ID}, err
	case KindDelete:
		if !sc.DeleteResources {
			err := sch.stacks.Delete(ctx, sc.StackID, false)
			if errs.Is(err, errs.Conflict) {
				return outcome{note: "not deleted yet: " + err.Error(), retry: time.Minute}, nil
			}
			return outcome{}, err
		}
		r, err := sch.runs.Create(ctx, run.New{StackID: sc.StackID, Type: run.Destroy, TriggeredBy: TriggerDelete,
			Reason: fmt.Sprintf("scheduled delete at %s: destroying the resources, then deleting the stack", due)})
		return outcome{runID: r.ID, status: StatusWaiting}, err
	}
	return outcome{note: "unknown schedule kind " + sc.Kind}, nil
}

// driftBlocked says why a drift detection run must not be queued now, or "".
func (sch *Scheduler) driftBlocked(ctx context.Context, sc Schedule) (string, error) {
	d := sch.s.db
	var pending string
	err := d.QueryRow(ctx, `SELECT id FROM runs WHERE stack_id = $1 AND drift AND state NOT IN `+run.TerminalSQL+` ORDER BY id LIMIT 1`, sc.StackID).Scan(&pending)
	if err == nil {
		return fmt.Sprintf("skipped: drift detection run %s has not ended", pending), nil
	}
	if !isNoRows(err) {
		return "", err
	}
	if !sc.IgnoreState {
		states, err := sch.runs.StackStates(ctx, []string{sc.StackID})
		if err != nil {
			return "", err
		}
		switch st := states[sc.StackID]; st {
		case run.Finished:
		case "NONE":
			return "skipped: the stack has no finished tracked run yet (drift detection compares the world with what Gantry applied; use --ignore-state to run anyway)", nil
		default:
			return fmt.Sprintf("skipped: the stack's last tracked run is %s, not FINISHED (use --ignore-state to run anyway)", st), nil
		}
	}
	var pool string
	var limit int
	if err := d.QueryRow(ctx, `SELECT s.worker_pool, COALESCE(p.drift_run_limit, 0) FROM stacks s LEFT JOIN worker_pools p ON p.id = s.worker_pool
		WHERE s.id = $1`, sc.StackID).Scan(&pool, &limit); err != nil {
		return "", err
	}
	if pool == "" {
		limit = sch.BuiltinDriftRunLimit
	}
	if limit > 0 {
		var n int
		if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM runs r JOIN stacks s ON s.id = r.stack_id
			WHERE s.worker_pool = $1 AND r.drift AND r.state NOT IN `+run.TerminalSQL, pool).Scan(&n); err != nil {
			return "", err
		}
		if n >= limit {
			name := pool
			if name == "" {
				name = "the built-in pool"
			}
			return fmt.Sprintf("skipped: %s already has %d drift detection runs in progress (its drift run limit is %d)", name, n, limit), nil
		}
	}
	return "", nil
}

// followDelete goes on with a scheduled delete whose destroy run was
// queued: confirms the destroy when it waits for a confirmation, deletes
// the stack once it finished, and gives up (keeping the stack) when it
// ended otherwise.
func (sch *Scheduler) followDelete(ctx context.Context, id string) error {
	return sch.s.db.Tx(ctx, func(ctx context.Context) error {
		sc, err := sch.lock(ctx, id)
		if err != nil {
			if isNoRows(err) {
				return nil
			}
			return err
		}
		if sc.Status != StatusWaiting {
			return nil
		}
		done := func(note string) error {
			_, err := sch.s.db.Exec(ctx, `UPDATE schedules SET status = 'done', last_note = $2, updated_at = $3 WHERE id = $1`, sc.ID, note, time.Now().UnixNano())
			return err
		}
		r, err := sch.runs.Get(ctx, sc.LastRunID)
		if errs.Is(err, errs.NotFound) {
			return done("the destroy run is gone: the stack was kept")
		}
		if err != nil {
			return err
		}
		switch {
		case r.State == run.Unconfirmed:
			_, err := sch.runs.Confirm(ctx, r.ID, TriggerDelete)
			if errs.Is(err, errs.Conflict) {
				return nil
			}
			return err
		case r.State == run.Finished:
			err := sch.stacks.Delete(ctx, sc.StackID, false)
			if errs.Is(err, errs.Conflict) {
				_, err = sch.s.db.Exec(ctx, `UPDATE schedules SET last_note = $2 WHERE id = $1`, sc.ID, "not deleted yet: "+err.Error())
			}
			return err
		case run.Terminal(r.State):
			return done(fmt.Sprintf("the destroy run %s ended %s: the stack was kept", r.ID, r.State))
		}
		return nil
	})
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// refusal reports whether err is a refusal with a public reason (an
// approval policy that cannot be evaluated, a stack that cannot run), as
// opposed to a database or internal failure that the next tick retries.
func refusal(err error) bool {
	var e *errs.Error
	return errors.As(err, &e) && e.Kind != errs.Internal && e.Kind != errs.Unavailable
}
