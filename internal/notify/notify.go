// Package notify keeps notification endpoints (webhooks, Slack and
// Microsoft Teams incoming webhooks and SMTP email servers defined in a
// space) and delivers the messages that notification
// policies route to them, durably: every message is a row written in the
// transaction of the run update that caused it, and a dispatcher sends due
// rows with retries and exponential backoff, recording every attempt. Inbox
// messages are stored as inbox items at once.
//
// Several server replicas may run the dispatcher on one PostgreSQL database:
// a delivery is claimed with FOR UPDATE SKIP LOCKED under a lease, so it is
// sent by one replica at a time, and sent again after the lease if that
// replica died mid-delivery. Receivers de-duplicate by X-Gantry-Delivery.
//
// The package sends HTTP and SMTP itself (as a client only): delivering is
// its job, and the rule that domain packages do not import net/http is
// about not depending on the server's edges.
package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// Endpoint kinds.
const (
	KindWebhook = "webhook"
	KindSlack   = "slack"
	KindTeams   = "teams" // a Microsoft Teams incoming webhook (or Workflows URL)
	KindEmail   = "email" // an SMTP server
	// KindInbox is a message kind only: inbox messages have no endpoint.
	KindInbox = "inbox"
)

// Delivery statuses.
const (
	StatusPending   = "PENDING"
	StatusSending   = "SENDING"
	StatusDelivered = "DELIVERED"
	StatusFailed    = "FAILED"
)

// Inbox severities (Spacelift's).
const (
	SeverityInfo    = "INFO"
	SeverityWarning = "WARNING"
	SeverityError   = "ERROR"
)

// Retries bounds.
const (
	DefaultRetries = 5
	MaxRetries     = 20
)

// Endpoint is a place messages are sent to.
type Endpoint struct {
	ID      string // slug, unique across spaces
	SpaceID string
	Kind    string // KindWebhook, KindSlack, KindTeams or KindEmail
	// URL is where messages go. Read back, a Slack or Teams URL (which is
	// itself a secret) is masked; an email endpoint's is smtp://host:port
	// (or smtps:// for implicit TLS), shown only, never set.
	URL string
	// Secret signs webhook bodies (X-Signature-256). Write-only: empty when
	// read back; HasSecret tells whether one is set.
	Secret    string
	HasSecret bool
	// Headers are sent with every message. Values are write-only: read back
	// they are secrets.Mask.
	Headers map[string]string
	Labels  []string
	Retries int // retries after the first attempt, 0 to MaxRetries
	Enabled bool
	// Email is the SMTP configuration of an email endpoint.
	Email     EmailSettings
	CreatedAt time.Time
	UpdatedAt time.Time
}

// EndpointUpdate changes the fields it sets (non-nil) of an endpoint.
type EndpointUpdate struct {
	URL     *string
	Secret  *string // "" removes the secret
	Headers *map[string]string
	Labels  *[]string
	Retries *int
	Enabled *bool
	Email   EmailUpdate
}

// Message is one notification routed by a policy.
type Message struct {
	Kind       string // KindWebhook, KindSlack or KindInbox
	EndpointID string // webhook endpoint_id or Slack channel_id
	SpaceID    string // the run's space
	RunID      string
	StackID    string
	Event      string // e.g. "run_updated:FAILED"
	// AllowedSpaces are the spaces whose endpoints the run may use (its
	// space and the ancestors it inherits from). Nil means SpaceID only.
	AllowedSpaces []string
	// Problem, when set by whoever built the message from a policy rule,
	// says why the rule cannot be honoured (a field of the wrong type): the
	// message is recorded as a FAILED delivery saying so.
	Problem string

	// Webhook.
	Payload        json.RawMessage // the body; DefaultPayload when empty
	DefaultPayload json.RawMessage // Spacelift's default webhook payload of the event
	Method         string          // default POST
	Headers        map[string]string

	// Slack, and the message of a Teams card.
	Text string

	// Inbox; Title is also the title of a Teams card.
	Title    string
	Body     string
	Severity string // INFO (default), WARNING, ERROR

	// Teams: the link of the card's "Open run" action (omitted when empty).
	RunURL string

	// Email (the body is Body). To, when not empty, replaces the
	// endpoint's default recipients.
	Subject string
	To      []string
}

// Service stores endpoints, deliveries and inbox items, and runs the
// dispatcher. The exported fields tune the dispatcher; set them before Run.
type Service struct {
	// BackoffBase is the wait before the first retry; each later retry
	// waits twice as long, up to MaxBackoff, with jitter.
	BackoffBase time.Duration
	MaxBackoff  time.Duration
	// PollInterval is how often the dispatcher looks for due deliveries
	// when nothing wakes it.
	PollInterval time.Duration
	// Lease is how long a claimed delivery stays claimed: a sender that
	// dies mid-delivery leaves it to be sent again after its lease. It is
	// at least 2*Timeout+LeaseMargin (a shorter one is raised, with a
	// warning, when the dispatcher starts), so that no replica sends a
	// delivery again while its first request may still be in flight.
	Lease time.Duration
	// Timeout bounds one HTTP request.
	Timeout time.Duration
	// Concurrency is how many deliveries are sent at once.
	Concurrency int
	// DenyCIDRs are address ranges deliveries may not connect to, on top
	// of those always denied (link-local, including the cloud metadata
	// address 169.254.169.254, the unspecified addresses and
	// fd00:ec2::254). Loopback and private ranges are allowed unless
	// listed here (e.g. 127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12,
	// 192.168.0.0/16, fc00::/7). The check is made by the dialer on the
	// resolved address, so DNS cannot get around it.
	DenyCIDRs []netip.Prefix
	// Audit records every endpoint change in its transaction (an
	// audit.Hook; package audit imports this one, so not named here).
	Audit func(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error

	db   *db.DB
	box  *secrets.Box
	log  *slog.Logger
	wake chan struct{}
}

// NewService returns a notification service; box seals endpoint secrets.
// A nil log discards records.
func NewService(d *db.DB, box *secrets.Box, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		BackoffBase:  10 * time.Second,
		MaxBackoff:   10 * time.Minute,
		PollInterval: 3 * time.Second,
		Lease:        time.Minute,
		Timeout:      10 * time.Second,
		Concurrency:  8,
		db:           d,
		box:          box,
		log:          log,
		wake:         make(chan struct{}, 1),
	}
}

// LeaseMargin is added to twice the Timeout for the shortest Lease: the
// time to read the endpoint and record the outcome.
const LeaseMargin = 5 * time.Second

// lease is the lease of a claim: Lease, raised to 2*Timeout+LeaseMargin.
func (s *Service) lease() time.Duration {
	return max(s.Lease, 2*s.Timeout+LeaseMargin)
}

// now is the service's clock, truncated like the other services' times.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// record records an audit event when Audit is set.
func (s *Service) audit(ctx context.Context, action, subjectType, subjectID, space string, before, after any) error {
	if s.Audit == nil {
		return nil
	}
	return s.Audit(ctx, action, subjectType, subjectID, space, before, after)
}
