package apiv1

import (
	"encoding/json"
	"time"
)

// DriftDetectionSet is the body of PUT /stacks/{id}/drift-detection.
type DriftDetectionSet struct {
	Schedule    []string `json:"schedule" required:"true"` // cron expressions (five fields, or @hourly, @daily, ...)
	Timezone    string   `json:"timezone,omitempty"`       // IANA name; default UTC
	Reconcile   bool     `json:"reconcile,omitempty"`      // queue a tracked run when drift is found
	IgnoreState bool     `json:"ignore_state,omitempty"`   // run whatever the stack's last tracked run
}

// DriftDetection is a stack's drift detection schedule
// (GET /stacks/{id}/drift-detection).
type DriftDetection struct {
	ID          string     `json:"id"`
	Schedule    []string   `json:"schedule"`
	Timezone    string     `json:"timezone"`
	Reconcile   bool       `json:"reconcile"`
	IgnoreState bool       `json:"ignore_state"`
	NextRunAt   *time.Time `json:"next_run_at,omitempty"`
	LastDue     *time.Time `json:"last_due,omitempty"`
	LastRun     string     `json:"last_run,omitempty"`
	LastNote    string     `json:"last_note,omitempty"` // why the last due time queued no run
}

// Schedule is a stack's schedule (GET /stacks/{id}/schedules).
type Schedule struct {
	ID              string     `json:"id"`
	Stack           string     `json:"stack"`
	Kind            string     `json:"kind"` // drift, run, task, delete
	Cron            []string   `json:"cron"`
	Timezone        string     `json:"timezone"`
	At              *time.Time `json:"at,omitempty"`
	Command         string     `json:"command,omitempty"`
	Reconcile       bool       `json:"reconcile,omitempty"`
	IgnoreState     bool       `json:"ignore_state,omitempty"`
	DeleteResources bool       `json:"delete_resources,omitempty"`
	NextRunAt       *time.Time `json:"next_run_at,omitempty"`
	LastDue         *time.Time `json:"last_due,omitempty"`
	LastRun         string     `json:"last_run,omitempty"`
	LastNote        string     `json:"last_note,omitempty"`
	Status          string     `json:"status"` // active, waiting (a delete's destroy run), done
	CreatedBy       string     `json:"created_by"`
	CreatedAt       time.Time  `json:"created_at"`
}

// ScheduleCreate is the body of POST /stacks/{id}/schedules.
type ScheduleCreate struct {
	Kind            string     `json:"kind" required:"true"` // run, task, delete
	Cron            []string   `json:"cron,omitempty"`       // run, task
	Timezone        string     `json:"timezone,omitempty"`   // run, task
	Command         string     `json:"command,omitempty"`    // task
	At              *time.Time `json:"at,omitempty"`         // delete
	DeleteResources *bool      `json:"delete_resources,omitempty"`
}

// DriftAttribute is one attribute that differs between Gantry's state and
// the world; sensitive values are never shown.
type DriftAttribute struct {
	Name      string          `json:"name"`
	Before    json.RawMessage `json:"before,omitempty"`
	After     json.RawMessage `json:"after,omitempty"`
	Sensitive bool            `json:"sensitive,omitempty"`
}

// DriftResource is one drift episode of one resource.
type DriftResource struct {
	Address         string           `json:"address"`
	Type            string           `json:"type"`
	Provider        string           `json:"provider"`
	Cloud           string           `json:"cloud"`
	Action          string           `json:"action"` // changed, deleted, created (outside Gantry)
	Attributes      []DriftAttribute `json:"attributes"`
	FirstRun        string           `json:"first_run"`
	FirstDetectedAt time.Time        `json:"first_detected_at"`
	LastRun         string           `json:"last_run"`
	LastDetectedAt  time.Time        `json:"last_detected_at"`
	ResolvedRun     string           `json:"resolved_run,omitempty"`
	ResolvedAt      *time.Time       `json:"resolved_at,omitempty"`
}

// StackDrift is a stack's drift status (GET /drift).
type StackDrift struct {
	Stack          string     `json:"stack"`
	Name           string     `json:"name"`
	Space          string     `json:"space"`
	Status         string     `json:"status"` // drifted, clean, failed, unchecked
	Drifted        int        `json:"drifted_resources"`
	Since          *time.Time `json:"since,omitempty"` // first detection of the oldest open drift
	LastCheckedAt  *time.Time `json:"last_checked_at,omitempty"`
	LastRun        string     `json:"last_run,omitempty"`
	LastGoodAt     *time.Time `json:"last_successful_check_at,omitempty"`
	LastGoodRun    string     `json:"last_successful_run,omitempty"`
	Error          string     `json:"last_check_error,omitempty"` // why the last check failed
	PendingChanges bool       `json:"pending_changes"`            // the configuration changed since the last apply (not drift)
	Clouds         []string   `json:"clouds"`
	Scheduled      bool       `json:"scheduled"`
}

// StackDriftDetail is GET /stacks/{id}/drift.
type StackDriftDetail struct {
	StackDrift
	Resources []DriftResource `json:"resources"` // open drift
	History   []DriftResource `json:"history"`   // resolved drift, newest first
}

// DriftReconcile is the body of POST /stacks/{id}/drift/reconcile.
type DriftReconcile struct {
	Resources []string `json:"resources,omitempty"` // default: every change of the stack
}
