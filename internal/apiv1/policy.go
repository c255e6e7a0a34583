package apiv1

import (
	"encoding/json"
	"time"
)

// Policy is a Rego policy of a space.
type Policy struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Space       string    `json:"space"`
	Type        string    `json:"type"` // PLAN, APPROVAL, TRIGGER, GIT_PUSH, NOTIFICATION, LOGIN
	Body        string    `json:"body"`
	Engine      string    `json:"engine"`     // the syntax used: rego_v0 or rego_v1
	EngineSet   string    `json:"engine_set"` // what was asked ("" = detect)
	Labels      []string  `json:"labels"`
	Description string    `json:"description"`
	Version     int       `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PolicyCreate is the body of POST /policies.
type PolicyCreate struct {
	ID          string   `json:"id" required:"true"`
	Name        string   `json:"name,omitempty"`
	Space       string   `json:"space,omitempty"` // default root
	Type        string   `json:"type" required:"true"`
	Body        string   `json:"body" required:"true"`
	Engine      string   `json:"engine,omitempty"` // rego_v0, rego_v1, or empty to detect
	Labels      []string `json:"labels,omitempty"`
	Description string   `json:"description,omitempty"`
}

// PolicyUpdate is the body of PATCH /policies/{id}; absent fields are
// unchanged. A new body (or engine) makes a new version.
type PolicyUpdate struct {
	Name        *string   `json:"name,omitempty"`
	Body        *string   `json:"body,omitempty"`
	Engine      *string   `json:"engine,omitempty"`
	Labels      *[]string `json:"labels,omitempty"`
	Description *string   `json:"description,omitempty"`
}

// PolicyAttachment is a stack a policy applies to.
type PolicyAttachment struct {
	Stack string `json:"stack"`
	Via   string `json:"via"` // explicit, or the autoattach label
	// Applied is false for an explicit attachment that runs of the stack
	// do not use, NotApplied saying why (the stack's space no longer sees
	// the policy's).
	Applied    bool   `json:"applied"`
	NotApplied string `json:"not_applied,omitempty"`
}

// PolicyAttach is the body of POST /policies/{id}/attachments.
type PolicyAttach struct {
	Stack string `json:"stack" required:"true"`
}

// PolicySample is a stored evaluation of a policy.
type PolicySample struct {
	Key       string          `json:"key"`
	Policy    string          `json:"policy"`
	Version   int             `json:"version"`
	Type      string          `json:"type"`
	Run       string          `json:"run,omitempty"`
	Explicit  bool            `json:"explicit"` // the policy asked for it with `sample`
	Outcome   string          `json:"outcome"`
	CreatedAt time.Time       `json:"created_at"`
	Input     json.RawMessage `json:"input,omitempty"`  // only for one sample
	Result    json.RawMessage `json:"result,omitempty"` // only for one sample
}

// PolicySimulate is the body of POST /policies/{id}/simulate: an input or
// a sample key, and optionally an edited body to evaluate instead.
type PolicySimulate struct {
	Input  json.RawMessage `json:"input,omitempty"`
	Sample string          `json:"sample,omitempty"`
	Body   string          `json:"body,omitempty"`
}

// PolicyDecision is one policy's decision on one input.
type PolicyDecision struct {
	Outcome    string         `json:"outcome"`
	Messages   []string       `json:"messages"`
	Values     map[string]any `json:"values"`
	Error      string         `json:"error,omitempty"`
	DurationMS float64        `json:"duration_ms"`
}

// PolicySimulation is the answer of simulate.
type PolicySimulation struct {
	Policy   string          `json:"policy"`
	Version  int             `json:"version"` // 0: an edited body
	Edited   bool            `json:"edited"`
	Engine   string          `json:"engine"`
	Sample   string          `json:"sample,omitempty"`
	Decision PolicyDecision  `json:"decision"`
	Recorded *PolicyDecision `json:"recorded,omitempty"`
	Changes  []string        `json:"changes"` // differences from the recorded decision
}

// PolicyReplay is the body of POST /policies/{id}/replay.
type PolicyReplay struct {
	Body  string `json:"body" required:"true"`
	Since string `json:"since,omitempty"` // a duration like 7d or 36h; default 7d
}

// PolicyReplayItem is a sample whose decision the edited body changes.
type PolicyReplayItem struct {
	Sample    string    `json:"sample"`
	Run       string    `json:"run,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Before    string    `json:"before"`
	After     string    `json:"after"`
	Changes   []string  `json:"changes"`
}

