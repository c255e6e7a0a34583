package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// Forwarding defaults.
const (
	DefaultForwardBackoff    = 5 * time.Second
	DefaultForwardMaxBackoff = 10 * time.Minute
	DefaultForwardFlagAfter  = time.Hour
)

// Headers of every forwarded event, besides X-Signature-256.
const (
	// HeaderSeq carries the event's seq: receivers de-duplicate by it
	// (delivery is at least once).
	HeaderSeq = "X-Gantry-Audit-Seq"
	// HeaderForwardEndpoint names the audit endpoint the request is for.
	HeaderForwardEndpoint = "X-Gantry-Audit-Endpoint"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body
	// under the endpoint's secret.
	HeaderSignature = "X-Signature-256"
)

// ForwardEndpoint is an audit webhook endpoint: every audit event is
// POSTed to URL as JSON, one request per event, in seq order.
type ForwardEndpoint struct {
	ID  string // slug
	URL string
	// Secret signs the bodies (X-Signature-256). Write-only: empty when
	// read back; HasSecret tells whether one is set.
	Secret    string
	HasSecret bool
	// Headers are sent with every request. Values are write-only: read
	// back they are secrets.Mask.
	Headers map[string]string
	Enabled bool
	// DeliveredSeq is the cursor: the last seq the endpoint acknowledged
	// (on create: the event before the first one to send).
	DeliveredSeq int64
	CreatedAt    time.Time
}

// ForwardStatus is how forwarding to one endpoint is going.
type ForwardStatus struct {
	Endpoint        string
	URL             string
	Enabled         bool
	DeliveredSeq    int64 // the cursor
	HeadSeq         int64 // the newest event
	Lag             int64 // HeadSeq - DeliveredSeq
	LastDeliveredAt time.Time
	Attempts        int    // failed attempts in a row at the event after the cursor
	LastError       string // of the last failed attempt, while failing
	FailingSince    time.Time
	Flagged         bool // failing for longer than the forwarder's FlagAfter
	NextAttemptAt   time.Time
}

// Forwarder delivers the audit trail to the forwarding endpoints, and
// stores those endpoints. Set the exported fields before Run. Any number of
// forwarders, in one process or on several replicas sharing one database,
// may run: an endpoint is leased to one forwarder at a time.
type Forwarder struct {
	// BackoffBase is the wait after the first failure at an event; each
	// further failure doubles it, up to MaxBackoff, with jitter.
	BackoffBase time.Duration
	MaxBackoff  time.Duration
	// FlagAfter is how long an endpoint fails before it is flagged.
	FlagAfter time.Duration
	// PollInterval is how often the forwarder looks for new events when
	// nothing wakes it.
	PollInterval time.Duration
	// Timeout bounds one HTTP request.
	Timeout time.Duration
	// Lease is how long a forwarder holds an endpoint without progress; it
	// is raised to at least 2*Timeout+5s so that no request is in flight
	// when another forwarder takes the endpoint over.
	Lease time.Duration
	// Batch is how many events are read per query.
	Batch int
	// DenyCIDRs are address ranges requests may not connect to, on top of
	// the always-denied ones (link-local and metadata addresses); see
	// notify.NewClient.
	DenyCIDRs []netip.Prefix

	svc  *Service
	db   *db.DB
	box  *secrets.Box
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{}
}

// NewForwarder returns the forwarder of s's trail; box seals the
// endpoints' secrets. It becomes s's [Service.Forwarder]. A nil log
// discards.
func NewForwarder(s *Service, box *secrets.Box, log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{
		BackoffBase:  DefaultForwardBackoff,
		MaxBackoff:   DefaultForwardMaxBackoff,
		FlagAfter:    DefaultForwardFlagAfter,
		PollInterval: 2 * time.Second,
		Timeout:      10 * time.Second,
		Lease:        time.Minute,
		Batch:        100,
		svc:          s,
		db:           s.db,
		box:          box,
		log:          log,
		now:          func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		wake:         make(chan struct{}, 1),
	}
	s.forward = f
	return f
}

// Forwarder returns the forwarder made by NewForwarder for s, or nil.
func (s *Service) Forwarder() *Forwarder { return s.forward }

// forwardAAD binds a sealed value to one endpoint (one incarnation of its
// id) and one column.
func forwardAAD(endpointID string, createdAt int64, what string) string {
	return "audit-endpoint:" + endpointID + ":" + strconv.FormatInt(createdAt, 10) + ":" + what
}

