package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
)

// Filter selects events. Empty fields match everything.
type Filter struct {
	Actor string
	// Action matches exactly, or, ending in ".*" ("stack.*"), every action
	// starting with what precedes the "*".
	Action      string
	SubjectType string
	SubjectID   string
	Space       string
	Since       time.Time // at >= Since
	Until       time.Time // at < Until
}

const eventColumns = `seq, at, actor, roles, source_ip, request_id, action, subject_type, subject_id, space, change, outcome, prev_hash, hash`

// where returns the WHERE clause of f (with "1=1" when empty) and its
// arguments, numbered from $1.
func (f Filter) where() (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if prefix, ok := strings.CutSuffix(f.Action, "*"); ok {
		if prefix != "" {
			args = append(args, len(prefix), prefix)
			conds = append(conds, fmt.Sprintf("substr(action, 1, $%d) = $%d", len(args)-1, len(args)))
		}
	} else if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.SubjectType != "" {
		add("subject_type = $%d", f.SubjectType)
	}
	if f.SubjectID != "" {
		add("subject_id = $%d", f.SubjectID)
	}
	if f.Space != "" {
		add("space = $%d", f.Space)
	}
	if !f.Since.IsZero() {
		add("at >= $%d", clampNanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("at < $%d", clampNanos(f.Until))
	}
	if len(conds) == 0 {
		return "1=1", nil
	}
	return strings.Join(conds, " AND "), args
}

// clampNanos returns t in Unix nanoseconds, clamped to what an int64
// holds (years 1678 to 2262), so that a far bound still filters right.
func clampNanos(t time.Time) int64 {
	switch {
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	}
	return t.UnixNano()
}

// MaxPage bounds a page of List.
const MaxPage = 1000

// List returns up to limit events matching f, newest first, with seq below
// before (0: from the newest). next is the before of the following page,
// 0 when there is none.
func (s *Service) List(ctx context.Context, f Filter, before int64, limit int) (events []Event, next int64, err error) {
	if limit < 1 || limit > MaxPage {
		return nil, 0, errs.E(errs.Invalid, "limit must be from 1 to %d", MaxPage)
	}
	where, args := f.where()
	if before > 0 {
		args = append(args, before)
		where += fmt.Sprintf(" AND seq < $%d", len(args))
	}
	args = append(args, limit+1)
	events, err = s.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE `+where+
		fmt.Sprintf(` ORDER BY seq DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, 0, err
	}
	if len(events) > limit {
		events = events[:limit]
		next = events[limit-1].Seq
	}
	return events, next, nil
}

// exportBatch is how many events Each reads per query.
const exportBatch = 500

// Each calls fn with every event matching f, oldest first, reading them in
// batches so that no query stays open while fn runs (fn may write to a
// slow client). An error of fn stops it and is returned.
func (s *Service) Each(ctx context.Context, f Filter, fn func(Event) error) error {
	where, args := f.where()
	n := len(args)
	query := `SELECT ` + eventColumns + ` FROM audit_events WHERE ` + where +
		fmt.Sprintf(` AND seq > $%d ORDER BY seq LIMIT $%d`, n+1, n+2)
	var after int64
	for {
		batch, err := s.query(ctx, query, append(args[:n:n], after, exportBatch)...)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			return nil
		}
		after = batch[len(batch)-1].Seq
	}
}

// query runs a SELECT of eventColumns and reads every row before returning.
func (s *Service) query(ctx context.Context, query string, args ...any) ([]Event, error) {
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("audit: query events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: read events: %w", err)
	}
	return out, nil
}

func scanEvent(rows *sql.Rows) (Event, error) {
	var ev Event
	var at int64
	var roles, change string
	if err := rows.Scan(&ev.Seq, &at, &ev.Actor, &roles, &ev.SourceIP, &ev.RequestID, &ev.Action,
		&ev.SubjectType, &ev.SubjectID, &ev.Space, &change, &ev.Outcome, &ev.PrevHash, &ev.Hash); err != nil {
		return Event{}, fmt.Errorf("audit: scan event: %w", err)
	}
	ev.At = db.FromNanos(at)
	if change != "" {
		ev.Change = json.RawMessage(change)
	}
	// Roles that do not parse leave Roles nil: Verify then reports the
	// event's hash as broken, as it is.
	_ = json.Unmarshal([]byte(roles), &ev.Roles)
	if ev.Roles == nil && roles == "[]" {
		ev.Roles = []string{}
	}
	return ev, nil
}
