package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/truncate"

	"github.com/gantry-iac/gantry/internal/errs"
)

// Policy events: written in the transaction of a run's state change,
// processed after it (with retries) by RunEvents.
const (
	EventRunUpdated = "run_updated" // notification policies
	EventRunEnded   = "run_ended"   // trigger policies (a blocking run ended)
	// EventsKey is the events key woken when an event is written.
	EventsKey = "policy-events"
)

// maxEventAttempts is how often an event is tried before it is FAILED.
const maxEventAttempts = 8

type event struct {
	ID, Kind, RunID string
	Attempts        int
	Lease           int64 // lease_until as this server set it: its claim on the event
	Payload         struct {
		From   string `json:"from"`
		State  string `json:"state"`
		At     int64  `json:"at"`
		Reason string `json:"reason"`
		// Seq is the change's number in the run's timeline (0 in events
		// stored before it was recorded).
		Seq int `json:"seq"`
	}
}

// RunEvents processes policy events until ctx ends: at once when woken,
// and every poll interval anyway (events of other replicas, retries).
func (s *Service) RunEvents(ctx context.Context, poll time.Duration) {
	lastPrune := time.Now()
	for {
		wake := s.hub.Chan(EventsKey)
		for {
			n, err := s.ProcessEvents(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "processing policy events failed", "error", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		if time.Since(lastPrune) > 10*time.Minute {
			lastPrune = time.Now()
			if err := s.PruneInputs(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "pruning policy inputs failed", "error", err)
			}
			if err := s.PruneEvents(ctx, 7*24*time.Hour); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "pruning policy events failed", "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake: // woken after the transaction that wrote an event committed
		case <-time.After(poll):
		}
	}
}

// ProcessEvents handles the due events, one lease at a time (so that a
// slow evaluation never lets another replica take over events this one
// still holds), and returns how many it handled.
func (s *Service) ProcessEvents(ctx context.Context) (int, error) {
	n := 0
	for n < 20 {
		k, err := s.processOne(ctx)
		n += k
		if err != nil || k == 0 {
			return n, err
		}
	}
	return n, nil
}

func (s *Service) processOne(ctx context.Context) (int, error) {
	evs, err := s.claimEvents(ctx, 1)
	if err != nil {
		return 0, err
	}
	for _, ev := range evs {
		var err error
		switch ev.Kind {
		case EventRunUpdated:
			err = s.handleRunUpdated(ctx, ev)
		case EventRunEnded:
			err = s.handleRunEnded(ctx, ev)
		default:
			err = fmt.Errorf("unknown policy event kind %q", ev.Kind)
		}
		if errors.Is(err, errLeaseLost) {
			continue // another server took it over and will finish it
		}
		if err != nil {
			s.log.WarnContext(ctx, "policy event failed", "event", ev.ID, "kind", ev.Kind, "run_id", ev.RunID, "error", err)
			if ferr := s.failEvent(ctx, ev, err); ferr != nil {
				return len(evs), ferr
			}
		}
	}
	return len(evs), nil
}

// claimEvents leases due events so that one server handles each.
func (s *Service) claimEvents(ctx context.Context, limit int) ([]event, error) {
	var out []event
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		// A retried transaction starts over: out is replaced, not added to.
		now := time.Now().UnixNano()
		var err error
		out, err = db.Collect(ctx, s.db, func(row db.Scanner) (event, error) {
			var ev event
			var payload string
			if err := row.Scan(&ev.ID, &ev.Kind, &ev.RunID, &ev.Attempts, &payload); err != nil {
				return ev, err
			}
			_ = json.Unmarshal([]byte(payload), &ev.Payload)
			return ev, nil
		}, `SELECT id, kind, run_id, attempts, payload FROM policy_events
			WHERE status = 'PENDING' AND next_at <= $1 AND lease_until <= $1 ORDER BY id LIMIT $2`+s.db.ForUpdateSkipLocked(), now, limit)
		if err != nil {
			return err
		}
		lease := time.Now().Add(eventLease).UnixNano()
		for i := range out {
			if _, err := s.db.Exec(ctx, `UPDATE policy_events SET lease_until = $2 WHERE id = $1`, out[i].ID, lease); err != nil {
				return err
			}
			out[i].Lease = lease
		}
		return nil
	})
	return out, err
}

// eventLease is how long a server holds an event it handles: longer than
// the slowest evaluation (a notification policy's 10 s timeout).
const eventLease = 2 * time.Minute

// errLeaseLost: another server took the event over (its lease expired).
var errLeaseLost = errs.E(errs.Conflict, "policy event lease lost: another server took it over")

// doneEvent marks an event done, if this server still holds its lease;
// otherwise the transaction it is part of must roll back (the other
// server's work counts).
func (s *Service) doneEvent(ctx context.Context, ev event) error {
	q, args := `UPDATE policy_events SET status = 'DONE', attempts = attempts + 1, error = '' WHERE id = $1 AND status = 'PENDING'`, []any{ev.ID}
	if ev.Lease != 0 {
		q, args = q+` AND lease_until = $2`, append(args, ev.Lease)
	}
	res, err := s.db.Exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return errLeaseLost
	}
	return nil
}

// failEvent schedules a retry with backoff, or gives up after
// maxEventAttempts.
func (s *Service) failEvent(ctx context.Context, ev event, cause error) error {
	n := ev.Attempts + 1
	status := "PENDING"
	if n >= maxEventAttempts || errs.Is(cause, errs.NotFound) {
		status = "FAILED"
	}
	next := time.Now().Add(time.Duration(1<<min(n, 10)) * time.Second).UnixNano()
	msg := strings.ToValidUTF8(strings.ReplaceAll(cause.Error(), "\x00", ""), "?")
	msg = truncate.String(msg, 4096)
	_, err := s.db.Exec(ctx, `UPDATE policy_events SET status = $2, attempts = $3, next_at = $4, lease_until = 0, error = $5
		WHERE id = $1 AND status = 'PENDING' AND lease_until = $6`, ev.ID, status, n, next, msg, ev.Lease)
	return err
}

// EventStatus counts policy events by status (for operators and tests).
func (s *Service) EventStatus(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.Query(ctx, `SELECT status, COUNT(*) FROM policy_events GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// PruneEvents deletes handled events (DONE or FAILED) older than age.
func (s *Service) PruneEvents(ctx context.Context, age time.Duration) error {
	_, err := s.db.Exec(ctx, `DELETE FROM policy_events WHERE status <> 'PENDING' AND created_at < $1`, time.Now().Add(-age).UnixNano())
	return err
}
