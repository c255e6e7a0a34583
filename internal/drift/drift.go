package drift

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/schedule"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// Outcomes of a stack's last drift check.
const (
	OutcomeClean   = "clean"
	OutcomeDrifted = "drifted"
	OutcomeFailed  = "failed"
)

// Runs is what drift asks of runs (package run).
type Runs interface {
	Create(ctx context.Context, in run.New) (run.Run, error)
	Artifact(ctx context.Context, runID, name string) ([]byte, error)
}

// Service keeps drift records.
type Service struct {
	db        *db.DB
	runs      Runs
	schedules *schedule.Service
	log       *slog.Logger
}

// New returns a drift service.
func New(d *db.DB, runs Runs, schedules *schedule.Service, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: d, runs: runs, schedules: schedules, log: log}
}

// OnTerminal records what a drift detection run found, in the transaction
// that ends it (run.Service.OnTerminal), and queues the reconciliation run
// when the stack's drift detection asks for one. Other runs are ignored.
func (s *Service) OnTerminal(ctx context.Context, r run.Run) error {
	if !r.Drift {
		return nil
	}
	now := time.Now()
	switch r.State {
	case run.Finished:
	case run.Failed:
		why := r.Reason
		if why == "" {
			why = "the run failed"
		}
		return s.failed(ctx, r.StackID, r.ID, now, "run "+r.ID+" failed: "+why)
	default:
		return nil // canceled or stopped by someone: no check happened
	}
	data, err := s.runs.Artifact(ctx, r.ID, run.ArtifactPlanJSON)
	if errs.Is(err, errs.NotFound) {
		// No plan JSON: nothing to compare (a plan that made none).
		return s.failed(ctx, r.StackID, r.ID, now, "run "+r.ID+" finished without a plan JSON to compare")
	}
	if err != nil {
		return err
	}
	res, err := Parse(data)
	if err != nil {
		s.log.Warn("reading a drift detection run's plan failed", "run", r.ID, "err", err)
		return s.failed(ctx, r.StackID, r.ID, now, "run "+r.ID+": "+err.Error())
	}
	if err := s.record(ctx, r, res, now); err != nil {
		return err
	}
	outcome := OutcomeClean
	if len(res.Resources) > 0 {
		outcome = OutcomeDrifted
	}
	if err := s.check(ctx, r.StackID, r.ID, now, outcome, len(res.Resources), res.PendingChanges, res.Clouds); err != nil {
		return err
	}
	if outcome != OutcomeDrifted {
		return nil
	}
	return s.reconcileFound(ctx, r, res)
}

// reconcileFound queues the reconciliation run of the drift a run found when
// the stack's drift detection asks for one.
func (s *Service) reconcileFound(ctx context.Context, r run.Run, res Result) error {
	sc, err := s.schedules.Drift(ctx, r.StackID)
	if errs.Is(err, errs.NotFound) || err == nil && !sc.Reconcile {
		return nil
	}
	if err != nil {
		return err
	}
	addrs := make([]string, 0, len(res.Resources))
	for _, x := range res.Resources {
		addrs = append(addrs, x.Address)
	}
	rec, err := s.runs.Create(ctx, run.New{StackID: r.StackID, Type: run.Tracked, TriggeredBy: schedule.TriggerDrift,
		Reason: fmt.Sprintf("reconciling the drift run %s found (%s)", r.ID, shortList(addrs))})
	if err != nil {
		// The drift is recorded either way; a refused reconciliation
		// (an approval policy's error) must not lose it.
		if errs.KindOf(err) != errs.Internal {
			s.log.Warn("queueing a drift reconciliation run failed", "stack", r.StackID, "run", r.ID, "err", err)
			return nil
		}
		return err
	}
	s.log.Info("drift found: reconciliation run queued", "stack", r.StackID, "drift_run", r.ID, "run", rec.ID)
	return nil
}

func shortList(l []string) string {
	if len(l) > 5 {
		return strings.Join(l[:5], ", ") + fmt.Sprintf(" and %d more", len(l)-5)
	}
	return strings.Join(l, ", ")
}

