// Package workerapi is the worker protocol: how a worker (built into the
// server or remote) registers, claims jobs, streams logs, reports phases,
// uploads artifacts and finishes. It is HTTP/JSON under /api/worker/v1 on the
// server's own port. Protocol is the contract; Handler serves it and Client
// speaks it, and both are tested against each other.
//
// Authentication: a pool token to register; the worker token returned by
// register to claim and to deregister (say goodbye); the job token returned with each job for everything
// about that job (valid while the job holds the run).
package workerapi

import (
	"context"
	"io"
	"time"

	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// Version is checked at register: a worker speaking another version is
// refused with a clear message.
const Version = 1

// Protocol is what a worker can ask of the server.
type Protocol interface {
	// Register joins a worker pool and returns the worker's identity.
	Register(ctx context.Context, req RegisterRequest) (RegisterResponse, error)
	// Claim waits up to wait for a job of the worker's pool; nil means none.
	Claim(ctx context.Context, wait time.Duration) (*Job, error)
	// Phase reports that the job entered a new run state
	// (INITIALIZING, PLANNING, PERFORMING).
	Phase(ctx context.Context, job *Job, req PhaseRequest) error
	// AppendLog adds data at byte offset of the run's log (idempotent).
	AppendLog(ctx context.Context, job *Job, offset int64, data []byte) error
	// PutArtifact uploads an artifact (plan.json, workspace) of size
	// bytes, read from body as it is sent.
	PutArtifact(ctx context.Context, job *Job, name string, body io.Reader, size int64) error
	// GetArtifact downloads an artifact (the workspace, for an apply job).
	GetArtifact(ctx context.Context, job *Job, name string) ([]byte, error)
	// Planned reports a plan and returns what to do next: done, apply, save
	// (or plan: send the plan JSON first, when it was reported pending).
	Planned(ctx context.Context, job *Job, req PlannedRequest) (PlannedResponse, error)
	// RecordDelta reports the plan's counts of a run that went on to apply
	// before its plan JSON was made (see PlannedRequest.PlanPending).
	RecordDelta(ctx context.Context, job *Job, req DeltaRequest) error
	// HandOff says the workspace was saved: the run waits for a person.
	HandOff(ctx context.Context, job *Job) error
	// Heartbeat keeps the job alive; the reply says whether to stop.
	Heartbeat(ctx context.Context, job *Job) (HeartbeatResponse, error)
	// Finish ends the job.
	Finish(ctx context.Context, job *Job, req FinishRequest) error
	// Deregister says goodbye: the worker is stopping and its jobs have
	// ended. The server forgets it at once (it no longer counts as
	// connected). Servers before it answer 404 (see Unsupported).
	Deregister(ctx context.Context) error
	// Drain says the worker is stopping but still runs jobs: it claims no
	// more, and the server counts it as drained meanwhile. Servers before
	// it answer 404 (see Unsupported).
	Drain(ctx context.Context) error
}

// RegisterRequest is the body of POST /register (pool token as bearer).
type RegisterRequest struct {
	Name     string `json:"name"`
	Version  int    `json:"version"`
	Instance string `json:"instance,omitempty"` // built-in workers: the server instance
	// Labels describe the worker (from `gantry worker --label K=V`).
	Labels map[string]string `json:"labels,omitempty"`
	// Tools are the tools the worker has at hand and their versions (it
	// downloads others as runs need them), its platform, and its own
	// release (ToolGantry).
	Tools map[string]string `json:"tools,omitempty"`
	// Concurrency is how many jobs the worker runs at once.
	Concurrency int `json:"concurrency,omitempty"`
	// PublicKey is the public half of the pool key pair the worker holds
	// (none: empty): it gets no job of a pool whose key differs.
	PublicKey string `json:"public_key,omitempty"`
	// Features are what the worker can do beyond protocol version 1 (see
	// Features): a job that needs one the worker does not name is left
	// for another worker.
	Features []string `json:"features,omitempty"`
}

// Features are the job features this worker knows: FeatureTargets, a plan
// limited to resource addresses (-target). A worker that does not name it
// would plan everything.
const FeatureTargets = run.FeatureTargets

// Features this worker supports.
var Features = []string{FeatureTargets}

// ToolGantry is the key of RegisterRequest.Tools under which a worker
// reports its own release (e.g. "v1.2.3", "dev-3f2a1c9 (2026-11-26T16:00:00Z,
// modified)"). It travels in tools, not in a field of its own, because
// servers before this release refuse a register request with a field they
// do not know (400 unknown field): every server accepts it in tools (and
// shows it there), a newer one also as the worker's version. (Servers
// since this release ignore unknown fields, so that later fields are safe
// with them; see Handler.register.)
const ToolGantry = workerpool.ReleaseTool

// RegisterResponse carries the worker's id and token.
type RegisterResponse struct {
	WorkerID string `json:"worker_id"`
	Token    string `json:"token"`
	Pool     string `json:"pool"`
	// PublicKey is the pool's public key when the pool seals its secrets
	// and workspaces: a worker without the matching private key cannot
	// run the pool's jobs, and should not take them.
	PublicKey string `json:"public_key,omitempty"`
}

// EnvVar is one variable of the job's environment.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secret bool   `json:"secret,omitempty"`
	// Sealed says Value is sealed to the pool's public key (base64; see
	// package seal, info "env:<run>:<name>"): only the pool's workers can
	// open it.
	Sealed bool `json:"sealed,omitempty"`
	// Rank orders the variable's source: 0 the stack, then its contexts
	// in the order they apply (lower wins); a stage variable (ro_X, wo_X)
	// and X compete by rank for each stage.
	Rank int `json:"rank,omitempty"`
}

