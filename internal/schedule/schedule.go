// Package schedule keeps the schedules of stacks and runs the scheduler
// that queues their runs: drift detection (one per stack, PROPOSED runs with
// drift_detection), scheduled tracked runs and tasks (cron expressions), and
// a scheduled delete (destroy the resources, then delete the stack, at a
// time).
//
// Each schedule stores its next due time. The scheduler fires due
// schedules one by one, each in one transaction that creates the run and
// moves the schedule on to its next due time after now: a restart, or a
// scheduler that was down across several due times, runs a schedule once,
// never once per missed tick, and a crash between the two writes is
// impossible. On PostgreSQL one server at a time schedules (a session
// advisory lock); the row is locked and re-checked anyway, so two
// schedulers could never queue one due time twice.
//
// Schedules sharing one expression are spread over a jitter window: each
// schedule's offset in the window is a hash of its id and due time, so the
// spread is even, stable across restarts, and different at every due time.
package schedule

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strings"
	"time"
	_ "time/tzdata" // IANA time zones on machines without a zoneinfo database

	"github.com/robfig/cron/v3"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// Kinds.
const (
	KindDrift  = "drift"
	KindRun    = "run"
	KindTask   = "task"
	KindDelete = "delete"
)

// Statuses.
const (
	StatusActive  = "active"
	StatusWaiting = "waiting" // a scheduled delete waits for its destroy run
	StatusDone    = "done"
)

// Triggers: the triggered_by of the runs schedules queue.
const (
	TriggerDrift  = "gantry/schedules/drift"
	TriggerRun    = "gantry/schedules/run"
	TriggerTask   = "gantry/schedules/task"
	TriggerDelete = "gantry/schedules/delete"
)

// MaxCrons bounds the expressions of one schedule.
const MaxCrons = 20

// Schedule is one schedule of a stack.
type Schedule struct {
	ID              string
	StackID         string
	Kind            string
	Crons           []string
	Timezone        string
	At              time.Time // delete: when
	Command         string    // task
	Reconcile       bool      // drift: queue a tracked run when drift is found
	IgnoreState     bool      // drift: run whatever the stack's last run
	DeleteResources bool      // delete: destroy the resources first
	NextDue         time.Time // zero: never
	NextRunAt       time.Time // NextDue plus the jitter
	LastDue         time.Time
	LastRunID       string
	LastNote        string
	Status          string
	CreatedBy       string
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Spec is a parsed set of cron expressions in a time zone.
type Spec struct {
	loc   *time.Location
	specs []cron.Schedule
}

// parser reads five fields, or six with seconds first (an extension for
// short intervals), and the @ descriptors.
var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse checks cron expressions (standard five fields, six with seconds
// first, or @yearly, @monthly, @weekly, @daily, @midnight, @hourly) and an
// IANA time zone ("" is UTC).
func Parse(crons []string, timezone string) (*Spec, error) {
	if len(crons) == 0 {
		return nil, errs.E(errs.Invalid, "at least one cron expression is needed")
	}
	if len(crons) > MaxCrons {
		return nil, errs.E(errs.Invalid, "at most %d cron expressions", MaxCrons)
	}
	if timezone == "" {
		timezone = "UTC"
	}
	loc, err := time.LoadLocation(timezone)
	if err != nil || strings.HasPrefix(timezone, "/") || strings.Contains(timezone, "..") {
		return nil, errs.E(errs.Invalid, "unknown time zone %q: use an IANA name such as Europe/Berlin or UTC", timezone)
	}
	sp := &Spec{loc: loc}
	for _, c := range crons {
		c = strings.TrimSpace(c)
		if strings.HasPrefix(c, "@every") || strings.Contains(c, "TZ=") {
			return nil, errs.E(errs.Invalid, "cron expression %q: @every and TZ= are not accepted: use five fields (minute hour day-of-month month day-of-week, "+
				"e.g. \"*/5 * * * *\"), six fields with seconds first, or @hourly, @daily, @midnight, @weekly, @monthly, @yearly; "+
				"the time zone goes in --timezone (timezone in the API)", c)
		}
		s, err := parser.Parse(c)
		if err != nil {
			return nil, errs.E(errs.Invalid, "cron expression %q: %v", c, err)
		}
		// Cron looks five years ahead: a day that never comes (30
		// February, 31 April) is never found.
		if sp.next(s, time.Now()).IsZero() {
			return nil, errs.E(errs.Invalid, "cron expression %q matches no date in the next five years (a day its months do not have?)", c)
		}
		sp.specs = append(sp.specs, s)
	}
	return sp, nil
}

// Next returns the first due time strictly after t (zero if none).
func (sp *Spec) Next(t time.Time) time.Time {
	var best time.Time
	for _, s := range sp.specs {
		n := sp.next(s, t)
		if !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	return best.UTC()
}

// Due returns the first due time strictly after t and when the schedule
// with id runs for it (the due time plus its jitter within window); both
// zero when no time is due.
func (sp *Spec) Due(id string, t time.Time, window time.Duration) (due, run time.Time) {
	due = sp.Next(t)
	if due.IsZero() {
		return time.Time{}, time.Time{}
	}
	return due, due.Add(jitter(id, due, sp.Next(due), window))
}

// allHours are the hour bits of an expression due every hour.
const allHours = 1<<24 - 1

// next is one expression's first due time after t, with cron's rules for
// daylight-saving changes: an expression due every hour (or more often)
// follows real time; one at chosen hours follows the wall clock, so a
// daily 02:30 runs once on the day the clocks go forward (at the first
// valid time after the gap, e.g. 03:30) and once, not twice, on the day
// they go back.
func (sp *Spec) next(s cron.Schedule, t time.Time) time.Time {
	if ss, ok := s.(*cron.SpecSchedule); !ok || ss.Hour&allHours == allHours {
		return s.Next(t.In(sp.loc))
	}
	// Wall-clock time as if it were UTC, which has no DST.
	w := t.In(sp.loc)
	w = time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC)
	for range 8 {
		w = s.Next(w)
		if w.IsZero() {
			return w
		}
		real := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, sp.loc)
		if real.After(t) {
			return real
		}
		// A wall time of the repeated hour that already passed: the next.
	}
	return time.Time{}
}

// jitter returns the offset of a schedule's run after its due time: an
// even spread over at most window, and never more than half the time to
// the following due time (so a schedule never runs past its next one).
func jitter(scheduleID string, due, following time.Time, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	if !following.IsZero() {
		if half := following.Sub(due) / 2; half < window {
			window = half
		}
	}
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(scheduleID))
	h.Write([]byte(due.UTC().Format(time.RFC3339)))
	return time.Duration(h.Sum64() % uint64(window))
}

