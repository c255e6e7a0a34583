// Package apiv1 holds the JSON shapes of the public REST API under /api/v1.
// The server's handlers, the Go client and the OpenAPI document all use these
// types, so the wire format is written down once.
//
// Conventions: ids are slugs (spaces, stacks) or prefixed sortable ids (runs);
// times are RFC 3339 in UTC; lists are {"items": [...], "next_cursor": "..."};
// errors are {"error": {"code": "...", "message": "..."}}.
package apiv1

import "time"

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail names the error kind and a human message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// List is a page of items; NextCursor is empty on the last page.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// Space is a node of the space tree.
type Space struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Parent      string    `json:"parent,omitempty"`
	Inherit     bool      `json:"inherit"`
	Labels      []string  `json:"labels"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// SpaceCreate is the body of POST /spaces.
type SpaceCreate struct {
	ID          string   `json:"id" required:"true"`
	Name        string   `json:"name,omitempty"`
	Parent      string   `json:"parent,omitempty"` // default root
	Inherit     bool     `json:"inherit,omitempty"`
	Labels      []string `json:"labels,omitempty"`
	Description string   `json:"description,omitempty"`
}

// SpaceUpdate is the body of PATCH /spaces/{id}; absent fields are unchanged.
type SpaceUpdate struct {
	Name        *string   `json:"name,omitempty"`
	Inherit     *bool     `json:"inherit,omitempty"`
	Labels      *[]string `json:"labels,omitempty"`
	Description *string   `json:"description,omitempty"`
}

// Hooks are shell commands run in the workspace around each phase.
type Hooks struct {
	BeforeInit  []string `json:"before_init,omitempty"`
	AfterInit   []string `json:"after_init,omitempty"`
	BeforePlan  []string `json:"before_plan,omitempty"`
	AfterPlan   []string `json:"after_plan,omitempty"`
	BeforeApply []string `json:"before_apply,omitempty"`
	AfterApply  []string `json:"after_apply,omitempty"`
}

// Stack is one root module run by one tool.
type Stack struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Space        string   `json:"space"`
	Repository   string   `json:"repository"`
	Branch       string   `json:"branch"`
	ProjectRoot  string   `json:"project_root"`
	Tool         string   `json:"tool"`
	ToolVersion  string   `json:"tool_version,omitempty"`
	Labels       []string `json:"labels"`
	Description  string   `json:"description"`
	Autodeploy   bool     `json:"autodeploy"`
	ManagedState bool     `json:"managed_state"`
	Hooks        Hooks    `json:"hooks"`
	// RawPolicyInput: plan policies see sensitive values unsanitized.
	RawPolicyInput bool `json:"raw_policy_input"`
	// WorkerPool is the pool whose workers run the stack; "" is the
	// server's built-in pool.
	WorkerPool string    `json:"worker_pool"`
	State      string    `json:"state"` // state of the newest blocking run, or NONE
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// StackCreate is the body of POST /stacks.
type StackCreate struct {
	ID             string   `json:"id" required:"true"`
	Name           string   `json:"name,omitempty"` // default: the id
	Space          string   `json:"space,omitempty"`
	Repository     string   `json:"repository" required:"true"`
	Branch         string   `json:"branch,omitempty"` // default main
	ProjectRoot    string   `json:"project_root,omitempty"`
	Tool           string   `json:"tool,omitempty"` // opentofu (default) or terraform
	ToolVersion    string   `json:"tool_version,omitempty"`
	Labels         []string `json:"labels,omitempty"`
	Description    string   `json:"description,omitempty"`
	Autodeploy     bool     `json:"autodeploy,omitempty"`
	ManagedState   *bool    `json:"managed_state,omitempty"` // default true
	Hooks          *Hooks   `json:"hooks,omitempty"`
	RawPolicyInput bool     `json:"raw_policy_input,omitempty"`
	// WorkerPool is a pool of the stack's space or of an ancestor it
	// inherits from; absent or "" for the built-in pool.
	WorkerPool string `json:"worker_pool,omitempty"`
}

// StackUpdate is the body of PATCH /stacks/{id}; absent fields are unchanged.
type StackUpdate struct {
	Name           *string   `json:"name,omitempty"`
	Space          *string   `json:"space,omitempty"`
	Repository     *string   `json:"repository,omitempty"`
	Branch         *string   `json:"branch,omitempty"`
	ProjectRoot    *string   `json:"project_root,omitempty"`
	Tool           *string   `json:"tool,omitempty"`
	ToolVersion    *string   `json:"tool_version,omitempty"`
	Labels         *[]string `json:"labels,omitempty"`
	Description    *string   `json:"description,omitempty"`
	Autodeploy     *bool     `json:"autodeploy,omitempty"`
	ManagedState   *bool     `json:"managed_state,omitempty"`
	Hooks          *Hooks    `json:"hooks,omitempty"`
	RawPolicyInput *bool     `json:"raw_policy_input,omitempty"`
	WorkerPool     *string   `json:"worker_pool,omitempty"` // "" moves the stack to the built-in pool
}

// EnvVar is a stack environment variable. Value is empty for secrets in
// responses: secret values are write-only.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value,omitempty"`
	Secret bool   `json:"secret"`
}

