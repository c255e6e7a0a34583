package apiv1

import "time"

// BuiltinPool names the server's built-in pool in the paths of the worker
// endpoints (GET /worker-pools/builtin/workers). Stacks that name no pool
// (worker_pool "") run there.
const BuiltinPool = "builtin"

// Worker statuses.
const (
	WorkerIdle    = "IDLE"    // connected, running nothing
	WorkerBusy    = "BUSY"    // running at least one job
	WorkerDrained = "DRAINED" // takes no new jobs; its running jobs go on
	WorkerGone    = "GONE"    // no sign of life within the server's --worker-timeout
)

// WorkerPool is a named group of private workers in a space. Its token is
// never part of it: only the answers to create and reset carry one.
type WorkerPool struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Space       string   `json:"space"`
	Labels      []string `json:"labels"`
	Description string   `json:"description"`
	// PublicKey seals the pool's secret values and workspaces (from
	// `gantry workerpool keygen`); empty when the pool has no key pair.
	PublicKey string `json:"public_key"`
	// DriftRunLimit caps the pool's drift detection runs at once (0: no limit).
	DriftRunLimit int       `json:"drift_run_limit"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// WorkerPoolKey is the body of PUT /worker-pools/{id}/public-key.
type WorkerPoolKey struct {
	PublicKey string `json:"public_key" required:"true"` // empty turns sealing off
}

// WorkerPoolCreate is the body of POST /worker-pools.
type WorkerPoolCreate struct {
	ID          string   `json:"id" required:"true"`
	Name        string   `json:"name,omitempty"`  // default: the id
	Space       string   `json:"space,omitempty"` // default root
	Labels      []string `json:"labels,omitempty"`
	Description string   `json:"description,omitempty"`
	// DriftRunLimit caps the pool's drift detection runs at once (0: no limit).
	DriftRunLimit int `json:"drift_run_limit,omitempty"`
}

// WorkerPoolUpdate is the body of PATCH /worker-pools/{id}; absent fields
// are unchanged. The id and space cannot change.
type WorkerPoolUpdate struct {
	Name          *string   `json:"name,omitempty"`
	Labels        *[]string `json:"labels,omitempty"`
	Description   *string   `json:"description,omitempty"`
	DriftRunLimit *int      `json:"drift_run_limit,omitempty"`
}

// WorkerPoolToken is the answer to POST /worker-pools and to POST
// /worker-pools/{id}/reset: the pool and its token, shown this once.
type WorkerPoolToken struct {
	WorkerPool
	Token string `json:"token"`
}

// Worker is a registered worker of a pool as operators see it.
type Worker struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Status      string            `json:"status"` // IDLE, BUSY, DRAINED or GONE
	Labels      map[string]string `json:"labels"`
	Tools       map[string]string `json:"tools"` // tool versions it has, by tool
	Concurrency int               `json:"concurrency"`
	// Features are what it can do beyond protocol version 1 ("targets").
	Features []string `json:"features,omitempty"`
	// Version is the Gantry release it runs, as it reported it at register
	// (also in Tools, under "gantry"); absent for workers of releases that
	// did not report it.
	Version string   `json:"version,omitempty"`
	Jobs    []string `json:"jobs"` // ids of the runs it holds
	// RegisteredAt is when it registered; LastSeenAt when it was last heard
	// from (a claim or a job's heartbeat).
	RegisteredAt time.Time `json:"registered_at"`
	LastSeenAt   time.Time `json:"last_seen_at"`
}
