// Package run keeps runs and drives their lifecycle (../shared/design/RUNS.md):
// creation, the per-stack queue, claims by workers, the reports workers make
// as a job goes on, the actions of people (confirm, discard, cancel, stop),
// logs and artifacts.
package run

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/labels"
	"github.com/gantry-iac/gantry/internal/secrets"
)

// Types.
const (
	Tracked  = "TRACKED"
	Proposed = "PROPOSED"
	Destroy  = "DESTROY"
	Task     = "TASK"
)

// States.
const (
	Queued        = "QUEUED"
	Ready         = "READY"
	Preparing     = "PREPARING"
	Initializing  = "INITIALIZING"
	Planning      = "PLANNING"
	Performing    = "PERFORMING"
	Unconfirmed   = "UNCONFIRMED"
	Confirmed     = "CONFIRMED"
	Applying      = "APPLYING"
	Finished      = "FINISHED"
	Failed        = "FAILED"
	Discarded     = "DISCARDED"
	Canceled      = "CANCELED"
	Stopped       = "STOPPED"
	PendingReview = "PENDING_REVIEW"
)

// Types and States list the run types and states, for validating filters.
var (
	Types  = []string{Tracked, Proposed, Destroy, Task}
	States = []string{Queued, Ready, Preparing, Initializing, Planning, Performing, Unconfirmed, Confirmed, Applying,
		Finished, Failed, Discarded, Canceled, Stopped, PendingReview}
)

// TerminalSQL lists the terminal states for SQL IN clauses.
const TerminalSQL = `('FINISHED','FAILED','DISCARDED','CANCELED','STOPPED')`

// workingStates are the states in which a worker holds the run.
var workingStates = []string{Preparing, Initializing, Planning, Performing, Applying}

// Terminal reports whether a run in state s never changes again.
func Terminal(s string) bool {
	switch s {
	case Finished, Failed, Discarded, Canceled, Stopped:
		return true
	}
	return false
}

// Delta counts a plan's resource changes.
type Delta struct{ Add, Change, Destroy int }

// MaxDeltaCount bounds each count of a plan: far more resources than one
// configuration manages.
const MaxDeltaCount = 10_000_000

// validate refuses counts no plan has.
func (d Delta) validate() error {
	for _, c := range []struct {
		name string
		n    int
	}{{"add", d.Add}, {"change", d.Change}, {"destroy", d.Destroy}} {
		if c.n < 0 || c.n > MaxDeltaCount {
			return errs.E(errs.Invalid, "%s must be a count of resources from 0 to %d, got %d", c.name, MaxDeltaCount, c.n)
		}
	}
	return nil
}