// Service keeps schedules.
type Service struct {
	db *db.DB
	// Jitter is the window schedules sharing a due time are spread over.
	Jitter time.Duration
	// Audit records changes in their transaction.
	Audit audit.Hook
}

// New returns a schedule service.
func New(d *db.DB) *Service { return &Service{db: d} }

const cols = `id, stack_id, kind, crons, timezone, at, command, reconcile, ignore_state, delete_resources,
	next_due, next_run_at, last_due, last_run_id, last_note, status, created_by, created_at, updated_at`

func scan(row interface{ Scan(...any) error }) (Schedule, error) {
	var s Schedule
	var crons string
	var at, nd, nr, ld, c, u int64
	err := row.Scan(&s.ID, &s.StackID, &s.Kind, &crons, &s.Timezone, &at, &s.Command, &s.Reconcile, &s.IgnoreState, &s.DeleteResources,
		&nd, &nr, &ld, &s.LastRunID, &s.LastNote, &s.Status, &s.CreatedBy, &c, &u)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(crons), &s.Crons); err != nil {
		return s, err
	}
	s.At, s.NextDue, s.NextRunAt, s.LastDue = db.FromNanos(at), db.FromNanos(nd), db.FromNanos(nr), db.FromNanos(ld)
	s.CreatedAt, s.UpdatedAt = db.FromNanos(c), db.FromNanos(u)
	return s, nil
}

