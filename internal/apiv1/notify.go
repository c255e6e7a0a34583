package apiv1

import "time"

// Webhook is a notification endpoint of a space: a webhook, or a Slack
// incoming webhook (kind slack). Notification policies name it in
// endpoint_id (webhook rules) or channel_id (slack rules).
type Webhook struct {
	ID    string `json:"id"`
	Space string `json:"space"`
	Kind  string `json:"kind"` // webhook or slack
	// URL is masked for slack endpoints: their URL is a secret.
	URL       string `json:"url"`
	HasSecret bool   `json:"has_secret"` // the secret itself is write-only
	// Headers sent with every message; values are write-only (masked).
	Headers   map[string]string `json:"headers"`
	Labels    []string          `json:"labels"`
	Retries   int               `json:"retries"`
	Enabled   bool              `json:"enabled"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// WebhookCreate is the body of POST /webhooks.
type WebhookCreate struct {
	ID      string            `json:"id"`
	Space   string            `json:"space,omitempty"` // default root
	Kind    string            `json:"kind,omitempty"`  // webhook (default) or slack
	URL     string            `json:"url"`
	Secret  string            `json:"secret,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Labels  []string          `json:"labels,omitempty"`
	Retries *int              `json:"retries,omitempty"` // default 5, at most 20
	Enabled *bool             `json:"enabled,omitempty"` // default true
}

// WebhookUpdate is the body of PATCH /webhooks/{id}; absent fields are
// unchanged. An empty secret removes the secret; headers replace them all.
type WebhookUpdate struct {
	URL     *string            `json:"url,omitempty"`
	Secret  *string            `json:"secret,omitempty"`
	Headers *map[string]string `json:"headers,omitempty"`
	Labels  *[]string          `json:"labels,omitempty"`
	Retries *int               `json:"retries,omitempty"`
	Enabled *bool              `json:"enabled,omitempty"`
}

// Notification is an inbox message of a notification policy.
type Notification struct {
	ID        string    `json:"id"`
	Space     string    `json:"space"`
	Run       string    `json:"run,omitempty"`
	Stack     string    `json:"stack,omitempty"`
	Event     string    `json:"event,omitempty"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	Severity  string    `json:"severity"` // INFO, WARNING or ERROR
	Read      bool      `json:"read"`
	CreatedAt time.Time `json:"created_at"`
}

// Delivery is a webhook or Slack message and what became of it.
type Delivery struct {
	ID       string `json:"id"` // also sent as X-Gantry-Delivery
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
	Space    string `json:"space"`
	Run      string `json:"run,omitempty"`
	Stack    string `json:"stack,omitempty"`
	Event    string `json:"event,omitempty"`
	Method   string `json:"method"`
	Body     string `json:"body"`   // the JSON document sent
	Status   string `json:"status"` // PENDING, SENDING, DELIVERED or FAILED
	Error    string `json:"error,omitempty"`
	// NextAttemptAt is when a pending delivery is tried next.
	NextAttemptAt *time.Time        `json:"next_attempt_at,omitempty"`
	Attempts      []DeliveryAttempt `json:"attempts"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// DeliveryAttempt is one try at sending a delivery.
type DeliveryAttempt struct {
	N          int       `json:"n"`
	At         time.Time `json:"at"`
	HTTPStatus int       `json:"http_status,omitempty"` // absent when no answer came
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}