// Run is one execution on a stack.
type Run struct {
	ID            string
	StackID       string
	SpaceID       string
	Pool          string
	Type          string
	State         string
	Blocking      bool
	Drift         bool
	CommitSHA     string
	CommitMessage string
	// CommitBranch is the branch the run was asked on: a push's, else the
	// stack's tracked branch when the run was created.
	CommitBranch  string
	CommitAuthor  string    // a push's author, else git's (once checked out)
	CommitAt      time.Time // committer date, once a worker checked it out
	CommitTag     string    // the tag a push named
	PullRequestID int       // the pull request a push named
	TriggeredBy   string
	Command       string
	HasDelta      bool
	Delta         Delta
	HasChanges    bool
	Reason        string
	StopRequested string // who asked to stop the run, while its worker stops it
	WorkerID      string
	HeartbeatAt   time.Time
	LogSize       int64    // what is stored of its log (Gantry's notes included)
	Flags         []string // set by policies (flag / reset_flag), carried across policy types
	WorkflowID    string   // the first run of the trigger chain this run belongs to ("" if none)
	ReviewFrom    string   // while PENDING_REVIEW: the state an approval returns it to
	Targets       []string // resource addresses the plan is limited to (-target)
	Creator       Creator  // who created it, as policies see them
	// Tool is the tool its plan job ran with ("" before one was claimed),
	// ToolVersion the version that made its plan (its plan JSON's
	// terraform_version, "" before): an apply job after a confirmation
	// uses them.
	Tool        string
	ToolVersion string
	// LogReceived is where the log's next append from a worker starts:
	// what workers sent, stored or not; LogDropped is how much of it was
	// not stored, past the log limit.
	LogReceived int64
	LogDropped  int64
	// Notes is not stored: what policies said at the step that returned
	// this run, for the worker to write into the run's log.
	Notes     []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Creator is what policies see of who created a run (Spacelift's
// creator_session) as it was then: whether the principal was an admin, its
// IdP groups, a user's display name from single sign-on, and the client
// address of the request that created the run ("" for runs Gantry starts
// itself). Its login is the run's TriggeredBy.
type Creator struct {
	Admin bool
	Teams []string
	Name  string
	IP    string
}

// Transition is one entry of a run's timeline.
type Transition struct {
	Seq    int
	From   string
	To     string
	At     time.Time
	Actor  string
	Reason string
	// LogOffset is where the state begins in the stored log (bytes); -1
	// when unknown (reported by a worker that did not say, or recorded
	// before Gantry kept it).
	LogOffset int64
}

// Service keeps runs.
type Service struct {
	db  *db.DB
	hub *events.Hub
	box *secrets.Box
	log *slog.Logger
	// OnTerminal, if set, runs inside the transaction that makes a run
	// terminal (the state backend releases the run's locks there).
	OnTerminal func(ctx context.Context, r Run) error
	// OnPlanEnd, if set, runs inside the transaction that takes a run out
	// of PLANNING to a state that is not terminal (UNCONFIRMED at the
	// hand-off, CONFIRMED and APPLYING by autodeploy): the state backend
	// releases the locks the run took while planning there.
	OnPlanEnd func(ctx context.Context, r Run) error
	// Policies, if set, is consulted at the decision points of RUNS.md.
	Policies Policies
	// Audit, if set, records the actions of people on runs (trigger,
	// confirm, discard, cancel, stop) in their transaction.
	Audit Auditor
	// StateSaved, if set, returns the serial of the last state version a
	// run saved on its stack (saved false: none), so that failing a lost
	// apply says what of its state is kept.
	StateSaved func(ctx context.Context, stackID, runID string) (serial int64, saved bool, err error)
	// LogLimit is how much of a run's log is stored (0: DefaultLogLimit):
	// past it, output is dropped, with a note (see AppendLog).
	LogLimit int64
	// OnLogWait, when set (tests), is called each time a log read starts
	// to wait for output.
	OnLogWait func()

	reports keyedLocks // a run's plan reports, one at a time on this server
}

// NewService returns a run service.
func NewService(d *db.DB, hub *events.Hub, box *secrets.Box, log *slog.Logger) *Service {
	return &Service{db: d, hub: hub, box: box, log: log}
}

// PoolKey is the events key woken when a run of the pool may be claimable.
func PoolKey(pool string) string { return "pool:" + pool }

// Key is the events key woken when a run changes.
func Key(runID string) string { return "run:" + runID }

// LogKey is the events key woken when a run's log grows.
func LogKey(runID string) string { return "log:" + runID }

const cols = `r.id, r.stack_id, s.space_id, s.worker_pool, r.type, r.state, r.blocking, r.drift, r.commit_sha, r.commit_message,
	r.commit_branch, r.commit_author, r.commit_at, r.commit_tag, r.pull_request_id,
	r.triggered_by, r.command, r.has_delta, r.delta_add, r.delta_change, r.delta_destroy, r.has_changes, r.reason,
	r.stop_requested, r.worker_id, r.heartbeat_at, r.log_size, r.log_received, r.log_dropped, r.flags, r.workflow_id, r.review_from, r.targets,
	r.creator_admin, r.creator_teams, r.creator_name, r.creator_ip, r.tool, r.tool_version, r.created_at, r.updated_at`

const from = ` FROM runs r JOIN stacks s ON s.id = r.stack_id`

// scan reads a row of cols, then any columns after them into extra.
func scan(row interface{ Scan(...any) error }, extra ...any) (Run, error) {
	var r Run
	var hb, c, u, committed int64
	var flags, targets, teams string
	err := row.Scan(append([]any{&r.ID, &r.StackID, &r.SpaceID, &r.Pool, &r.Type, &r.State, &r.Blocking, &r.Drift, &r.CommitSHA, &r.CommitMessage,
		&r.CommitBranch, &r.CommitAuthor, &committed, &r.CommitTag, &r.PullRequestID,
		&r.TriggeredBy, &r.Command, &r.HasDelta, &r.Delta.Add, &r.Delta.Change, &r.Delta.Destroy, &r.HasChanges, &r.Reason,
		&r.StopRequested, &r.WorkerID, &hb, &r.LogSize, &r.LogReceived, &r.LogDropped, &flags, &r.WorkflowID, &r.ReviewFrom, &targets,
		&r.Creator.Admin, &teams, &r.Creator.Name, &r.Creator.IP, &r.Tool, &r.ToolVersion, &c, &u}, extra...)...)
	if err == nil {
		r.Flags, err = labels.Decode(flags)
	}
	if err == nil {
		r.Targets, err = labels.Decode(targets)
	}
	if err == nil {
		r.Creator.Teams, err = labels.Decode(teams)
	}
	r.HeartbeatAt, r.CreatedAt, r.UpdatedAt = time.Unix(0, hb).UTC(), time.Unix(0, c).UTC(), time.Unix(0, u).UTC()
	r.CommitAt = db.FromNanos(committed)
	return r, err
}

// Get returns one run.
func (s *Service) Get(ctx context.Context, runID string) (Run, error) {
	r, err := scan(s.db.QueryRow(ctx, `SELECT `+cols+from+` WHERE r.id = $1`, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return r, errs.E(errs.NotFound, "run %q not found", runID)
	}
	return r, err
}

// Filter selects runs in List.
type Filter struct {
	Stack    string
	Space    string
	State    string
	Type     string
	Workflow string // runs of one trigger workflow
	Cursor   string // list runs older than this id
	Limit    int
}

// List returns a page of runs, newest first, and the next cursor.
func (s *Service) List(ctx context.Context, f Filter) ([]Run, string, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.State != "" && !slices.Contains(States, f.State) {
		return nil, "", errs.E(errs.Invalid, "state must be one of %s, got %q", strings.Join(States, ", "), f.State)
	}
	if f.Type != "" && !slices.Contains(Types, f.Type) {
		return nil, "", errs.E(errs.Invalid, "type must be one of %s, got %q", strings.Join(Types, ", "), f.Type)
	}
	if f.Cursor != "" {
		add("r.id < ?", f.Cursor)
	}
	if f.Stack != "" {
		add("r.stack_id = ?", f.Stack)
	}
	if f.Space != "" {
		add("r.space_id = ?", f.Space)
	}
	if f.State != "" {
		add("r.state = ?", f.State)
	}
	if f.Type != "" {
		add("r.type = ?", f.Type)
	}
	if f.Workflow != "" {
		add("r.workflow_id = ?", f.Workflow)
	}
	q := `SELECT ` + cols + from
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit+1)
	q += " ORDER BY r.id DESC LIMIT $" + strconv.Itoa(len(args))
	out, err := db.Collect(ctx, s.db, func(row db.Scanner) (Run, error) { return scan(row) }, q, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[f.Limit-1].ID
	}
	return out, next, nil
}

// Transitions returns the run's timeline, oldest first.
func (s *Service) Transitions(ctx context.Context, runID string) ([]Transition, error) {
	return db.Collect(ctx, s.db, func(row db.Scanner) (Transition, error) {
		var t Transition
		var at int64
		var logAt sql.NullInt64
		if err := row.Scan(&t.Seq, &t.From, &t.To, &at, &t.Actor, &t.Reason, &logAt); err != nil {
			return Transition{}, err
		}
		t.At = time.Unix(0, at).UTC()
		t.LogOffset = -1
		if logAt.Valid {
			t.LogOffset = logAt.Int64
		}
		return t, nil
	}, `SELECT seq, from_state, to_state, at, actor, reason, log_offset FROM run_transitions WHERE run_id = $1 ORDER BY seq`, runID)
}

// StackStates returns, for each given stack, the state of its newest
// blocking run ("NONE" when it never had one).
func (s *Service) StackStates(ctx context.Context, stackIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(stackIDs))
	if len(stackIDs) == 0 {
		return out, nil
	}
	in, args := db.InList(stackIDs, 0)
	for _, id := range stackIDs {
		out[id] = "NONE"
	}
	// One index seek per stack (runs_blocking), newest first.
	rows, err := s.db.Query(ctx, `SELECT s.id, (SELECT r.state FROM runs r WHERE r.stack_id = s.id AND r.blocking ORDER BY r.id DESC LIMIT 1)
		FROM stacks s WHERE s.id IN (`+in+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var state sql.NullString
		if err := rows.Scan(&st, &state); err != nil {
			return nil, err
		}
		if state.Valid {
			out[st] = state.String
		}
	}
	return out, rows.Err()
}

// AppliedToolVersions returns, per stack, the tool version of its newest
// run that applied changes (a tracked or destroy run that finished with
// changes, whose plan JSON named its version): Spacelift's stack
// terraform_version. Stacks without one are missing from the map.
func (s *Service) AppliedToolVersions(ctx context.Context, stackIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(stackIDs))
	if len(stackIDs) == 0 {
		return out, nil
	}
	in, args := db.InList(stackIDs, 0)
	// One index seek per stack (runs_applied), newest first.
	type applied struct{ stack, version string }
	rows, err := db.Collect(ctx, s.db, func(row db.Scanner) (applied, error) {
		var a applied
		return a, row.Scan(&a.stack, &a.version)
	}, `SELECT stack_id, tool_version FROM runs WHERE id IN (SELECT (SELECT t.id FROM runs t WHERE t.stack_id = st.id
			AND t.state = 'FINISHED' AND t.has_changes AND t.tool_version <> '' AND t.type IN ('TRACKED', 'DESTROY') ORDER BY t.id DESC LIMIT 1)
		FROM stacks st WHERE st.id IN (`+in+`))`, args...)
	if err != nil {
		return nil, err
	}
	for _, a := range rows {
		out[a.stack] = a.version
	}
	return out, nil
}

// TrackedCommits returns, per stack, its newest tracked run on its tracked
// branch whose commit is known (Spacelift's tracked_commit); stacks
// without one are missing from the map.
func (s *Service) TrackedCommits(ctx context.Context, stackIDs []string) (map[string]Run, error) {
	out := make(map[string]Run, len(stackIDs))
	if len(stackIDs) == 0 {
		return out, nil
	}
	in, args := db.InList(stackIDs, 0)
	// One index seek per stack (runs_tracked_commit), newest first.
	runs, err := db.Collect(ctx, s.db, func(row db.Scanner) (Run, error) { return scan(row) },
		`SELECT `+cols+from+` WHERE r.id IN (SELECT (SELECT t.id FROM runs t WHERE t.stack_id = st.id AND t.type = 'TRACKED'
			AND t.commit_sha <> '' AND t.commit_branch = st.branch ORDER BY t.id DESC LIMIT 1)
		FROM stacks st WHERE st.id IN (`+in+`))`, args...)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		out[r.StackID] = r
	}
	return out, nil
}