// Get returns one schedule of a stack.
func (s *Service) Get(ctx context.Context, stackID, scheduleID string) (Schedule, error) {
	sc, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM schedules WHERE id = $1 AND stack_id = $2`, scheduleID, stackID))
	if errors.Is(err, sql.ErrNoRows) {
		return sc, errs.E(errs.NotFound, "schedule %q of stack %q not found", scheduleID, stackID)
	}
	return sc, err
}

// Drift returns the drift detection schedule of a stack.
func (s *Service) Drift(ctx context.Context, stackID string) (Schedule, error) {
	sc, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+` FROM schedules WHERE stack_id = $1 AND kind = 'drift'`, stackID))
	if errors.Is(err, sql.ErrNoRows) {
		return sc, errs.E(errs.NotFound, "stack %q has no drift detection schedule", stackID)
	}
	return sc, err
}

// List returns the schedules of a stack (drift detection included).
func (s *Service) List(ctx context.Context, stackID string) ([]Schedule, error) {
	return db.Collect(ctx, s.db, scan, `SELECT `+cols+` FROM schedules WHERE stack_id = $1 ORDER BY id`, stackID)
}

// DriftSettings is what `gantry stack drift-detection set` sets.
type DriftSettings struct {
	Crons       []string
	Timezone    string
	Reconcile   bool
	IgnoreState bool
}

// view is a schedule as the audit trail shows it.
func view(sc Schedule) map[string]any {
	return map[string]any{"id": sc.ID, "kind": sc.Kind, "crons": sc.Crons, "timezone": sc.Timezone, "at": sc.At,
		"command": sc.Command, "reconcile": sc.Reconcile, "ignore_state": sc.IgnoreState, "delete_resources": sc.DeleteResources}
}

func (s *Service) audit(ctx context.Context, action string, sc Schedule, before, after any) error {
	var space string
	if err := s.db.QueryRow(ctx, `SELECT space_id FROM stacks WHERE id = $1`, sc.StackID).Scan(&space); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return s.Audit.Record(ctx, action, "stack", sc.StackID, space, before, after)
}

// SetDrift creates or replaces the drift detection schedule of a stack.
func (s *Service) SetDrift(ctx context.Context, stackID, actor string, in DriftSettings) (Schedule, error) {
	spec, err := Parse(in.Crons, in.Timezone)
	if err != nil {
		return Schedule{}, err
	}
	if in.Timezone == "" {
		in.Timezone = "UTC"
	}
	var out Schedule
	err = s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.lockStack(ctx, stackID); err != nil {
			return err
		}
		old, err := s.Drift(ctx, stackID)
		var before any
		if err == nil {
			before = view(old)
			if _, err := s.db.Exec(ctx, `DELETE FROM schedules WHERE id = $1`, old.ID); err != nil {
				return err
			}
		} else if !errs.Is(err, errs.NotFound) {
			return err
		}
		sc := Schedule{ID: id.New("sch"), StackID: stackID, Kind: KindDrift, Crons: trimmed(in.Crons), Timezone: in.Timezone,
			Reconcile: in.Reconcile, IgnoreState: in.IgnoreState, CreatedBy: actor}
		if old.ID != "" {
			// The same schedule, changed: keep its history.
			sc.ID, sc.LastDue, sc.LastRunID, sc.LastNote = old.ID, old.LastDue, old.LastRunID, old.LastNote
		}
		if out, err = s.insert(ctx, sc, spec, time.Now()); err != nil {
			return err
		}
		return s.audit(ctx, "stack.drift_detection.set", out, before, view(out))
	})
	return out, err
}

// DeleteDrift removes the drift detection schedule of a stack.
func (s *Service) DeleteDrift(ctx context.Context, stackID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.lockStack(ctx, stackID); err != nil {
			return err
		}
		old, err := s.Drift(ctx, stackID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM schedules WHERE id = $1`, old.ID); err != nil {
			return err
		}
		return s.audit(ctx, "stack.drift_detection.delete", old, view(old), nil)
	})
}

// ClockSkew is how far in the past a scheduled delete's time may be (clocks
// a little apart); an earlier time is refused.
const ClockSkew = 10 * time.Second

// NewSchedule describes a scheduled run, task or delete.
type NewSchedule struct {
	Kind            string // run, task, delete
	Crons           []string
	Timezone        string
	Command         string
	At              time.Time
	DeleteResources bool
}

