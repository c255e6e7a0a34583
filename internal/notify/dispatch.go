package notify

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
)

// wakeChannel is the PostgreSQL channel on which Wake reaches the
// dispatchers of the other replicas.
const wakeChannel = "gantry_notify"

// claimed is a delivery this dispatcher holds the lease of.
type claimed struct {
	id, kind, endpointID, event, method, headers, body string
	// endpointRef is the created_at (Unix ns) of the endpoint the delivery
	// was made for: an endpoint deleted and created again under the same
	// id (maybe in another space) is another endpoint.
	endpointRef int64
	token       string // the lease: recording an outcome needs it
	n           int    // number of this attempt, from 1
}

// outcome is the result of one attempt.
type outcome struct {
	at     time.Time
	status int    // HTTP status, 0 if none
	err    string // "" on success; never holds a secret
	dur    time.Duration
	final  bool // no further attempt, whatever the retries
	sent   bool // an email accepted by the SMTP server (no HTTP status)
}

func (o outcome) ok() bool { return o.err == "" && (o.sent || o.status >= 200 && o.status <= 299) }

// Run sends due deliveries until ctx ends. It wakes on Wake (from this or,
// on PostgreSQL, another replica) and every PollInterval. Any number of
// dispatchers, in one process or in several, may run on one database.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.db.Listen(ctx, wakeChannel, func(string) { s.wakeLocal() })
	}()
	defer wg.Wait()
	if l := s.lease(); s.Lease < l {
		s.log.WarnContext(ctx, "notification lease raised to twice the request timeout plus a margin, so that a delivery in flight is not sent again",
			"lease", s.Lease, "timeout", s.Timeout, "effective_lease", l)
	}
	client := s.newClient()
	for ctx.Err() == nil {
		for ctx.Err() == nil {
			n, err := s.dispatchOnce(ctx, client)
			if err != nil {
				if ctx.Err() == nil {
					s.log.ErrorContext(ctx, "notification dispatcher", "error", err)
				}
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
		case <-s.wake:
		case <-time.After(s.PollInterval):
		}
	}
}

// dispatchOnce claims up to Concurrency due deliveries and sends them, in
// parallel, returning how many it claimed.
func (s *Service) dispatchOnce(ctx context.Context, client *http.Client) (int, error) {
	batch, err := s.claim(ctx, max(s.Concurrency, 1))
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, c := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.process(ctx, client, c)
		}()
	}
	wg.Wait()
	return len(batch), nil
}

