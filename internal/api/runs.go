package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/tofu"
)

func runOut(r run.Run, ts []run.Transition) apiv1.Run {
	out := apiv1.Run{ID: r.ID, Stack: r.StackID, Space: r.SpaceID, Type: r.Type, State: r.State, Blocking: r.Blocking,
		CommitSHA: r.CommitSHA, CommitMessage: r.CommitMessage, TriggeredBy: r.TriggeredBy, Command: r.Command,
		HasChanges: r.HasChanges, Reason: r.Reason, CreatedAt: utc(r.CreatedAt), UpdatedAt: utc(r.UpdatedAt),
		Flags: r.Flags, Workflow: r.WorkflowID, ReviewFrom: r.ReviewFrom, DriftDetection: r.Drift, Targets: r.Targets,
		Tool: r.Tool, ToolVersion: r.ToolVersion}
	if out.Flags == nil {
		out.Flags = []string{}
	}
	if r.HasDelta {
		out.Delta = &apiv1.Delta{Add: r.Delta.Add, Change: r.Delta.Change, Destroy: r.Delta.Destroy}
	}
	for _, t := range ts {
		out.Transitions = append(out.Transitions, apiv1.Transition{From: t.From, To: t.To, At: utc(t.At), Actor: t.Actor, Reason: t.Reason})
	}
	return out
}

func (a *API) writeRun(w http.ResponseWriter, r *http.Request, status int, rn run.Run) error {
	ts, err := a.Runs.Transitions(r.Context(), rn.ID)
	if err != nil {
		return err
	}
	out := runOut(rn, ts)
	out.WaitingFor = a.waitingFor(r.Context(), rn, map[string]string{})
	httpx.WriteJSON(w, status, out)
	return nil
}

func (a *API) createRun(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.RunTrigger)
	if err != nil {
		return err
	}
	var in struct {
		apiv1.RunCreate
		// Command is no field of RunCreate: it is read only to point a
		// caller who sends a task here to the tasks route.
		Command *string `json:"command"`
	}
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if in.Type == run.Task || in.Command != nil {
		return errs.E(errs.Invalid, "tasks (runs of a command) are created with POST /api/v1/stacks/{id}/tasks (action task:create)")
	}
	return a.startRun(w, r, p, st, run.New{StackID: st.ID, Type: in.Type, CommitSHA: in.SHA})
}

// createTask runs a command on a stack (a TASK run).
func (a *API) createTask(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	st, err := a.stack(r, p, auth.TaskCreate)
	if err != nil {
		return err
	}
	var in apiv1.TaskCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	return a.startRun(w, r, p, st, run.New{StackID: st.ID, Type: run.Task, CommitSHA: in.SHA, Command: in.Command})
}

// retryRun starts a new run like a failed, stopped, canceled or discarded
// one: same stack, type, commit and command. Retrying is a convenience,
// not a right of its own: it also takes what starting that run afresh
// would (task:create for a task, whose command it runs again; run:trigger
// for the others).
func (a *API) retryRun(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	old, err := a.run(r, p, auth.RunRetry)
	if err != nil {
		return err
	}
	starts := auth.RunTrigger
	if old.Type == run.Task {
		starts = auth.TaskCreate
	}
	if err := auth.Authorize(p, starts, old.SpaceID); err != nil {
		return err
	}
	switch old.State {
	case run.Failed, run.Stopped, run.Canceled, run.Discarded:
	default:
		return errs.E(errs.Conflict, "run %s is %s: only failed, stopped, canceled or discarded runs can be retried", old.ID, old.State)
	}
	st, err := a.Stacks.Get(r.Context(), old.StackID)
	if err != nil {
		return err
	}
	return a.startRun(w, r, p, st, run.New{StackID: st.ID, Type: old.Type, CommitSHA: old.CommitSHA, Command: old.Command,
		Drift: old.Drift, Targets: old.Targets})
}

// pinDelay is how long a new run without a commit may wait for a worker
// before the server asks the remote for the branch's head itself.
const pinDelay = 100 * time.Millisecond

