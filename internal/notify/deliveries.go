package notify

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
)

// Delivery is a webhook, Slack, Teams or email message and what became of
// it, or an inbox message that was refused (FAILED, never sent).
type Delivery struct {
	ID          string
	Kind        string // KindWebhook, KindSlack, KindTeams, KindEmail; KindInbox when refused
	EndpointID  string
	SpaceID     string
	RunID       string
	StackID     string
	Event       string
	Method      string
	Body        string    // the JSON document sent
	Status      string    // PENDING, SENDING, DELIVERED, FAILED
	Error       string    // the last error
	NextAttempt time.Time // PENDING: when; SENDING: when the lease ends
	Attempts    []Attempt
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Attempt is one try at sending a delivery.
type Attempt struct {
	N          int
	At         time.Time
	HTTPStatus int // 0 when no answer came
	Error      string
	Duration   time.Duration
}

// DeliveryFilter selects deliveries. Empty fields do not filter.
type DeliveryFilter struct {
	ID         string // one delivery
	RunID      string
	EndpointID string
	SpaceID    string // of the run that sent it
	Status     string
	Limit      int    // default 50
	Cursor     string // the NextCursor of the previous page
}

var statuses = []string{StatusPending, StatusSending, StatusDelivered, StatusFailed}

// ListDeliveries returns deliveries newest first with their attempts, and
// the cursor of the next page ("" on the last).
func (s *Service) ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, string, error) {
	limit := pageSize(f.Limit)
	var where []string
	var args []any
	add := func(col string, v string) {
		if v != "" {
			args = append(args, v)
			where = append(where, col+" $"+strconv.Itoa(len(args)))
		}
	}
	if f.Status != "" && !slices.Contains(statuses, f.Status) {
		return nil, "", errs.E(errs.Invalid, "status must be one of %s", strings.Join(statuses, ", "))
	}
	add("id =", f.ID)
	add("id <", f.Cursor)
	add("run_id =", f.RunID)
	add("endpoint_id =", f.EndpointID)
	add("space_id =", f.SpaceID)
	add("status =", f.Status)
	q := `SELECT id, kind, endpoint_id, space_id, run_id, stack_id, event, method, body, status, last_error,
		next_attempt_at, created_at, updated_at FROM notify_deliveries`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	out, err := db.Collect(ctx, s.db, func(row db.Scanner) (Delivery, error) {
		var d Delivery
		var next, c, u int64
		if err := row.Scan(&d.ID, &d.Kind, &d.EndpointID, &d.SpaceID, &d.RunID, &d.StackID, &d.Event, &d.Method,
			&d.Body, &d.Status, &d.Error, &next, &c, &u); err != nil {
			return Delivery{}, err
		}
		if d.Status == StatusPending || d.Status == StatusSending {
			d.NextAttempt = db.FromNanos(next)
		}
		d.CreatedAt, d.UpdatedAt, d.Attempts = db.FromNanos(c), db.FromNanos(u), []Attempt{}
		return d, nil
	}, q+" ORDER BY id DESC LIMIT $"+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", err
	}
	out, cursor, _ := nextPage(out, limit, func(d Delivery) string { return d.ID })
	return out, cursor, s.loadAttempts(ctx, out)
}

// loadAttempts fills the attempts of ds.
func (s *Service) loadAttempts(ctx context.Context, ds []Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]string, len(ds))
	byID := map[string]*Delivery{}
	for i := range ds {
		ids[i], byID[ds[i].ID] = ds[i].ID, &ds[i]
	}
	q, args := db.InList(ids, 0)
	rows, err := s.db.Query(ctx, `SELECT delivery_id, n, at, http_status, error, duration_ns FROM notify_delivery_attempts
		WHERE delivery_id IN (`+q+`) ORDER BY delivery_id, n`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var did string
		var a Attempt
		var at, dur int64
		if err := rows.Scan(&did, &a.N, &at, &a.HTTPStatus, &a.Error, &dur); err != nil {
			return err
		}
		a.At, a.Duration = db.FromNanos(at), time.Duration(dur)
		if d := byID[did]; d != nil {
			d.Attempts = append(d.Attempts, a)
		}
	}
	return rows.Err()
}

// GetDelivery returns one delivery with its attempts.
func (s *Service) GetDelivery(ctx context.Context, deliveryID string) (Delivery, error) {
	ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{ID: deliveryID, Limit: 1})
	if err != nil {
		return Delivery{}, err
	}
	if len(ds) == 0 {
		return Delivery{}, errs.E(errs.NotFound, "delivery %q not found", deliveryID)
	}
	return ds[0], nil
}
