package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// The inputs follow Spacelift's policy input shapes
// (../shared/reference/spacelift-policy-inputs): snake_case keys, times in
// Unix nanoseconds, upper-case enums.

type obj = map[string]any

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func strs(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// stackView is a stack with what its input objects need.
type stackView struct {
	stack.Stack
	space   space.Space
	state   string
	tracked *run.Run // the run of its tracked commit (nil if none)
	// applied is the tool version of its newest run that applied ("": none).
	applied string
	// contexts: the ids of the contexts that apply to it (nil: none
	// known, as for TRIGGER input's list of stacks).
	contexts []string
	visible  bool // trigger input: the stack sees a trigger policy's space
}

func (s *Service) stackView(ctx context.Context, stackID string) (stackView, error) {
	st, err := s.stacks.Get(ctx, stackID)
	if err != nil {
		return stackView{}, err
	}
	sp, err := s.spaces.Get(ctx, st.Space)
	if err != nil {
		return stackView{}, err
	}
	states, err := s.runs.StackStates(ctx, []string{st.ID})
	if err != nil {
		return stackView{}, err
	}
	v := stackView{Stack: st, space: sp, state: states[st.ID]}
	tracked, err := s.runs.TrackedCommits(ctx, []string{st.ID})
	if err != nil {
		return stackView{}, err
	}
	if r, ok := tracked[st.ID]; ok {
		v.tracked = &r
	}
	applied, err := s.runs.AppliedToolVersions(ctx, []string{st.ID})
	if err != nil {
		return stackView{}, err
	}
	v.applied = applied[st.ID]
	if s.Contexts != nil {
		if v.contexts, err = s.Contexts(ctx, st); err != nil {
			return stackView{}, err
		}
	}
	return v, nil
}

func toolName(t string) string {
	if t == stack.Terraform {
		return "TERRAFORM_FOSS"
	}
	return "OPEN_TOFU"
}

// commit is Spacelift's commit object.
type commit struct {
	sha, message, author, branch, tag string
	at                                time.Time // 0 when not known yet
	onTracked                         bool      // the branch is the stack's tracked branch
	pullRequest                       int
}

func (c commit) object() obj {
	return obj{"author": c.author, "branch": c.branch, "created_at": ns(c.at), "exist_on_tracked_branch": c.onTracked,
		"hash": c.sha, "message": c.message, "pull_request_id": c.pullRequest, "tag": c.tag, "url": ""}
}

// runCommit is the commit of r, a run of a stack tracking stackBranch.
func runCommit(r run.Run, stackBranch string) commit {
	branch := r.CommitBranch
	if branch == "" {
		branch = stackBranch
	}
	return commit{sha: r.CommitSHA, message: r.CommitMessage, author: r.CommitAuthor, branch: branch, tag: r.CommitTag,
		at: r.CommitAt, onTracked: branch == stackBranch, pullRequest: r.PullRequestID}
}

func stackObject(v stackView) obj {
	pool := obj{"id": nil, "name": nil, "public": true, "labels": []any{}}
	if v.WorkerPool != "" {
		pool = obj{"id": v.WorkerPool, "name": v.WorkerPool, "public": false, "labels": []any{}}
	}
	var tracked any
	if v.tracked != nil {
		tracked = runCommit(*v.tracked, v.Branch).object()
	}
	// As Spacelift's: the version that last applied changes, null before.
	var version any
	if v.applied != "" {
		version = v.applied
	}
	return obj{
		"id": v.ID, "name": v.Name, "labels": strs(v.Labels), "autodeploy": v.Autodeploy, "administrative": false,
		"branch": v.Branch, "namespace": "", "project_root": v.ProjectRoot, "repository": v.Repository,
		"state": v.state, "terraform_version": version, "terraform_workflow_tool": toolName(v.Tool),
		"additional_project_globs": []any{}, "contexts": strs(v.contexts), "locked_by": nil, "tracked_commit": tracked,
		"worker_pool": pool,
		"space":       obj{"id": v.space.ID, "name": v.space.Name, "labels": strs(v.space.Labels)},
	}
}

// Actor is who reviews a run or notifies a push, as session objects show
// them: its name (as auth.Principal's String: user::alice, api_key::ci),
// whether it is an admin, and its IdP groups (a user's, or those of the
// user whose own API key it is).
type Actor struct {
	Name  string
	Admin bool
	Teams []string
	// DisplayName is a user's name from single sign-on ("" if none); IP
	// the client address of the request by which it acts.
	DisplayName, IP string
	// Roles are those it holds in the space of the run it reviews (a
	// review's author_roles).
	Roles []Role
}

// Role is a role an actor holds, as a review's author_roles show it.
type Role struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// login is the name of an actor (as auth.Principal's String: the part
// after "user::" or "api_key::").
func login(actor string) string {
	if _, name, ok := strings.Cut(actor, "::"); ok {
		return name
	}
	return actor
}

// session is Spacelift's session object (creator_session, a review's
// session) of an actor (as auth.Principal's String) as it was when it
// acted: display is a user's name from single sign-on ("": the login),
// ip the client address of the request by which it acted.
func session(actor, display, ip string, admin bool, teams []string) obj {
	kind, _, ok := strings.Cut(actor, "::")
	if !ok {
		kind = ""
	}
	name := display
	if name == "" {
		name = login(actor)
	}
	return obj{"login": login(actor), "name": name, "admin": admin, "machine": kind != "user",
		"member": true, "teams": strs(nonNil(teams)), "account_name": "", "creator_ip": ip, "stack_id": ""}
}

// runObject is Spacelift's run object of r, a run of a stack tracking
// stackBranch.
func runObject(r run.Run, stackBranch string, changes []any) obj {
	if changes == nil {
		changes = []any{}
	}
	flags := r.Flags
	if flags == nil {
		flags = []string{}
	}
	c := runCommit(r, stackBranch)
	return obj{
		"id": r.ID, "type": r.Type, "state": r.State, "branch": c.branch, "commit": c.object(),
		"created_at": ns(r.CreatedAt), "updated_at": ns(r.UpdatedAt),
		"triggered_by": triggeredBy(r.TriggeredBy), "drift_detection": r.Drift, "flags": strs(flags),
		"command": r.Command, "based_on_local_workspace": false, "changes": changes,
		"creator_session": session(r.TriggeredBy, r.Creator.Name, r.Creator.IP, r.Creator.Admin, r.Creator.Teams), "user_provided_metadata": []any{},
		"runtime_config": runtimeConfigObject(nil, nil),
	}
}

// triggeredBy is a run's triggered_by as Spacelift's: null for a run a
// git push started (its record keeps push:<who notified it>), so that
// `is_null(input.run.triggered_by)` tells runs nobody started by hand.
func triggeredBy(by string) any {
	if strings.HasPrefix(by, pushTriggeredPrefix) {
		return nil
	}
	return by
}

// planChanges turns a plan's resource changes into Spacelift's run changes.
func planChanges(plan map[string]any) []any {
	rcs, _ := plan["resource_changes"].([]any)
	out := []any{}
	for _, x := range rcs {
		rc, _ := x.(map[string]any)
		ch, _ := rc["change"].(map[string]any)
		acts, _ := ch["actions"].([]any)
		action := changeAction(acts)
		if action == "" {
			continue
		}
		provider, _ := rc["provider_name"].(string)
		mode, _ := rc["mode"].(string)
		out = append(out, obj{"phase": "plan", "action": action, "moved": rc["previous_address"] != nil,
			"entity": entity(rc["address"], rc["name"], rc["type"], provider, mode)})
	}
	return out
}

// entity is Spacelift's entity of a resource change: entity_vendor
// "terraform" (as Spacelift's, for OpenTofu stacks too), entity_type
// "resource", and as data the provider and mode (managed or data) of the
// resource, never its values (they may be sensitive: read them in
// input.terraform, which is sanitized).
func entity(address, name, typ any, provider, mode string) obj {
	return obj{"address": address, "name": name, "type": typ, "entity_vendor": "terraform", "entity_type": "resource",
		"data": obj{"provider_name": provider, "mode": mode}}
}

func changeAction(acts []any) string {
	var a []string
	for _, x := range acts {
		s, _ := x.(string)
		a = append(a, s)
	}
	switch strings.Join(a, ",") {
	case "create":
		return "added"
	case "update":
		return "changed"
	case "delete":
		return "deleted"
	case "delete,create", "create,delete":
		return "replaced"
	}
	return ""
}

// maxRunChanges bounds run.changes where an input lists the changes of a
// run whose plan it does not otherwise read (trigger input, previous_run):
// the plan's first maxRunChanges resource changes.
const maxRunChanges = 10000

// runChanges lists the resource changes of r's plan as planChanges does,
// reading of the plan JSON only what it needs. A run whose plan counted no
// change (or that made no plan) is not read at all.
func (s *Service) runChanges(ctx context.Context, r run.Run) ([]any, error) {
	if !r.HasDelta || r.Delta == (run.Delta{}) {
		return []any{}, nil
	}
	data, err := s.runs.Artifact(ctx, r.ID, run.ArtifactPlanJSON)
	if errs.Is(err, errs.NotFound) {
		return []any{}, nil
	}
	if err != nil {
		return nil, err
	}
	var plan struct {
		ResourceChanges []struct {
			Address         string          `json:"address"`
			Name            string          `json:"name"`
			Type            string          `json:"type"`
			ProviderName    string          `json:"provider_name"`
			Mode            string          `json:"mode"`
			PreviousAddress json.RawMessage `json:"previous_address"`
			Change          struct {
				Actions []any `json:"actions"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal(data, &plan); err != nil {
		return []any{}, nil // a plan that does not parse leaves the changes empty
	}
	out := []any{}
	for _, rc := range plan.ResourceChanges {
		action := changeAction(rc.Change.Actions)
		if action == "" {
			continue
		}
		if len(out) == maxRunChanges {
			break
		}
		moved := len(rc.PreviousAddress) > 0 && string(rc.PreviousAddress) != "null"
		out = append(out, obj{"phase": "plan", "action": action, "moved": moved,
			"entity": entity(rc.Address, rc.Name, rc.Type, rc.ProviderName, rc.Mode)})
	}
	return out, nil
}

// loadPlan returns the run's plan JSON, decoded (nil if it has none).
func (s *Service) loadPlan(ctx context.Context, runID string) (map[string]any, error) {
	data, err := s.runs.Artifact(ctx, runID, run.ArtifactPlanJSON)
	if errs.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var plan map[string]any
	dec := json.NewDecoder(bytes.NewReader(data)) // not a string: a second copy of the plan
	dec.UseNumber()
	if err := dec.Decode(&plan); err != nil {
		return nil, errs.E(errs.Invalid, "the run's plan JSON does not parse: %v", err)
	}
	return plan, nil
}

// history is a run's timeline as Spacelift's states_history.
func (s *Service) history(ctx context.Context, runID string) ([]any, error) {
	ts, err := s.runs.Transitions(ctx, runID)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(ts))
	for _, t := range ts {
		out = append(out, obj{"state": t.To, "note": t.Reason, "timestamp": ns(t.At), "actor": t.Actor})
	}
	return out, nil
}

// request is a PLAN input's request: the address of the request that
// created the run (as its creator_session's creator_ip; "" for runs Gantry
// starts itself) and the time of the evaluation.
func request(remoteIP string, at time.Time) obj {
	return obj{"remote_ip": remoteIP, "timestamp_ns": ns(at)}
}
