package apiv1

import "time"

// AuditWebhook is an audit forwarding endpoint: every audit event is POSTed
// to URL as JSON (an AuditEvent), one request per event, in seq order, at
// least once, signed in X-Signature-256 when it has a secret.
type AuditWebhook struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	HasSecret bool   `json:"has_secret"` // the secret itself is write-only
	// Headers sent with every request; values are write-only (masked).
	Headers map[string]string `json:"headers"`
	Enabled bool              `json:"enabled"`
	// DeliveredSeq is the cursor: the last seq acknowledged (at creation:
	// the event before the first one it gets).
	DeliveredSeq int64     `json:"delivered_seq"`
	CreatedAt    time.Time `json:"created_at"`
}

// AuditWebhookCreate is the body of POST /audit/webhooks.
type AuditWebhookCreate struct {
	ID      string            `json:"id" required:"true"`
	URL     string            `json:"url" required:"true"`
	Secret  string            `json:"secret,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// FromSeq is the first event to send (a replay of the trail from
	// there); absent or 0: only events recorded after the creation.
	FromSeq int64 `json:"from_seq,omitempty"`
}

// AuditDelivery is the forwarding status of one audit webhook.
type AuditDelivery struct {
	Webhook         string     `json:"webhook"`
	URL             string     `json:"url"`
	Enabled         bool       `json:"enabled"`
	DeliveredSeq    int64      `json:"delivered_seq"` // the cursor
	HeadSeq         int64      `json:"head_seq"`
	Lag             int64      `json:"lag"` // events not yet delivered
	LastDeliveredAt *time.Time `json:"last_delivered_at,omitempty"`
	// Attempts failed in a row at the event after the cursor.
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error,omitempty"`
	FailingSince  *time.Time `json:"failing_since,omitempty"`
	Flagged       bool       `json:"flagged"` // failing for too long
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}