// record opens, updates and resolves the drift episodes of a stack from a
// finished drift detection run.
func (s *Service) record(ctx context.Context, r run.Run, res Result, now time.Time) error {
	open, err := s.openRows(ctx, r.StackID)
	if err != nil {
		return err
	}
	t := now.UnixNano()
	seen := map[string]bool{}
	for _, x := range res.Resources {
		seen[x.Address] = true
		attrs, _ := json.Marshal(x.Attributes)
		if rowID, ok := open[x.Address]; ok {
			if _, err := s.db.Exec(ctx, `UPDATE drift_resources SET last_run_id = $2, last_detected_at = $3, action = $4, attributes = $5,
				type = $6, provider = $7, cloud = $8 WHERE id = $1`, rowID, r.ID, t, x.Action, string(attrs), x.Type, x.Provider, x.Cloud); err != nil {
				return err
			}
			continue
		}
		if _, err := s.db.Exec(ctx, `INSERT INTO drift_resources (id, stack_id, address, type, provider, cloud, action, attributes,
			first_run_id, first_detected_at, last_run_id, last_detected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9, $10)`,
			id.New("drf"), r.StackID, x.Address, x.Type, x.Provider, x.Cloud, x.Action, string(attrs), r.ID, t); err != nil {
			return err
		}
	}
	for addr, rowID := range open {
		if seen[addr] {
			continue
		}
		if _, err := s.db.Exec(ctx, `UPDATE drift_resources SET resolved_run_id = $2, resolved_at = $3 WHERE id = $1`, rowID, r.ID, t); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) openRows(ctx context.Context, stackID string) (map[string]string, error) {
	rows, err := s.db.Query(ctx, `SELECT address, id FROM drift_resources WHERE stack_id = $1 AND resolved_at = 0`, stackID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var a, i string
		if err := rows.Scan(&a, &i); err != nil {
			return nil, err
		}
		out[a] = i
	}
	return out, rows.Err()
}

// check stores a stack's last drift check, a good one: it is also the last
// good check, and what it found replaces what the previous one did.
func (s *Service) check(ctx context.Context, stackID, runID string, now time.Time, outcome string, drifted int, pending bool, clouds []string) error {
	cl := "[]"
	if clouds != nil {
		data, _ := json.Marshal(clouds)
		cl = string(data)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO drift_checks (stack_id, last_run_id, last_checked_at, outcome, drifted, pending_changes, clouds,
			last_good_run_id, last_good_checked_at, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $2, $3, '')
		ON CONFLICT (stack_id) DO UPDATE SET last_run_id = excluded.last_run_id, last_checked_at = excluded.last_checked_at,
		outcome = excluded.outcome, drifted = excluded.drifted, pending_changes = excluded.pending_changes, clouds = excluded.clouds,
		last_good_run_id = excluded.last_good_run_id, last_good_checked_at = excluded.last_good_checked_at, error = ''`,
		stackID, runID, now.UnixNano(), outcome, drifted, pending, cl)
	return err
}

// failed stores a failed drift check: it says nothing new about the world,
// so what the last good check found (the drift count, pending changes,
// clouds) and when it ended are kept; why this one failed is recorded.
func (s *Service) failed(ctx context.Context, stackID, runID string, now time.Time, why string) error {
	_, err := s.db.Exec(ctx, `INSERT INTO drift_checks (stack_id, last_run_id, last_checked_at, outcome, error)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (stack_id) DO UPDATE SET last_run_id = excluded.last_run_id, last_checked_at = excluded.last_checked_at,
		outcome = excluded.outcome, error = excluded.error`,
		stackID, runID, now.UnixNano(), OutcomeFailed, shorten(why, maxError))
	return err
}

// maxError bounds the failure reason kept with a check.
const maxError = 1000

// shorten cuts s to at most n bytes on a character boundary.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate.String(s, n) + "..."
}

// Status is a stack's drift status in the estate-wide view.
type Status struct {
	StackID   string
	StackName string
	SpaceID   string
	// Status is the outcome of the last check: drifted, clean, failed
	// (the last check failed: Drifted, PendingChanges and Clouds are what
	// the last good check found) or unchecked.
	Status         string
	Drifted        int
	Since          time.Time // when the oldest open drift was first detected
	LastCheckedAt  time.Time // when the last check (good or failed) ended
	LastRunID      string
	LastGoodAt     time.Time // when the last good check ended (zero: none yet)
	LastGoodRunID  string
	Error          string // why the last check failed ("" unless failed)
	PendingChanges bool
	Clouds         []string
	Scheduled      bool // the stack has a drift detection schedule
}

// Filter selects stacks in List.
type Filter struct {
	Stack  string // one stack
	Space  string
	Spaces []string // only stacks of these spaces (nil: any)
	Cloud  string
	Status string
	Cursor string
	Limit  int
}

const statusCols = `s.id, s.name, s.space_id, COALESCE(c.outcome, ''), COALESCE(c.drifted, 0), COALESCE(c.last_checked_at, 0),
	COALESCE(c.last_run_id, ''), COALESCE(c.pending_changes, FALSE), COALESCE(c.clouds, '[]'),
	COALESCE(c.last_good_run_id, ''), COALESCE(c.last_good_checked_at, 0), COALESCE(c.error, ''),
	(SELECT COUNT(*) FROM schedules sc WHERE sc.stack_id = s.id AND sc.kind = 'drift'),
	COALESCE((SELECT MIN(d.first_detected_at) FROM drift_resources d WHERE d.stack_id = s.id AND d.resolved_at = 0), 0)`

func scanStatus(row interface{ Scan(...any) error }) (Status, error) {
	var st Status
	var outcome, clouds string
	var checked, good, since int64
	var scheduled int
	if err := row.Scan(&st.StackID, &st.StackName, &st.SpaceID, &outcome, &st.Drifted, &checked, &st.LastRunID, &st.PendingChanges,
		&clouds, &st.LastGoodRunID, &good, &st.Error, &scheduled, &since); err != nil {
		return st, err
	}
	st.Status = outcome
	if outcome == "" {
		st.Status = "unchecked"
	}
	st.Scheduled = scheduled > 0
	st.LastCheckedAt, st.LastGoodAt, st.Since = db.FromNanos(checked), db.FromNanos(good), db.FromNanos(since)
	if err := json.Unmarshal([]byte(clouds), &st.Clouds); err != nil || st.Clouds == nil {
		st.Clouds = []string{}
	}
	return st, nil
}

// List returns the drift status of every stack that has drift detection or
// was ever checked, by stack id, and the next cursor.
func (s *Service) List(ctx context.Context, f Filter) ([]Status, string, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where = append(where, `(c.stack_id IS NOT NULL OR EXISTS (SELECT 1 FROM schedules sc WHERE sc.stack_id = s.id AND sc.kind = 'drift'))`)
	if f.Cursor != "" {
		where = append(where, "s.id > "+arg(f.Cursor))
	}
	if f.Stack != "" {
		where = append(where, "s.id = "+arg(f.Stack))
	}
	if f.Space != "" {
		where = append(where, "s.space_id = "+arg(f.Space))
	}
	if f.Spaces != nil {
		if len(f.Spaces) == 0 {
			return []Status{}, "", nil
		}
		ph := make([]string, len(f.Spaces))
		for i, sp := range f.Spaces {
			ph[i] = arg(sp)
		}
		where = append(where, "s.space_id IN ("+strings.Join(ph, ",")+")")
	}
	if f.Cloud != "" {
		if !id.ValidSlug(f.Cloud) {
			return nil, "", errs.E(errs.Invalid, "cloud must be a name such as aws, azure or google, got %q", f.Cloud)
		}
		where = append(where, `c.clouds LIKE `+arg(`%"`+f.Cloud+`"%`))
	}
	switch f.Status {
	case "":
	case OutcomeDrifted:
		where = append(where, "c.outcome = 'drifted'")
	case OutcomeClean:
		where = append(where, "c.outcome = 'clean'")
	case OutcomeFailed:
		where = append(where, "c.outcome = 'failed'")
	case "unchecked":
		where = append(where, "c.stack_id IS NULL")
	default:
		return nil, "", errs.E(errs.Invalid, "status must be drifted, clean, failed or unchecked, got %q", f.Status)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q := `SELECT ` + statusCols + ` FROM stacks s LEFT JOIN drift_checks c ON c.stack_id = s.id WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY s.id LIMIT ` + arg(f.Limit+1)
	out, err := db.Collect(ctx, s.db, scanStatus, q, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[f.Limit-1].StackID
	}
	return out, next, nil
}

// Record is one drift episode of one resource.
type Record struct {
	ID              string
	Address         string
	Type            string
	Provider        string
	Cloud           string
	Action          string
	Attributes      []Attribute
	FirstRunID      string
	FirstDetectedAt time.Time
	LastRunID       string
	LastDetectedAt  time.Time
	ResolvedRunID   string
	ResolvedAt      time.Time
}

// Detail is a stack's drift: its status, the open drift and the history.
type Detail struct {
	Status   Status
	Open     []Record
	Resolved []Record // newest first, at most 200
}

// Show returns the drift of one stack.
func (s *Service) Show(ctx context.Context, stackID string) (Detail, error) {
	var d Detail
	st, err := scanStatus(s.db.QueryRow(ctx, `SELECT `+statusCols+` FROM stacks s LEFT JOIN drift_checks c ON c.stack_id = s.id WHERE s.id = $1`, stackID))
	if errors.Is(err, sql.ErrNoRows) {
		return d, errs.E(errs.NotFound, "stack %q not found", stackID)
	}
	if err != nil {
		return d, err
	}
	d.Status = st
	if d.Open, err = s.records(ctx, `SELECT `+recordCols+` FROM drift_resources WHERE stack_id = $1 AND resolved_at = 0 ORDER BY address`, stackID); err != nil {
		return d, err
	}
	d.Resolved, err = s.records(ctx, `SELECT `+recordCols+` FROM drift_resources WHERE stack_id = $1 AND resolved_at > 0 ORDER BY resolved_at DESC, address LIMIT 200`, stackID)
	return d, err
}

const recordCols = `id, address, type, provider, cloud, action, attributes, first_run_id, first_detected_at, last_run_id, last_detected_at, resolved_run_id, resolved_at`

func (s *Service) records(ctx context.Context, q string, args ...any) ([]Record, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (Record, error) {
		var r Record
		var attrs string
		var fd, ld, rd int64
		if err := row.Scan(&r.ID, &r.Address, &r.Type, &r.Provider, &r.Cloud, &r.Action, &attrs, &r.FirstRunID, &fd, &r.LastRunID, &ld,
			&r.ResolvedRunID, &rd); err != nil {
			return Record{}, err
		}
		if err := json.Unmarshal([]byte(attrs), &r.Attributes); err != nil || r.Attributes == nil {
			r.Attributes = []Attribute{}
		}
		r.FirstDetectedAt, r.LastDetectedAt, r.ResolvedAt = db.FromNanos(fd), db.FromNanos(ld), db.FromNanos(rd)
		return r, nil
	}, q, args...)
}

// Reconcile queues a tracked run that applies the configuration back,
// limited to the given drifted resources (all of the stack's changes when
// none are given). Each resource must have open drift.
func (s *Service) Reconcile(ctx context.Context, stackID, actor string, creator run.Creator, resources []string) (run.Run, error) {
	if len(resources) > 0 {
		open, err := s.openRows(ctx, stackID)
		if err != nil {
			return run.Run{}, err
		}
		for _, a := range resources {
			if _, ok := open[a]; !ok {
				return run.Run{}, errs.E(errs.Invalid, "resource %q has no open drift on stack %q (see gantry drift show --stack %s)", a, stackID, stackID)
			}
		}
	}
	reason := "reconciling drift, requested by " + actor
	if len(resources) > 0 {
		reason += ": " + shortList(resources)
	}
	return s.runs.Create(ctx, run.New{StackID: stackID, Type: run.Tracked, Targets: resources, TriggeredBy: actor, Creator: creator, Reason: reason})
}

// Metric is one stack's figures for /metrics.
type Metric struct {
	StackID, SpaceID string
	ByCloud          map[string]int // every cloud of the stack's resources, 0 when clean
	LastCheckedAt    time.Time      // the last check, good or failed
	LastGoodAt       time.Time      // the last good check (zero: none yet)
	LastFailed       bool           // the last check failed
}

// Metrics returns the open drift per stack and cloud and each checked
// stack's last check and last good check.
func (s *Service) Metrics(ctx context.Context) ([]Metric, error) {
	rows, err := s.db.Query(ctx, `SELECT c.stack_id, s.space_id, c.last_checked_at, c.last_good_checked_at, c.outcome, c.clouds
		FROM drift_checks c JOIN stacks s ON s.id = c.stack_id ORDER BY c.stack_id`)
	if err != nil {
		return nil, err
	}
	var out []Metric
	index := map[string]int{}
	for rows.Next() {
		var m Metric
		var at, good int64
		var outcome, clouds string
		if err := rows.Scan(&m.StackID, &m.SpaceID, &at, &good, &outcome, &clouds); err != nil {
			rows.Close()
			return nil, err
		}
		m.LastCheckedAt, m.LastGoodAt, m.ByCloud = db.FromNanos(at), db.FromNanos(good), map[string]int{}
		m.LastFailed = outcome == OutcomeFailed
		var cl []string
		_ = json.Unmarshal([]byte(clouds), &cl)
		for _, c := range cl {
			m.ByCloud[c] = 0
		}
		index[m.StackID] = len(out)
		out = append(out, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = s.db.Query(ctx, `SELECT stack_id, cloud, COUNT(*) FROM drift_resources WHERE resolved_at = 0 GROUP BY stack_id, cloud`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var st, cloud string
		var n int
		if err := rows.Scan(&st, &cloud, &n); err != nil {
			return nil, err
		}
		if i, ok := index[st]; ok {
			out[i].ByCloud[cloud] = n
		}
	}
	return out, rows.Err()
}