// Add creates a scheduled tracked run, task or delete.
func (s *Service) Add(ctx context.Context, stackID, actor string, in NewSchedule) (Schedule, error) {
	sc := Schedule{ID: id.New("sch"), StackID: stackID, Kind: in.Kind, Timezone: in.Timezone, Command: in.Command, CreatedBy: actor}
	if sc.Timezone == "" {
		sc.Timezone = "UTC"
	}
	var spec *Spec
	switch in.Kind {
	case KindRun, KindTask:
		var err error
		if spec, err = Parse(in.Crons, in.Timezone); err != nil {
			return Schedule{}, err
		}
		sc.Crons = trimmed(in.Crons)
		if in.Kind == KindTask && strings.TrimSpace(in.Command) == "" {
			return Schedule{}, errs.E(errs.Invalid, "a scheduled task needs a command")
		}
		if in.Kind == KindRun && in.Command != "" {
			return Schedule{}, errs.E(errs.Invalid, "only scheduled tasks take a command")
		}
		if len(in.Command) > 8192 {
			return Schedule{}, errs.E(errs.Invalid, "task command longer than 8192 bytes")
		}
	case KindDelete:
		if in.At.IsZero() {
			return Schedule{}, errs.E(errs.Invalid, "a scheduled delete needs a time (at)")
		}
		// A time in the past would destroy at once (a mistyped year):
		// refused, with an allowance for clocks a little apart.
		if now := time.Now(); in.At.Before(now.Add(-ClockSkew)) {
			return Schedule{}, errs.E(errs.Invalid, "a scheduled delete needs a time in the future: %s is in the past (the server's time is %s)",
				in.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if len(in.Crons) > 0 || in.Command != "" {
			return Schedule{}, errs.E(errs.Invalid, "a scheduled delete takes a time, not cron expressions or a command")
		}
		sc.At, sc.DeleteResources, sc.Crons = in.At.UTC(), in.DeleteResources, []string{}
	default:
		return Schedule{}, errs.E(errs.Invalid, "schedule kind must be run, task or delete, got %q (drift detection has its own command)", in.Kind)
	}
	var out Schedule
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.lockStack(ctx, stackID); err != nil {
			return err
		}
		if in.Kind == KindDelete {
			var n int
			if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM schedules WHERE stack_id = $1 AND kind = 'delete' AND status <> 'done'`, stackID).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return errs.E(errs.Conflict, "stack %q already has a scheduled delete; remove it first", stackID)
			}
		}
		var err error
		if out, err = s.insert(ctx, sc, spec, time.Now()); err != nil {
			return err
		}
		return s.audit(ctx, "stack.schedule.create", out, nil, view(out))
	})
	return out, err
}

// Remove deletes a schedule of a stack (any kind).
func (s *Service) Remove(ctx context.Context, stackID, scheduleID string) error {
	return s.db.Tx(ctx, func(ctx context.Context) error {
		if err := s.lockStack(ctx, stackID); err != nil {
			return err
		}
		old, err := s.Get(ctx, stackID, scheduleID)
		if err != nil {
			return err
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM schedules WHERE id = $1`, old.ID); err != nil {
			return err
		}
		return s.audit(ctx, "stack.schedule.delete", old, view(old), nil)
	})
}

// lockStack locks the stack's row until the transaction ends (see
// db.LockRow): the changes of one stack's schedules, which read what is
// there and then write (one drift schedule replaced, one scheduled delete
// at a time), happen one at a time also on several replicas, and the
// stack cannot be deleted meanwhile. The scheduler takes the stack's row
// before a schedule's too (Scheduler.fire), so the two never wait for
// each other in opposite orders.
func (s *Service) lockStack(ctx context.Context, stackID string) error {
	ok, err := s.db.LockRow(ctx, "stacks", stackID)
	if err == nil && !ok {
		err = errs.E(errs.NotFound, "stack %q not found", stackID)
	}
	return err
}

func trimmed(crons []string) []string {
	out := make([]string, 0, len(crons))
	for _, c := range crons {
		out = append(out, strings.TrimSpace(c))
	}
	return out
}

// insert stores a new schedule with its first due time after now.
func (s *Service) insert(ctx context.Context, sc Schedule, spec *Spec, now time.Time) (Schedule, error) {
	sc.Status = StatusActive
	if sc.Kind == KindDelete {
		sc.NextDue, sc.NextRunAt = sc.At, sc.At
	} else {
		sc.NextDue, sc.NextRunAt = spec.Due(sc.ID, now, s.Jitter)
	}
	if sc.Crons == nil {
		sc.Crons = []string{}
	}
	crons, _ := json.Marshal(sc.Crons)
	t := now.UnixNano()
	_, err := s.db.Exec(ctx, `INSERT INTO schedules (id, stack_id, kind, crons, timezone, at, command, reconcile, ignore_state, delete_resources,
		next_due, next_run_at, last_due, last_run_id, last_note, status, created_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)`,
		sc.ID, sc.StackID, sc.Kind, string(crons), sc.Timezone, db.Nanos(sc.At), sc.Command, sc.Reconcile, sc.IgnoreState, sc.DeleteResources,
		db.Nanos(sc.NextDue), db.Nanos(sc.NextRunAt), db.Nanos(sc.LastDue), sc.LastRunID, sc.LastNote, sc.Status, sc.CreatedBy, t)
	if err != nil {
		return Schedule{}, err
	}
	return s.Get(ctx, sc.StackID, sc.ID)
}