// PolicyReplayResult is the answer of replay.
type PolicyReplayResult struct {
	Evaluated int                `json:"evaluated"`
	Changed   []PolicyReplayItem `json:"changed"`
}

// LibraryPolicy is a policy shipped in the binary.
type LibraryPolicy struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Description string   `json:"description"`
	Labels      []string `json:"labels"`
	Body        string   `json:"body"`
}

// LibraryImport is the body of POST /policy-library/{name}/import.
type LibraryImport struct {
	ID     string   `json:"id,omitempty"` // default: the library name
	Space  string   `json:"space,omitempty"`
	Labels []string `json:"labels,omitempty"` // default: the library policy's labels
}

// PolicyReceipt is what one policy's evaluation left on a run.
type PolicyReceipt struct {
	ID         string    `json:"id"`
	Policy     string    `json:"policy"`
	Name       string    `json:"name"`
	Version    int       `json:"version"`
	Type       string    `json:"type"`
	Outcome    string    `json:"outcome"`
	Messages   []string  `json:"messages"`
	Flags      []string  `json:"flags"`
	Error      string    `json:"error,omitempty"`
	DurationMS float64   `json:"duration_ms"`
	Sample     string    `json:"sample,omitempty"`
	At         time.Time `json:"at"`
}

// Review is a person's decision on a run.
type Review struct {
	ID        string    `json:"id"`
	Run       string    `json:"run"`
	Author    string    `json:"author"`
	Decision  string    `json:"decision"` // APPROVE or REJECT
	Note      string    `json:"note"`
	RunState  string    `json:"run_state"`
	CreatedAt time.Time `json:"created_at"`
}

// ReviewCreate is the body of POST /runs/{id}/reviews.
type ReviewCreate struct {
	Decision string `json:"decision" required:"true"` // APPROVE or REJECT
	Note     string `json:"note,omitempty"`
}

// PushEvent is the body of POST /stacks/{id}/notify-push: a git push, or a
// pull-request event when pull_request is set.
type PushEvent struct {
	Branch        string           `json:"branch"`
	SHA           string           `json:"sha" required:"true"`
	Message       string           `json:"message,omitempty"`
	Author        string           `json:"author,omitempty"`
	Tag           string           `json:"tag,omitempty"`
	AffectedFiles []string         `json:"affected_files"`
	PullRequest   *PushPullRequest `json:"pull_request,omitempty"`
}

// PushPullRequest describes the pull request of a pull-request event.
type PushPullRequest struct {
	ID         int      `json:"id"`
	Action     string   `json:"action,omitempty"`
	Title      string   `json:"title,omitempty"`
	Author     string   `json:"author,omitempty"`
	Labels     []string `json:"labels,omitempty"`
	BaseBranch string   `json:"base_branch,omitempty"`
	Draft      bool     `json:"draft,omitempty"`
	Closed     bool     `json:"closed,omitempty"`
	Approved   bool     `json:"approved,omitempty"`
	Mergeable  bool     `json:"mergeable,omitempty"`
}

// PushResult says what a push led to.
type PushResult struct {
	Action   string          `json:"action"` // track, propose or ignore
	Run      *Run            `json:"run,omitempty"`
	Canceled []string        `json:"canceled"`
	Message  string          `json:"message,omitempty"`
	Fail     bool            `json:"fail"`
	Default  bool            `json:"default"` // no push policy: Spacelift's default rules decided
	Receipts []PolicyReceipt `json:"receipts"`
}
