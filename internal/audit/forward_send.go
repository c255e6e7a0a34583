package audit

// The forwarder sends HTTP itself (as a client only), like package notify:
// delivering is its job.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/truncate"
)

// maxForwardConcurrency bounds how many endpoints one forwarder serves at once.
const maxForwardConcurrency = 16

// wireEvent is an event as the API lists it (apiv1.AuditEvent): the body
// of a forwarded request.
type wireEvent struct {
	Seq         int64           `json:"seq"`
	At          time.Time       `json:"at"`
	Actor       string          `json:"actor"`
	Roles       []string        `json:"roles"`
	SourceIP    string          `json:"source_ip"`
	RequestID   string          `json:"request_id"`
	Action      string          `json:"action"`
	SubjectType string          `json:"subject_type"`
	SubjectID   string          `json:"subject_id"`
	Space       string          `json:"space"`
	Change      json.RawMessage `json:"change,omitempty"`
	Outcome     string          `json:"outcome"`
	PrevHash    string          `json:"prev_hash"`
	Hash        string          `json:"hash"`
}

// ForwardBody returns the JSON body forwarded for ev: the event as the API
// lists it, seq, prev_hash and hash included.
func ForwardBody(ev Event) ([]byte, error) {
	roles := ev.Roles
	if roles == nil {
		roles = []string{}
	}
	return json.Marshal(wireEvent{Seq: ev.Seq, At: ev.At.UTC(), Actor: ev.Actor, Roles: roles, SourceIP: ev.SourceIP,
		RequestID: ev.RequestID, Action: ev.Action, SubjectType: ev.SubjectType, SubjectID: ev.SubjectID,
		Space: ev.Space, Change: ev.Change, Outcome: ev.Outcome, PrevHash: ev.PrevHash, Hash: ev.Hash})
}

// lease is the effective lease: Lease, raised to 2*Timeout+5s.
func (f *Forwarder) lease() time.Duration { return max(f.Lease, 2*f.Timeout+5*time.Second) }

// Run forwards events until ctx ends, waking on Wake and every
// PollInterval. Each leased endpoint is served on its own, so that a slow
// one (a long replay, a receiver timing out) never holds back the others;
// Run returns once every endpoint it serves has stopped.
func (f *Forwarder) Run(ctx context.Context) {
	client := notify.NewClient(f.Timeout, f.DenyCIDRs)
	slots := make(chan struct{}, maxForwardConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		if _, err := f.forwardSome(ctx, client, slots, &wg); err != nil && ctx.Err() == nil {
			f.log.ErrorContext(ctx, "audit forwarder", "error", err)
		}
		select {
		case <-ctx.Done():
		case <-f.wake:
		case <-time.After(f.PollInterval):
		}
	}
}

// forwardSome leases as many due endpoints behind the head as there are
// free slots and starts serving each; it returns how many it leased.
func (f *Forwarder) forwardSome(ctx context.Context, client *http.Client, slots chan struct{}, wg *sync.WaitGroup) (int, error) {
	free := cap(slots) - len(slots)
	if free == 0 {
		return 0, nil
	}
	leased, err := f.claim(ctx, free)
	if err != nil || len(leased) == 0 {
		return 0, err
	}
	for _, c := range leased {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			f.serve(ctx, client, c)
		}()
	}
	return len(leased), nil
}

// leaseOf is an endpoint held by this forwarder.
type leaseOf struct {
	id, token string
}