// claim leases up to limit due deliveries: pending ones whose time has
// come, and sending ones whose lease ran out (their sender died; that lost
// attempt is recorded as such).
func (s *Service) claim(ctx context.Context, limit int) ([]claimed, error) {
	var out []claimed
	err := s.db.Tx(ctx, func(ctx context.Context) error {
		out = out[:0]
		t := time.Now()
		rows, err := s.db.Query(ctx, `SELECT id, kind, endpoint_id, endpoint_created_at, event, method, headers, body, status, attempts
			FROM notify_deliveries WHERE status IN ('PENDING', 'SENDING') AND next_attempt_at <= $1
			ORDER BY next_attempt_at, id LIMIT $2`+s.db.ForUpdateSkipLocked(), t.UnixNano(), limit)
		if err != nil {
			return err
		}
		var lost []bool
		for rows.Next() {
			var c claimed
			var status string
			if err := rows.Scan(&c.id, &c.kind, &c.endpointID, &c.endpointRef, &c.event, &c.method, &c.headers, &c.body, &status, &c.n); err != nil {
				rows.Close()
				return err
			}
			out, lost = append(out, c), append(lost, status == StatusSending)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			c := &out[i]
			if lost[i] {
				if _, err := s.db.Exec(ctx, `INSERT INTO notify_delivery_attempts (delivery_id, n, at, error)
					VALUES ($1, $2, $3, $4) ON CONFLICT (delivery_id, n) DO NOTHING`, c.id, c.n, t.UnixNano(),
					"no outcome recorded: the sender stopped or lost its lease before the answer"); err != nil {
					return err
				}
			}
			c.n++
			c.token = id.Secret(12)
			if _, err := s.db.Exec(ctx, `UPDATE notify_deliveries SET status = 'SENDING', attempts = $2, lease_token = $3,
				next_attempt_at = $4, updated_at = $5 WHERE id = $1`,
				c.id, c.n, c.token, t.Add(s.lease()).UnixNano(), t.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// process makes one attempt at a claimed delivery and records it.
func (s *Service) process(ctx context.Context, client *http.Client, c claimed) {
	retries := DefaultRetries
	var o outcome
	e, err := s.revealed(ctx, c.endpointID)
	var kindErr *errs.Error
	switch {
	case errs.Is(err, errs.NotFound):
		o = outcome{err: "endpoint " + quote(c.endpointID) + " was deleted", final: true}
	case err == nil && e.CreatedAt.UnixNano() != c.endpointRef:
		o = outcome{err: "endpoint " + quote(c.endpointID) + " was deleted (an endpoint created since under the same id is another endpoint)", final: true}
	case err == nil && e.Kind != c.kind:
		o = outcome{err: kindMismatch(c.kind, e.Kind, e.ID), final: true}
	case errors.As(err, &kindErr):
		o = outcome{err: errs.Public(err), final: true}
	case err != nil:
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "reading notification endpoint", "delivery_id", c.id, "error", err)
		}
		return // left to run out its lease and be tried again
	case !e.Enabled:
		retries = e.Retries
		o = outcome{err: "endpoint " + quote(e.ID) + " is disabled", final: true}
	case c.n > e.Retries+1:
		retries = e.Retries
		o = outcome{err: "no attempt left", final: true}
	case e.Kind == KindEmail:
		retries = e.Retries
		o = s.sendEmail(ctx, e, c)
	default:
		retries = e.Retries
		o = s.send(ctx, client, e, c)
	}
	if o.at.IsZero() {
		o.at = time.Now()
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.record(rctx, c, retries, o); err != nil {
		s.log.ErrorContext(ctx, "recording a notification attempt", "delivery_id", c.id, "error", err)
	}
}

// record stores the attempt and the delivery's next status, if this
// dispatcher still holds the lease.
func (s *Service) record(ctx context.Context, c claimed, retries int, o outcome) error {
	status, next := StatusDelivered, int64(0)
	switch {
	case o.ok():
	case o.final || c.n >= retries+1:
		status = StatusFailed
	default:
		status, next = StatusPending, o.at.Add(s.backoff(c.n)).UnixNano()
	}
	return s.db.Tx(ctx, func(ctx context.Context) error {
		res, err := s.db.Exec(ctx, `UPDATE notify_deliveries SET status = $3, next_attempt_at = $4, last_error = $5,
			lease_token = '', updated_at = $6 WHERE id = $1 AND status = 'SENDING' AND lease_token = $2`,
			c.id, c.token, status, next, dbText(o.err, maxError), time.Now().UnixNano())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			s.log.WarnContext(ctx, "notification lease lost before the outcome was recorded", "delivery_id", c.id, "attempt", c.n)
			return nil
		}
		_, err = s.db.Exec(ctx, `INSERT INTO notify_delivery_attempts (delivery_id, n, at, http_status, error, duration_ns)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (delivery_id, n) DO NOTHING`,
			c.id, c.n, o.at.UnixNano(), o.status, dbText(o.err, maxError), int64(o.dur))
		if err == nil {
			s.logOutcome(ctx, c, status, o)
		}
		return err
	})
}

func (s *Service) logOutcome(ctx context.Context, c claimed, status string, o outcome) {
	attrs := []any{"delivery_id", c.id, "endpoint_id", c.endpointID, "attempt", c.n, "status", status, "http_status", o.status}
	switch status {
	case StatusDelivered:
		s.log.InfoContext(ctx, "notification delivered", attrs...)
	case StatusFailed:
		s.log.WarnContext(ctx, "notification failed", append(attrs, "error", o.err)...)
	default:
		s.log.InfoContext(ctx, "notification attempt failed; will retry", append(attrs, "error", o.err)...)
	}
}

// backoff is the wait after failed attempt n (from 1): BackoffBase doubled
// n-1 times, at most MaxBackoff, within 20% either way.
func (s *Service) backoff(n int) time.Duration {
	d := s.BackoffBase
	for i := 1; i < n && d < s.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.MaxBackoff)
	if d <= 0 {
		return 0
	}
	jitter := time.Duration(rand.Int64N(int64(d)*2/5+1)) - d/5
	return min(d+jitter, s.MaxBackoff)
}

func quote(s string) string { return `"` + s + `"` }