// startRun creates a run triggered by p and answers 201 with it.
func (a *API) startRun(w http.ResponseWriter, r *http.Request, p auth.Principal, st stack.Stack, in run.New) error {
	if in.CommitSHA != "" && !git.ValidSHA(in.CommitSHA) {
		return errs.E(errs.Invalid, "sha %q is not a full 40-character commit SHA", in.CommitSHA)
	}
	in.TriggeredBy = p.String()
	in.Creator = creator(p, r)
	rn, err := a.Runs.Create(r.Context(), in)
	if err != nil {
		return err
	}
	if in.CommitSHA == "" && a.Head != nil {
		// Pin a run that waits for a worker to the branch's head, without
		// making the caller wait for the remote. A run claimed at once (the
		// usual case) takes the head when its worker checks out: asking
		// the remote here too would only cost a second git process, so
		// this looks first whether the run still waits. If the repository
		// cannot be reached, the worker fails the run with git's message.
		go func() {
			time.Sleep(pinDelay)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if cur, err := a.Runs.Get(ctx, rn.ID); err != nil || cur.CommitSHA != "" || (cur.State != run.Queued && cur.State != run.Ready) {
				return
			}
			repo, err := a.Stacks.CloneURL(st)
			if err != nil {
				return
			}
			if sha, err := a.Head(ctx, repo, st.Branch); err == nil {
				_ = a.Runs.PinCommit(ctx, rn.ID, sha)
			}
		}()
	}
	return a.writeRun(w, r, http.StatusCreated, rn)
}

// creator is what policies see of p as the creator of a run by request r.
func creator(p auth.Principal, r *http.Request) run.Creator {
	return run.Creator{Admin: p.Admin, Teams: p.Groups, Name: p.DisplayName, IP: sourceIP(r)}
}

// run loads a run and checks that p may do action in its space.
func (a *API) run(r *http.Request, p auth.Principal, action string) (run.Run, error) {
	rn, err := a.Runs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return rn, err
	}
	return rn, auth.Authorize(p, action, rn.SpaceID)
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rn, err := a.run(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	return a.writeRun(w, r, http.StatusOK, rn)
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := listScope(p, q.Get("space")); err != nil {
		return err
	}
	list, next, err := fillPage(limit, cursor, func(cursor string, limit int) ([]run.Run, string, error) {
		return a.Runs.List(r.Context(), run.Filter{Stack: q.Get("stack"), Space: q.Get("space"), State: q.Get("state"), Type: q.Get("type"), Cursor: cursor, Limit: limit})
	}, func(rn run.Run) bool { return readable(p, rn.SpaceID) }, func(rn run.Run) string { return rn.ID })
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Run]{Items: []apiv1.Run{}, NextCursor: nextCursor(r, next)}
	reasons := map[string]string{} // by pool, for this page
	for _, rn := range list {
		ro := runOut(rn, nil)
		ro.WaitingFor = a.waitingFor(r.Context(), rn, reasons)
		out.Items = append(out.Items, ro)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) runAction(action string, fn func(ctx context.Context, runID, actor string) (run.Run, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		if _, err := a.run(r, p, action); err != nil {
			return err
		}
		rn, err := fn(r.Context(), r.PathValue("id"), p.String())
		if err != nil {
			return err
		}
		return a.writeRun(w, r, http.StatusOK, rn)
	}
}

func (a *API) runLogs(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rn, err := a.run(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var offset int64
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.ParseInt(v, 10, 64); err != nil || offset < 0 {
			return errs.E(errs.Invalid, "offset must be a non-negative integer")
		}
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 0 || secs > 60 {
			return errs.E(errs.Invalid, "wait must be a number of seconds from 0 to 60")
		}
		wait = time.Duration(secs) * time.Second
	}
	data, done, waited, err := a.Runs.ReadRunLog(r.Context(), rn, offset, 1<<20, wait)
	if err == nil && waited && (len(data) > 0 || done) {
		// What comes after a wait is sent only if the caller may still
		// read it: its key or session may have been revoked, its roles
		// taken, the stack moved, while it waited (checked once per answer
		// after a wait, never per wake-up, nor on an answer given at once).
		err = a.stillMay(r, auth.SpaceRead)
	}
	if err != nil {
		return err
	}
	// Data is a JSON string: a character the page's end cuts in two starts
	// the next page instead of becoming two U+FFFD. A page that is only
	// such a piece waits for the rest while the run goes on, and is sent as
	// it is once the run has ended (bytes that are not UTF-8 at all).
	if end := wholeCharacters(data); end > 0 || !run.Terminal(rn.State) {
		data = data[:end]
	}
	httpx.WriteJSON(w, http.StatusOK, apiv1.LogChunk{Offset: offset, NextOffset: offset + int64(len(data)), Data: string(data), Done: done})
	return nil
}