// EnvVarSet is the body of PUT /stacks/{id}/env/{name}.
type EnvVarSet struct {
	Value  string `json:"value" required:"true"`
	Secret bool   `json:"secret,omitempty"`
}

// Run types.
const (
	RunTracked  = "TRACKED"
	RunProposed = "PROPOSED"
	RunDestroy  = "DESTROY"
	RunTask     = "TASK"
)

// Run states (Spacelift's names).
const (
	StateQueued        = "QUEUED"
	StateReady         = "READY"
	StatePreparing     = "PREPARING"
	StateInitializing  = "INITIALIZING"
	StatePlanning      = "PLANNING"
	StatePerforming    = "PERFORMING"
	StateUnconfirmed   = "UNCONFIRMED"
	StateConfirmed     = "CONFIRMED"
	StateApplying      = "APPLYING"
	StateFinished      = "FINISHED"
	StateFailed        = "FAILED"
	StateDiscarded     = "DISCARDED"
	StateCanceled      = "CANCELED"
	StateStopped       = "STOPPED"
	StatePendingReview = "PENDING_REVIEW"
)

// Delta counts the resource changes of a plan.
type Delta struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
}

// Transition is one entry of a run's timeline.
type Transition struct {
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
}

// Run is one execution on a stack.
type Run struct {
	ID            string   `json:"id"`
	Stack         string   `json:"stack"`
	Space         string   `json:"space"`
	Type          string   `json:"type"`
	State         string   `json:"state"`
	Blocking      bool     `json:"blocking"`
	CommitSHA     string   `json:"commit_sha"`
	CommitMessage string   `json:"commit_message"`
	TriggeredBy   string   `json:"triggered_by"`
	Command       string   `json:"command,omitempty"`
	Delta         *Delta   `json:"delta,omitempty"`
	HasChanges    bool     `json:"has_changes"`
	Reason        string   `json:"reason,omitempty"`      // why it failed or stopped
	Flags         []string `json:"flags"`                 // set by policies (flag / reset_flag)
	Workflow      string   `json:"workflow,omitempty"`    // the trigger workflow it belongs to
	ReviewFrom    string   `json:"review_from,omitempty"` // while PENDING_REVIEW: where an approval returns it
	// DriftDetection says the run is a drift detection run (PROPOSED).
	DriftDetection bool `json:"drift_detection"`
	// Targets are the resource addresses the plan is limited to.
	Targets []string `json:"targets,omitempty"`
	// Tool is what its plan job ran with, ToolVersion the version that
	// made its plan: what an apply after a confirmation uses.
	Tool        string `json:"tool,omitempty"`
	ToolVersion string `json:"tool_version,omitempty"`
	// WaitingFor says why a run waiting for a worker gets none, e.g.
	// "no worker in pool eu-private", or none with a feature it needs.
	WaitingFor  string       `json:"waiting_for,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	Transitions []Transition `json:"transitions,omitempty"`
}

// RunCreate is the body of POST /stacks/{id}/runs. Tasks have their own
// route and action: TaskCreate.
type RunCreate struct {
	Type string `json:"type,omitempty"` // TRACKED (default), PROPOSED, DESTROY
	SHA  string `json:"sha,omitempty"`  // default: head of the stack's branch
}

// TaskCreate runs a command on a stack (a TASK run).
type TaskCreate struct {
	Command string `json:"command" required:"true"`
	SHA     string `json:"sha,omitempty"` // default: head of the stack's branch
}

// LogChunk is a piece of a run's log starting at byte Offset.
// NextOffset is where the next read starts; Done says the run is terminal and
// no more output will come.
type LogChunk struct {
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Data       string `json:"data"`
	Done       bool   `json:"done"`
}

// StateVersion describes one stored version of a stack's state.
type StateVersion struct {
	Serial    int64     `json:"serial"`
	Lineage   string    `json:"lineage"`
	Checksum  string    `json:"checksum"` // hex SHA-256 of the state document
	Size      int64     `json:"size"`
	Run       string    `json:"run,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Current   bool      `json:"current"`
}

// StateRollback is the body of POST /stacks/{id}/state/rollback.
type StateRollback struct {
	Serial int64 `json:"serial" required:"true"`
}

// Output is one root module output of the current state.
type Output struct {
	Name      string `json:"name"`
	Value     any    `json:"value,omitempty"`
	Sensitive bool   `json:"sensitive"`
	Type      any    `json:"type,omitempty"`
}

// Lock describes a state lock holder (OpenTofu's lock info).
type Lock struct {
	ID        string `json:"ID"`
	Operation string `json:"Operation"`
	Info      string `json:"Info"`
	Who       string `json:"Who"`
	Version   string `json:"Version"`
	Created   string `json:"Created"`
	Path      string `json:"Path"`
}