// claim leases up to limit due endpoints that are behind the head. On
// PostgreSQL, FOR UPDATE SKIP LOCKED and the lease_until check keep two
// forwarders from holding one endpoint.
func (f *Forwarder) claim(ctx context.Context, limit int) ([]leaseOf, error) {
	var out []leaseOf
	err := f.db.Tx(ctx, func(ctx context.Context) error {
		head, err := f.headSeq(ctx)
		if err != nil {
			return err
		}
		t := f.now().UnixNano()
		out, err = db.Collect(ctx, f.db, func(row db.Scanner) (leaseOf, error) {
			var l leaseOf
			err := row.Scan(&l.id)
			return l, err
		}, `SELECT id FROM audit_forward_endpoints
			WHERE enabled = $1 AND next_attempt_at <= $2 AND lease_until <= $2 AND delivered_seq < $3
			ORDER BY next_attempt_at, id LIMIT $4`+f.db.ForUpdateSkipLocked(), true, t, head, limit)
		if err != nil {
			return err
		}
		for i := range out {
			out[i].token = id.Secret(12)
			if _, err := f.db.Exec(ctx, `UPDATE audit_forward_endpoints SET lease_token = $2, lease_until = $3 WHERE id = $1`,
				out[i].id, out[i].token, t+int64(f.lease())); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// target is a leased endpoint with its secrets opened.
type target struct {
	id, url, secret string
	headers         map[string]string
	cursor          int64
	attempts        int
	failingSince    int64
	flagged         bool
	masker          *secrets.Masker
}

// open reads a leased endpoint; ok is false if the lease is gone.
func (f *Forwarder) open(ctx context.Context, l leaseOf) (target, bool, error) {
	var t target
	var secretSealed, headersSealed, token string
	var created int64
	err := f.db.QueryRow(ctx, `SELECT url, secret_sealed, headers_sealed, created_at, delivered_seq, attempts, failing_since,
		flagged, lease_token FROM audit_forward_endpoints WHERE id = $1`, l.id).
		Scan(&t.url, &secretSealed, &headersSealed, &created, &t.cursor, &t.attempts, &t.failingSince, &t.flagged, &token)
	if err != nil || token != l.token {
		return t, false, ignoreNoRows(err)
	}
	t.id = l.id
	if secretSealed != "" {
		if t.secret, err = f.box.OpenString(secretSealed, forwardAAD(l.id, created, "secret")); err != nil {
			return t, false, fmt.Errorf("audit endpoint %s: the secret cannot be decrypted: %w", l.id, err)
		}
	}
	t.headers = map[string]string{}
	if headersSealed != "" {
		h, err := f.box.OpenString(headersSealed, forwardAAD(l.id, created, "headers"))
		if err != nil {
			return t, false, fmt.Errorf("audit endpoint %s: the headers cannot be decrypted: %w", l.id, err)
		}
		if err := json.Unmarshal([]byte(h), &t.headers); err != nil {
			return t, false, fmt.Errorf("audit endpoint %s: headers: %w", l.id, err)
		}
	}
	vals := []string{t.secret}
	for _, v := range t.headers {
		vals = append(vals, v)
		vals = append(vals, strings.Fields(v)...)
	}
	t.masker = secrets.NewMasker(vals)
	return t, true, nil
}

// serve sends the events after the cursor of a leased endpoint, in seq
// order, until it is caught up (the lease is then released), an attempt
// fails (recorded, with the next attempt after a backoff), or the lease is
// lost (the endpoint was deleted, or another forwarder took it over).
func (f *Forwarder) serve(ctx context.Context, client *http.Client, l leaseOf) {
	t, ok, err := f.open(ctx, l)
	if err != nil || !ok {
		if err != nil {
			f.log.ErrorContext(ctx, "audit forwarding", "endpoint", l.id, "error", err)
			f.release(l)
		}
		return
	}
	for ctx.Err() == nil {
		events, err := f.svc.query(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`,
			t.cursor, max(f.Batch, 1))
		if err != nil {
			f.log.ErrorContext(ctx, "audit forwarding: reading events", "endpoint", l.id, "error", err)
			break
		}
		if len(events) == 0 {
			break
		}
		for _, ev := range events {
			var problem string
			if ev.Seq != t.cursor+1 {
				// Never skipped: the endpoint waits (and is flagged) until
				// the trail is repaired.
				problem = fmt.Sprintf("event %d is missing from the audit trail (run gantry audit verify)", t.cursor+1)
			} else {
				problem = f.send(ctx, client, t, ev)
			}
			if ctx.Err() != nil {
				f.release(l)
				return
			}
			if problem != "" {
				f.fail(ctx, l, &t, problem)
				return
			}
			if !f.advance(ctx, l, &t, ev.Seq) {
				return
			}
		}
	}
	f.release(l)
}

// send makes one request for ev and returns "" on a 2xx answer, else what
// went wrong (never holding the secret or a header value).
func (f *Forwarder) send(ctx context.Context, client *http.Client, t target, ev Event) string {
	body, err := ForwardBody(ev)
	if err != nil {
		return "cannot encode the event: " + err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return t.masker.String("cannot build the request: " + urlErr(err))
	}
	for k, v := range t.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gantry-Audit")
	req.Header.Set(HeaderSeq, strconv.FormatInt(ev.Seq, 10))
	req.Header.Set(HeaderForwardEndpoint, t.id)
	if t.secret != "" {
		req.Header.Set(HeaderSignature, notify.Sign(t.secret, body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return t.masker.String(urlErr(err))
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return ""
	}
	msg := strings.Join(strings.Fields(strings.ToValidUTF8(t.masker.String(string(answer)), "?")), " ")
	if len(msg) > 200 {
		msg = cleanText(truncate.String(msg, 200)) + "..."
	}
	if msg != "" {
		msg = ": " + msg
	}
	return t.masker.String(fmt.Sprintf("HTTP %d%s", resp.StatusCode, msg))
}

// urlErr drops the URL net/http puts in its errors.
func urlErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// advance moves the cursor past seq, clears the failure state and renews
// the lease; it returns false if the lease is lost.
func (f *Forwarder) advance(ctx context.Context, l leaseOf, t *target, seq int64) bool {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := f.now().UnixNano()
	res, err := f.db.Exec(rctx, `UPDATE audit_forward_endpoints SET delivered_seq = $3, last_delivered_at = $4, attempts = 0,
		last_error = '', failing_since = 0, flagged = $5, next_attempt_at = 0, lease_until = $6
		WHERE id = $1 AND lease_token = $2 AND delivered_seq = $7`,
		l.id, l.token, seq, now, false, now+int64(f.lease()), t.cursor)
	if err != nil {
		f.log.ErrorContext(ctx, "audit forwarding: recording a delivery", "endpoint", l.id, "seq", seq, "error", err)
		return false
	}
	if n, _ := res.RowsAffected(); n == 0 {
		f.log.WarnContext(ctx, "audit forwarding: lease lost (endpoint deleted or taken over)", "endpoint", l.id, "seq", seq)
		return false
	}
	if t.attempts > 0 {
		f.log.InfoContext(ctx, "audit endpoint recovered", "endpoint", l.id, "seq", seq, "failed_attempts", t.attempts)
	}
	t.cursor, t.attempts, t.failingSince, t.flagged = seq, 0, 0, false
	return true
}

// fail records a failed attempt at the event after the cursor, schedules
// the next one and releases the lease.
func (f *Forwarder) fail(ctx context.Context, l leaseOf, t *target, problem string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := f.now()
	t.attempts++
	if t.failingSince == 0 {
		t.failingSince = now.UnixNano()
	}
	wasFlagged := t.flagged
	t.flagged = now.Sub(time.Unix(0, t.failingSince)) >= f.FlagAfter
	next := now.Add(f.backoff(t.attempts)).UnixNano()
	problem = cleanText(problem)
	res, err := f.db.Exec(rctx, `UPDATE audit_forward_endpoints SET attempts = $3, last_error = $4, failing_since = $5,
		flagged = $6, next_attempt_at = $7, lease_token = '', lease_until = 0 WHERE id = $1 AND lease_token = $2`,
		l.id, l.token, t.attempts, problem, t.failingSince, t.flagged, next)
	if err != nil {
		f.log.ErrorContext(ctx, "audit forwarding: recording a failure", "endpoint", l.id, "error", err)
		return
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return
	}
	attrs := []any{"endpoint", l.id, "seq", t.cursor + 1, "attempt", t.attempts, "error", problem,
		"failing_since", time.Unix(0, t.failingSince).UTC(), "next_attempt_at", time.Unix(0, next).UTC()}
	switch {
	case t.flagged && !wasFlagged:
		f.log.ErrorContext(ctx, "audit endpoint flagged: failing for too long; events are kept and will be sent once it recovers", attrs...)
	default:
		f.log.WarnContext(ctx, "audit forwarding attempt failed; will retry", attrs...)
	}
}

// release gives up the lease of an endpoint, so that the next forwarder
// (on a restart, another replica) takes it at once.
func (f *Forwarder) release(l leaseOf) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = f.db.Exec(ctx, `UPDATE audit_forward_endpoints SET lease_token = '', lease_until = 0 WHERE id = $1 AND lease_token = $2`,
		l.id, l.token)
}

// backoff is the wait after failed attempt n (from 1): BackoffBase doubled
// n-1 times, at most MaxBackoff, within 20% either way.
func (f *Forwarder) backoff(n int) time.Duration {
	d := f.BackoffBase
	for i := 1; i < n && d < f.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, f.MaxBackoff)
	if d <= 0 {
		return 0
	}
	jitter := time.Duration(rand.Int64N(int64(d)*2/5+1)) - d/5
	return min(d+jitter, f.MaxBackoff)
}

func ignoreNoRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}
