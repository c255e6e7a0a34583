package apiv1

import "time"

// Webhook is a notification endpoint of a space: a webhook, a Slack
// incoming webhook (kind slack), a Microsoft Teams incoming webhook (kind
// teams) or an SMTP server (kind email). Notification policies name it in
// endpoint_id (webhook and email rules) or channel_id (slack and teams
// rules).
type Webhook struct {
	ID    string `json:"id"`
	Space string `json:"space"`
	Kind  string `json:"kind"` // webhook, slack, teams or email
	// URL is masked for slack and teams endpoints: their URL is a secret.
	// For email endpoints it is smtp://host:port (smtps:// for implicit
	// TLS), for display only.
	URL       string `json:"url"`
	HasSecret bool   `json:"has_secret"` // the secret itself is write-only
	// Headers sent with every message; values are write-only (masked).
	Headers map[string]string `json:"headers"`
	Labels  []string          `json:"labels"`
	Retries int               `json:"retries"`
	Enabled bool              `json:"enabled"`
	// Email is the SMTP configuration of an email endpoint (absent for
	// the other kinds).
	Email     *WebhookEmail `json:"email,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

// WebhookEmail is the SMTP configuration of an email endpoint, as read:
// the password is write-only.
type WebhookEmail struct {
	SMTPHost        string   `json:"smtp_host"`
	SMTPPort        int      `json:"smtp_port"`
	SMTPUsername    string   `json:"smtp_username"`
	HasSMTPPassword bool     `json:"has_smtp_password"`
	TLS             string   `json:"tls"` // starttls, tls or none
	HasCAPEM        bool     `json:"has_ca_pem"`
	From            string   `json:"from"`
	To              []string `json:"to"` // default recipients
}

// WebhookCreate is the body of POST /webhooks.
type WebhookCreate struct {
	ID      string            `json:"id" required:"true"`
	Space   string            `json:"space,omitempty"` // default root
	Kind    string            `json:"kind,omitempty"`  // webhook (default), slack, teams or email
	URL     string            `json:"url,omitempty"`   // required but for email
	Secret  string            `json:"secret,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Labels  []string          `json:"labels,omitempty"`
	Retries *int              `json:"retries,omitempty"` // default 5, at most 20
	Enabled *bool             `json:"enabled,omitempty"` // default true
	// Email is the SMTP configuration, required for kind email.
	Email *WebhookEmailCreate `json:"email,omitempty"`
}

// WebhookEmailCreate is the SMTP configuration of a new email endpoint.
type WebhookEmailCreate struct {
	SMTPHost     string `json:"smtp_host" required:"true"`
	SMTPPort     int    `json:"smtp_port,omitempty"` // default 587 (465 with tls "tls")
	SMTPUsername string `json:"smtp_username,omitempty"`
	SMTPPassword string `json:"smtp_password,omitempty"`
	TLS          string `json:"tls,omitempty"` // starttls (default), tls, or none (loopback hosts only)
	// CAPEM holds PEM certificates trusted for the server's certificate.
	CAPEM string   `json:"ca_pem,omitempty"`
	From  string   `json:"from" required:"true"`
	To    []string `json:"to,omitempty"`
}

// WebhookUpdate is the body of PATCH /webhooks/{id}; absent fields are
// unchanged. An empty secret removes the secret; headers replace them all.
type WebhookUpdate struct {
	URL     *string             `json:"url,omitempty"`
	Secret  *string             `json:"secret,omitempty"`
	Headers *map[string]string  `json:"headers,omitempty"`
	Labels  *[]string           `json:"labels,omitempty"`
	Retries *int                `json:"retries,omitempty"`
	Enabled *bool               `json:"enabled,omitempty"`
	Email   *WebhookEmailUpdate `json:"email,omitempty"`
}

// WebhookEmailUpdate changes the SMTP configuration of an email endpoint;
// absent fields are unchanged. An empty password or ca_pem removes it; to
// replaces the default recipients.
type WebhookEmailUpdate struct {
	SMTPHost     *string   `json:"smtp_host,omitempty"`
	SMTPPort     *int      `json:"smtp_port,omitempty"`
	SMTPUsername *string   `json:"smtp_username,omitempty"`
	SMTPPassword *string   `json:"smtp_password,omitempty"`
	TLS          *string   `json:"tls,omitempty"`
	CAPEM        *string   `json:"ca_pem,omitempty"`
	From         *string   `json:"from,omitempty"`
	To           *[]string `json:"to,omitempty"`
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

// Delivery is a webhook, Slack, Teams or email message and what became of
// it.
type Delivery struct {
	ID       string `json:"id"` // also sent as X-Gantry-Delivery
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
	Space    string `json:"space"`
	Run      string `json:"run,omitempty"`
	Stack    string `json:"stack,omitempty"`
	Event    string `json:"event,omitempty"`
	Method   string `json:"method"` // SMTP for email
	// Body is the JSON document sent; for email, {subject, body, to}.
	Body   string `json:"body"`
	Status string `json:"status"` // PENDING, SENDING, DELIVERED or FAILED
	Error  string `json:"error,omitempty"`
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