// Hooks are shell commands around each phase.
type Hooks struct {
	BeforeInit  []string `json:"before_init,omitempty"`
	AfterInit   []string `json:"after_init,omitempty"`
	BeforePlan  []string `json:"before_plan,omitempty"`
	AfterPlan   []string `json:"after_plan,omitempty"`
	BeforeApply []string `json:"before_apply,omitempty"`
	AfterApply  []string `json:"after_apply,omitempty"`
	// The phases contexts add (Spacelift's names): around the apply of a
	// DESTROY run, around a task's command, and after every job.
	BeforeDestroy []string `json:"before_destroy,omitempty"`
	AfterDestroy  []string `json:"after_destroy,omitempty"`
	BeforePerform []string `json:"before_perform,omitempty"`
	AfterPerform  []string `json:"after_perform,omitempty"`
	AfterRun      []string `json:"after_run,omitempty"`
}

// File is a file mounted into the job's workspace (from a context).
type File struct {
	Path    string `json:"path"`    // relative to the workspace root
	Content []byte `json:"content"` // base64 in JSON
	Secret  bool   `json:"secret,omitempty"`
	// Sealed says Content is sealed to the pool's public key (info
	// "file:<run>:<path>").
	Sealed bool `json:"sealed,omitempty"`
}

// Job is what a worker needs to run one phase sequence of a run.
type Job struct {
	RunID       string `json:"run_id"`
	Kind        string `json:"kind"` // plan, apply, task
	Token       string `json:"token"`
	RunType     string `json:"run_type"`
	StackID     string `json:"stack_id"`
	SpaceID     string `json:"space_id"`
	Repository  string `json:"repository"`
	Branch      string `json:"branch"`
	CommitSHA   string `json:"commit_sha"`
	ProjectRoot string `json:"project_root"`
	Tool        string `json:"tool"`
	ToolVersion string `json:"tool_version,omitempty"`
	Command     string `json:"command,omitempty"`
	// Targets limits the plan to these resource addresses (-target).
	Targets []string `json:"targets,omitempty"`
	// Drift says the run is a drift detection run.
	Drift        bool     `json:"drift_detection,omitempty"`
	Env          []EnvVar `json:"env"`
	Files        []File   `json:"files,omitempty"`
	StackLabels  []string `json:"stack_labels,omitempty"`
	Hooks        Hooks    `json:"hooks"`
	ManagedState bool     `json:"managed_state"`
	Autodeploy   bool     `json:"autodeploy,omitempty"`
	StatePath    string   `json:"state_path"`  // path of the state backend on the server
	StateToken   string   `json:"state_token"` // the run's credential for that state backend only
	LogOffset    int64    `json:"log_offset"`  // where this job's log output starts
	// Sealed says the pool has a key pair: secret values come sealed to
	// it, and the workspace handed from plan to apply must be sealed to it
	// (info "workspace:<run>").
	Sealed bool `json:"sealed,omitempty"`
	// OIDCToken is the run's OpenID Connect token for this job's first
	// stage (scope read for plans, write for applies and tasks); sealed
	// to the pool's key (info "oidc:<run>") when OIDCTokenSealed.
	OIDCToken       string `json:"oidc_token,omitempty"`
	OIDCTokenSealed bool   `json:"oidc_token_sealed,omitempty"`
	// Revoke says how to revoke credentials of the job's environment when
	// the job ends (or when the apply's replace them).
	Revoke []Revoke `json:"revoke,omitempty"`
	// CredentialFiles are the cloud integrations' files (Path: a plain
	// name), written by the worker in a directory of the job outside the
	// workspace; "{credentials_dir}" in their contents and in the values
	// of the integrations' variables (rank -1) stands for that directory.
	// Secret, sealed like the job's files (info "credfile:<run>:<name>").
	CredentialFiles []File `json:"credential_files,omitempty"`
	// Delegated are integrations whose credentials the worker mints itself
	// (setting generate_on_worker), each with the run's token for it
	// (sealed, info "delegated:<run>:<integration>", when TokenSealed).
	Delegated []Delegation `json:"delegated,omitempty"`
	// ReportTimeoutMS is how long, in milliseconds, the server may take to
	// answer planned and handoff, which evaluate policies (plan and
	// approval, under their timeouts): the worker waits at least that long
	// for each attempt (0: an older server; the worker's default).
	ReportTimeoutMS int64 `json:"report_timeout_ms,omitempty"`
	// MaxStateSize is the largest state the server accepts, in bytes (0:
	// an older server, which does not say): a state OpenTofu could not
	// save because it is larger cannot be pushed before the limit is raised.
	MaxStateSize int64 `json:"max_state_size,omitempty"`
	// AccountName is the host (and port) of the server's public URL, the
	// run's TF_VAR_spacelift_account_name ("": an older server, or no
	// --public-url; the worker uses its server URL's).
	AccountName string `json:"account_name,omitempty"`
	// RunTrigger is who or what triggered the run (the run's
	// triggered_by: user::alice, api_key::ci, trigger_policy:deps,
	// schedule:nightly, ...), RunState the run's state when the job was
	// claimed (PREPARING, or APPLYING for an apply job).
	RunTrigger string `json:"run_trigger,omitempty"`
	RunState   string `json:"run_state,omitempty"`
}