// wholeCharacters returns the length of data without the start of a
// UTF-8 character that data ends before its last byte.
func wholeCharacters(data []byte) int {
	for i := len(data) - 1; i >= 0 && i > len(data)-utf8.UTFMax; i-- {
		if utf8.RuneStart(data[i]) {
			if !utf8.FullRune(data[i:]) {
				return i
			}
			break
		}
	}
	return len(data)
}

// stillMay checks again, at the end of a long poll, that the caller of r
// may do action on the run of the route: its credentials are
// authenticated anew and its permissions resolved anew.
func (a *API) stillMay(r *http.Request, action string) error {
	p, err := a.authenticate(r)
	if err != nil {
		return err
	}
	_, err = a.run(r, p, action)
	return err
}

func (a *API) runPlan(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rn, err := a.run(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	// The plan holds the stack's state (prior_state) and the values
	// OpenTofu marks sensitive: whole only for who may download the state.
	redacted := auth.Authorize(p, auth.StateDownload, rn.SpaceID) != nil
	size, err := a.Runs.ArtifactSize(r.Context(), rn.ID, run.ArtifactPlanJSON)
	if err != nil {
		return err
	}
	weight := int64(holdCopies)
	if redacted {
		weight = holdRedacted // the plan decoded, redacted and encoded again
	}
	release, err := a.hold(r, p, weight*size)
	if err != nil {
		return err
	}
	defer release()
	data, err := a.Runs.Artifact(r.Context(), rn.ID, run.ArtifactPlanJSON)
	if err != nil {
		return err
	}
	if redacted {
		if data, err = tofu.RedactPlan(data); err != nil {
			return err
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Gantry-Plan-Redacted", strconv.FormatBool(redacted))
	_, err = w.Write(data)
	return err
}

// waitingFor tells why a run that waits for a worker (READY, or CONFIRMED
// for its apply) may wait long: its pool has no connected worker, or none
// of its connected workers has a feature the run needs (workers of an
// older release: a targeted run needs "targets"), which the claim requires.
// reasons caches the answer per pool and features needed.
func (a *API) waitingFor(ctx context.Context, rn run.Run, reasons map[string]string) string {
	if a.Pools == nil || (rn.State != run.Ready && rn.State != run.Confirmed && rn.State != run.Queued) {
		return ""
	}
	needs := rn.Needs()
	key := rn.Pool + "\x00" + strings.Join(needs, ",")
	if why, ok := reasons[key]; ok {
		return why
	}
	why := ""
	// This server's built-in workers are of its own release: they have
	// every feature.
	if rn.Pool == "" && a.BuiltinWorkers > 0 {
		reasons[key] = why
		return why
	}
	n, err := a.Pools.Connected(ctx, rn.Pool)
	switch {
	case err != nil:
	case n == 0 && rn.Pool == "":
		why = "no built-in worker is running (the server runs with --builtin-workers 0?) and the stack names no worker pool"
	case n == 0:
		why = "no worker in pool " + rn.Pool
	case len(needs) > 0:
		if m, err := a.Pools.Connected(ctx, rn.Pool, needs...); err == nil && m == 0 {
			why = lacking(rn.Pool, needs)
		}
	}
	reasons[key] = why
	return why
}

// featureUses names what each worker feature is for, in waiting_for.
var featureUses = map[string]string{run.FeatureTargets: "targeted runs"}

// lacking tells that no connected worker of pool has the features needs.
func lacking(pool string, needs []string) string {
	var uses []string
	for _, f := range needs {
		if u := featureUses[f]; u != "" && !slices.Contains(uses, u) {
			uses = append(uses, u)
		}
	}
	what := strings.Join(uses, " and ")
	if what == "" {
		what = "this run"
	}
	if pool == "" {
		return fmt.Sprintf("no built-in worker supports %s (features: %s): the servers running them are of an older release; upgrade them",
			what, strings.Join(needs, ", "))
	}
	return fmt.Sprintf("no worker in pool %s supports %s (features: %s); upgrade the pool's workers", pool, what, strings.Join(needs, ", "))
}