// SealedColumns are the columns this package seals with the data key
// (secrets.RotateDataKey re-encrypts them).
var SealedColumns = []secrets.SealedColumn{forwardColumn("secret_sealed", "secret"), forwardColumn("headers_sealed", "headers")}

func forwardColumn(column, what string) secrets.SealedColumn {
	return secrets.SealedColumn{Table: "audit_forward_endpoints", Column: column, Keys: []string{"id"}, Extra: []string{"created_at"},
		Encoding: secrets.Base64, AAD: func(v []any) string {
			return "audit-endpoint:" + fmt.Sprint(v[0]) + ":" + fmt.Sprint(v[1]) + ":" + what
		}}
}

var forwardHeaderRE = id.MustPattern("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", 1, 128)

// reservedForwardHeaders are set by the forwarder.
var reservedForwardHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "transfer-encoding": true,
	"connection": true, "user-agent": true,
	strings.ToLower(HeaderSignature): true, strings.ToLower(HeaderSeq): true, strings.ToLower(HeaderForwardEndpoint): true,
}

func validateForward(e ForwardEndpoint, fromSeq int64) error {
	if !id.ValidSlug(e.ID) {
		return errs.E(errs.Invalid, "audit endpoint id %q is not a valid slug (lower-case letters, digits and dashes, at most 63)", e.ID)
	}
	u, err := url.Parse(e.URL)
	switch {
	case err != nil || e.URL == "" || len(e.URL) > 2048 || !utf8.ValidString(e.URL):
		return errs.E(errs.Invalid, "url must be an absolute http:// or https:// URL of at most 2048 bytes")
	case u.Scheme != "http" && u.Scheme != "https":
		return errs.E(errs.Invalid, "url must use http or https, not %q", u.Scheme)
	case u.Host == "":
		return errs.E(errs.Invalid, "url must name a host")
	case u.User != nil:
		return errs.E(errs.Invalid, "url must not hold credentials: use a header (it is sealed)")
	case len(e.Secret) > 4096:
		return errs.E(errs.Invalid, "secret must be at most 4096 bytes")
	case len(e.Headers) > 50:
		return errs.E(errs.Invalid, "at most 50 headers")
	case fromSeq < 0:
		return errs.E(errs.Invalid, "from_seq must be 1 or more (0: start after the current head)")
	}
	for k, v := range e.Headers {
		if !forwardHeaderRE.MatchString(k) {
			return errs.E(errs.Invalid, "header name %q is not a valid HTTP header name", k)
		}
		if reservedForwardHeaders[strings.ToLower(k)] {
			return errs.E(errs.Invalid, "header %s is set by Gantry and cannot be configured", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") || len(v) > 8192 {
			return errs.E(errs.Invalid, "the value of header %s must be one line of at most 8192 bytes", k)
		}
	}
	return nil
}

// headSeq returns the seq of the newest event.
func (f *Forwarder) headSeq(ctx context.Context) (int64, error) {
	var head int64
	err := f.db.QueryRow(ctx, `SELECT seq FROM audit_head WHERE id = 1`).Scan(&head)
	return head, err
}

// CreateEndpoint adds an endpoint. fromSeq is the first event it gets
// (replaying the trail from there); 0 starts after the current head: only
// events recorded from now on are sent.
func (f *Forwarder) CreateEndpoint(ctx context.Context, e ForwardEndpoint, fromSeq int64) (ForwardEndpoint, error) {
	if err := validateForward(e, fromSeq); err != nil {
		return ForwardEndpoint{}, err
	}
	created := f.now().UnixNano()
	names := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	namesJSON, _ := json.Marshal(names)
	var secret, headers string
	if e.Secret != "" {
		secret = f.box.SealString(e.Secret, forwardAAD(e.ID, created, "secret"))
	}
	if len(e.Headers) > 0 {
		h, err := json.Marshal(e.Headers)
		if err != nil {
			return ForwardEndpoint{}, err
		}
		headers = f.box.SealString(string(h), forwardAAD(e.ID, created, "headers"))
	}
	err := f.db.Tx(ctx, func(ctx context.Context) error {
		cursor := fromSeq - 1
		if fromSeq == 0 {
			head, err := f.headSeq(ctx)
			if err != nil {
				return err
			}
			cursor = head
		}
		_, err := f.db.Exec(ctx, `INSERT INTO audit_forward_endpoints (id, url, secret_sealed, header_names, headers_sealed,
			enabled, created_at, delivered_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			e.ID, e.URL, secret, string(namesJSON), headers, true, created, cursor)
		if db.IsUniqueViolation(err) {
			return errs.E(errs.Conflict, "audit endpoint %q already exists", e.ID)
		}
		if err != nil {
			return err
		}
		// The URL as listed and the header names; never the secret or
		// the header values.
		change, err := NewChange(nil, map[string]any{"url": e.URL, "headers": names, "has_secret": e.Secret != "",
			"enabled": true, "from_seq": cursor + 1})
		if err != nil {
			return err
		}
		_, err = f.svc.Record(ctx, Event{Action: "audit_webhook.create", SubjectType: "audit_webhook", SubjectID: e.ID, Space: "root", Change: change})
		return err
	})
	if err != nil {
		return ForwardEndpoint{}, err
	}
	f.Wake()
	return f.GetEndpoint(ctx, e.ID)
}

const forwardEndpointCols = `id, url, secret_sealed, header_names, enabled, created_at, delivered_seq`

func scanForwardEndpoint(row interface{ Scan(...any) error }) (ForwardEndpoint, error) {
	var e ForwardEndpoint
	var secret, names string
	var created int64
	if err := row.Scan(&e.ID, &e.URL, &secret, &names, &e.Enabled, &created, &e.DeliveredSeq); err != nil {
		return e, err
	}
	var hn []string
	if err := json.Unmarshal([]byte(names), &hn); err != nil {
		return e, err
	}
	e.Headers = map[string]string{}
	for _, k := range hn {
		e.Headers[k] = secrets.Mask
	}
	e.HasSecret, e.CreatedAt = secret != "", db.FromNanos(created)
	return e, nil
}

// GetEndpoint returns an endpoint, its secrets left out.
func (f *Forwarder) GetEndpoint(ctx context.Context, endpointID string) (ForwardEndpoint, error) {
	e, err := scanForwardEndpoint(f.db.QueryRow(ctx, `SELECT `+forwardEndpointCols+` FROM audit_forward_endpoints WHERE id = $1`, endpointID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, errs.E(errs.NotFound, "audit endpoint %q not found", endpointID)
	}
	return e, err
}

// ListEndpoints returns every endpoint ordered by id, secrets left out.
func (f *Forwarder) ListEndpoints(ctx context.Context) ([]ForwardEndpoint, error) {
	return db.Collect(ctx, f.db, scanForwardEndpoint, `SELECT `+forwardEndpointCols+` FROM audit_forward_endpoints ORDER BY id`)
}

// DeleteEndpoint removes an endpoint: nothing more is sent to it (a
// request in flight finishes; its outcome is not recorded).
func (f *Forwarder) DeleteEndpoint(ctx context.Context, endpointID string) error {
	res, err := f.db.Exec(ctx, `DELETE FROM audit_forward_endpoints WHERE id = $1`, endpointID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errs.E(errs.NotFound, "audit endpoint %q not found", endpointID)
	}
	return nil
}

// Deliveries returns the forwarding status of every endpoint, ordered by id.
func (f *Forwarder) Deliveries(ctx context.Context) ([]ForwardStatus, error) {
	head, err := f.headSeq(ctx)
	if err != nil {
		return nil, err
	}
	now := f.now()
	return db.Collect(ctx, f.db, func(row db.Scanner) (ForwardStatus, error) {
		var st ForwardStatus
		var last, failing, next int64
		if err := row.Scan(&st.Endpoint, &st.URL, &st.Enabled, &st.DeliveredSeq, &last, &st.Attempts, &st.LastError,
			&failing, &st.Flagged, &next); err != nil {
			return ForwardStatus{}, err
		}
		st.HeadSeq, st.Lag = head, max(head-st.DeliveredSeq, 0)
		if last > 0 {
			st.LastDeliveredAt = db.FromNanos(last)
		}
		if failing > 0 {
			st.FailingSince = db.FromNanos(failing)
			st.Flagged = st.Flagged || now.Sub(st.FailingSince) >= f.FlagAfter
		}
		if next > 0 && st.Attempts > 0 {
			st.NextAttemptAt = db.FromNanos(next)
		}
		return st, nil
	}, `SELECT id, url, enabled, delivered_seq, last_delivered_at, attempts, last_error,
		failing_since, flagged, next_attempt_at FROM audit_forward_endpoints ORDER BY id`)
}

// Wake makes this forwarder look for events now rather than at its next
// poll.
func (f *Forwarder) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}