// Delegation is an integration the worker mints credentials for.
type Delegation struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Config      map[string]string `json:"config"`
	Token       string            `json:"token,omitempty"`
	TokenSealed bool              `json:"token_sealed,omitempty"`
}

// Revoke is a credential to revoke at the end of a job: kind vault:
// POST <address>/v1/auth/token/revoke-self with X-Vault-Token = the value
// of the variable token_var (and X-Vault-Namespace).
type Revoke struct {
	Kind      string `json:"kind"`
	Address   string `json:"address"`
	Namespace string `json:"namespace,omitempty"`
	TokenVar  string `json:"token_var"`
}

// PlannedRequest reports a plan's outcome.
type PlannedRequest struct {
	HasChanges bool `json:"has_changes"`
	Add        int  `json:"add"`
	Change     int  `json:"change"`
	Destroy    int  `json:"destroy"`
	// PlanPending says the plan has changes but its JSON (and so the counts)
	// is not made yet. When nothing needs the plan before applying (an
	// autodeploy stack), the server answers apply at once and the worker
	// makes the plan JSON while it applies, then sends it with RecordDelta;
	// otherwise the server answers plan: make it, upload it, report again.
	PlanPending bool `json:"plan_pending,omitempty"`
}

// DeltaRequest carries a plan's counts.
type DeltaRequest struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
}

// PlannedResponse says what to do after planning.
type PlannedResponse struct {
	Next string `json:"next"` // done, apply, save, plan
	// Log holds lines for the run's log: what the plan policies decided.
	Log []string `json:"log,omitempty"`
	// OIDCToken, with next apply, is a fresh token of scope write for the
	// apply (sealed, info "oidc-write:<run>", when OIDCTokenSealed).
	OIDCToken       string `json:"oidc_token,omitempty"`
	OIDCTokenSealed bool   `json:"oidc_token_sealed,omitempty"`
	// Env, with next apply, are the write credentials of the stack's cloud
	// integrations for the apply: they replace the job's integration
	// variables (the secret ones sealed like the job's when the pool has a
	// key pair); Revoke replaces the job's list (revoke the old ones first).
	Env             []EnvVar     `json:"env,omitempty"`
	Revoke          []Revoke     `json:"revoke,omitempty"`
	CredentialFiles []File       `json:"credential_files,omitempty"`
	Delegated       []Delegation `json:"delegated,omitempty"`
}

// HeartbeatResponse tells a worker whether to stop the job.
type HeartbeatResponse struct {
	Stop   bool   `json:"stop"`
	Reason string `json:"reason,omitempty"`
	// State, with Stop, is the run's state once the job has stopped:
	// STOPPED for a stop request (finish makes it so), the state of a run
	// that already ended, absent when the run is gone or held by another
	// worker. Older servers never send it.
	State string `json:"state,omitempty"`
}

// FinishRequest ends a job.
type FinishRequest struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// PhaseRequest reports a new run state, and the commit once it is known:
// its id, message, author and committer date (Unix nanoseconds; older
// workers send neither author nor date). LogOffset is where the phase
// begins in the job's log stream: the offset (as AppendLog counts) of the
// first byte written after the phase began, whether sent yet or not; it
// marks the phase's part of the log (the spacelift::logs::<phase>
// placeholders of notification webhooks). Older workers send none, and a
// worker whose stream lost count (output dropped or kept on the worker)
// sends none: the phase's part of the log is then unknown.
type PhaseRequest struct {
	State         string `json:"state"`
	CommitSHA     string `json:"commit_sha,omitempty"`
	CommitMessage string `json:"commit_message,omitempty"`
	CommitAuthor  string `json:"commit_author,omitempty"`
	CommitAt      int64  `json:"commit_at,omitempty"`
	LogOffset     *int64 `json:"log_offset,omitempty"`
}
