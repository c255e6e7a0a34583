package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decision holds the rules Gantry reads from one evaluation (decoded per
// policy type; rules of other types stay zero), or, from Combine, the
// outcome of every policy of one type.
//
// Per evaluation the fields are the rules' values as written; Combine
// applies Spacelift's precedence (a deny/reject/ignore anywhere wins).
type Decision struct {
	// PLAN: `deny` and `warn`, sets of messages.
	Deny, Warn []string

	// APPROVAL: booleans `approve` and `reject`; `approve_with_note` and
	// `reject_with_note` are sets of notes, and a note counts as an
	// approval (rejection) too.
	Approve, Reject           bool
	ApproveNotes, RejectNotes []string

	// TRIGGER: `trigger`, the set of stack ids to trigger.
	Trigger []string

	// GIT_PUSH: booleans `track`, `propose`, `ignore`, `ignore_track`,
	// `notrigger`, `fail` (fail the commit status of an ignored push),
	// `notify` (send a commit status for an ignored push) and `prioritize`;
	// `cancel`, the set of in-progress run ids to cancel; `message`, a
	// string or set of strings for the commit status of an ignored push
	// (Message joins a set with newlines, sorted). PushAction tells the
	// outcome.
	Track, Propose, Ignore, IgnoreTrack, NoTrigger bool
	Notify, Prioritize                             bool
	Cancel                                         []string
	Message                                        string
	Fail                                           bool

	// NOTIFICATION: sets of objects `webhook` ({endpoint_id, payload,
	// method, headers}), `slack` ({channel_id, message, mention_users,
	// mention_groups, thread_key}), `teams` ({channel_id, title, message}),
	// `email` ({endpoint_id, subject, body, to}), `inbox` ({title, body,
	// severity}) and `pull_request` ({id, commit, branch, body,
	// deduplication_key}).
	Webhook, Slack, Teams, Email, Inbox, PullRequest []map[string]any

	// LOGIN: booleans `allow`, `admin`, `deny` (DenyLogin) and `deny_admin`;
	// `team`, the set of team names replacing the session's when not empty;
	// `roles[space_id][role_slug]` (Roles: space id -> sorted role slugs);
	// `space_read`, `space_write`, `space_admin`, sets of space ids.
	Allow, Admin, DenyLogin, DenyAdmin bool
	Team                               []string
	Roles                              map[string][]string
	SpaceRead, SpaceWrite, SpaceAdmin  []string

	// Every type: `flag` and `reset_flag`, sets of flags; `sample`, a
	// boolean asking to record the evaluation.
	Flags, ResetFlags []string
	Sample            bool
}

// Outcomes of a git push (Decision.PushAction).
const (
	PushTrack   = "track"
	PushPropose = "propose"
	PushIgnore  = "ignore"
)

// PushAction is what a (combined) GIT_PUSH decision asks for: ignore when
// any policy ignores or none tracks or proposes; track when tracked and
// not overridden by ignore_track; else propose (ignore_track turns a
// tracked run into a proposed one).
func (d Decision) PushAction() string {
	switch {
	case d.Ignore || (!d.Track && !d.Propose):
		return PushIgnore
	case d.Track && !d.IgnoreTrack:
		return PushTrack
	default:
		return PushPropose
	}
}

// decode reads the rules of typ from the package value obj, checking each
// has the expected shape.
func decode(typ string, obj ast.Object) (Decision, error) {
	var d Decision
	var errs []string
	obj.Foreach(func(k, v *ast.Term) {
		name, ok := k.Value.(ast.String)
		if !ok {
			return
		}
		want, read := ruleShape(typ, string(name))
		if !read {
			return
		}
		if err := d.set(string(name), want, v.Value); err != nil {
			errs = append(errs, err.Error())
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return Decision{}, fmt.Errorf("wrong rule value in %s policy: %s", typ, strings.Join(errs, "; "))
	}
	return d, nil
}

// set stores the value of rule name, of shape want, in d.
func (d *Decision) set(name string, want shape, v ast.Value) error {
	switch want {
	case shapeBool:
		b, ok := v.(ast.Boolean)
		if !ok {
			return fmt.Errorf("rule %s must be a boolean, but its value is %s", name, ast.ValueName(v))
		}
		*d.boolField(name) = bool(b)
	case shapeStrings:
		s, err := sortedStrings(name, v)
		if err != nil {
			return err
		}
		*d.stringsField(name) = s
	case shapeStringOrSet:
		if s, ok := v.(ast.String); ok {
			d.Message = string(s)
			return nil
		}
		s, err := sortedStrings(name, v)
		if err != nil {
			return err
		}
		d.Message = strings.Join(s, "\n")
	case shapeObjects:
		objs, err := objectsOf(name, v)
		if err != nil {
			return err
		}
		*d.objectsField(name) = objs
	case shapeRoles:
		roles, err := rolesOf(name, v)
		if err != nil {
			return err
		}
		d.Roles = roles
	}
	return nil
}

func (d *Decision) boolField(name string) *bool {
	switch name {
	case "approve":
		return &d.Approve
	case "reject":
		return &d.Reject
	case "track":
		return &d.Track
	case "propose":
		return &d.Propose
	case "ignore":
		return &d.Ignore
	case "ignore_track":
		return &d.IgnoreTrack
	case "notrigger":
		return &d.NoTrigger
	case "notify":
		return &d.Notify
	case "prioritize":
		return &d.Prioritize
	case "fail":
		return &d.Fail
	case "allow":
		return &d.Allow
	case "admin":
		return &d.Admin
	case "deny":
		return &d.DenyLogin
	case "deny_admin":
		return &d.DenyAdmin
	case "sample":
		return &d.Sample
	}
	panic("engine: no boolean field for rule " + name)
}

func (d *Decision) stringsField(name string) *[]string {
	switch name {
	case "deny":
		return &d.Deny
	case "warn":
		return &d.Warn
	case "approve_with_note":
		return &d.ApproveNotes
	case "reject_with_note":
		return &d.RejectNotes
	case "trigger":
		return &d.Trigger
	case "cancel":
		return &d.Cancel
	case "team":
		return &d.Team
	case "space_read":
		return &d.SpaceRead
	case "space_write":
		return &d.SpaceWrite
	case "space_admin":
		return &d.SpaceAdmin
	case "flag":
		return &d.Flags
	case "reset_flag":
		return &d.ResetFlags
	}
	panic("engine: no string set field for rule " + name)
}

func (d *Decision) objectsField(name string) *[]map[string]any {
	switch name {
	case "webhook":
		return &d.Webhook
	case "slack":
		return &d.Slack
	case "teams":
		return &d.Teams
	case "email":
		return &d.Email
	case "inbox":
		return &d.Inbox
	case "pull_request":
		return &d.PullRequest
	}
	panic("engine: no object set field for rule " + name)
}

// objectsOf returns the objects of a set (or array) value.
func objectsOf(rule string, v ast.Value) ([]map[string]any, error) {
	var elems []*ast.Term
	switch v := v.(type) {
	case ast.Set:
		v.Sorted().Foreach(func(t *ast.Term) { elems = append(elems, t) })
	case *ast.Array:
		v.Foreach(func(t *ast.Term) { elems = append(elems, t) })
	default:
		return nil, fmt.Errorf("rule %s must be a set of objects, but its value is %s", rule, ast.ValueName(v))
	}
	out := make([]map[string]any, 0, len(elems))
	for _, t := range elems {
		o, ok := t.Value.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("rule %s must be a set of objects, but it holds %s %s", rule, ast.ValueName(t.Value), t)
		}
		out = append(out, toGo(o).(map[string]any))
	}
	return out, nil
}

// rolesOf reads `roles[space][role]`: an object of space ids whose values
// are objects (role -> true), sets or arrays of role ids.
func rolesOf(rule string, v ast.Value) (map[string][]string, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("rule %s must be an object of space ids to role ids, but its value is %s", rule, ast.ValueName(v))
	}
	out := map[string][]string{}
	var err error
	obj.Foreach(func(k, val *ast.Term) {
		space, ok := k.Value.(ast.String)
		if !ok || err != nil {
			if !ok && err == nil {
				err = fmt.Errorf("rule %s: space id %s is not a string", rule, k)
			}
			return
		}
		var roles []string
		switch r := val.Value.(type) {
		case ast.Object:
			r.Foreach(func(rk, rv *ast.Term) {
				s, isStr := rk.Value.(ast.String)
				if b, isBool := rv.Value.(ast.Boolean); isStr && (!isBool || bool(b)) {
					roles = append(roles, string(s))
				}
			})
			sort.Strings(roles)
		default:
			roles, err = sortedStrings(rule+"["+string(space)+"]", r)
		}
		out[string(space)] = roles
	})
	return out, err
}

// Combine merges the decisions of every policy of type typ evaluated for
// one subject, as Spacelift does: sets are unioned (sorted, without
// duplicates); a deny, reject or ignore anywhere wins; APPROVAL approves
// only when every policy approves (an approving note counts) and none
// rejects; LOGIN allows when some policy allows or grants admin and none
// denies, and grants admin when some policy does and none denies login or
// admin. With no decisions, APPROVAL does not approve and LOGIN denies.
func Combine(typ string, ds []Decision) Decision {
	var out Decision
	for _, d := range ds {
		out.Deny = append(out.Deny, d.Deny...)
		out.Warn = append(out.Warn, d.Warn...)
		out.ApproveNotes = append(out.ApproveNotes, d.ApproveNotes...)
		out.RejectNotes = append(out.RejectNotes, d.RejectNotes...)
		out.Trigger = append(out.Trigger, d.Trigger...)
		out.Cancel = append(out.Cancel, d.Cancel...)
		out.Team = append(out.Team, d.Team...)
		out.SpaceRead = append(out.SpaceRead, d.SpaceRead...)
		out.SpaceWrite = append(out.SpaceWrite, d.SpaceWrite...)
		out.SpaceAdmin = append(out.SpaceAdmin, d.SpaceAdmin...)
		out.Flags = append(out.Flags, d.Flags...)
		out.ResetFlags = append(out.ResetFlags, d.ResetFlags...)
		out.Webhook = append(out.Webhook, d.Webhook...)
		out.Slack = append(out.Slack, d.Slack...)
		out.Teams = append(out.Teams, d.Teams...)
		out.Email = append(out.Email, d.Email...)
		out.Inbox = append(out.Inbox, d.Inbox...)
		out.PullRequest = append(out.PullRequest, d.PullRequest...)
		out.Roles = mergeRoles(out.Roles, d.Roles)
		if d.Message != "" {
			out.Message = joinLine(out.Message, d.Message)
		}
		out.Reject = out.Reject || d.Reject || len(d.RejectNotes) > 0
		out.Track, out.Propose = out.Track || d.Track, out.Propose || d.Propose
		out.Ignore, out.IgnoreTrack = out.Ignore || d.Ignore, out.IgnoreTrack || d.IgnoreTrack
		out.NoTrigger, out.Notify = out.NoTrigger || d.NoTrigger, out.Notify || d.Notify
		out.Prioritize, out.Fail = out.Prioritize || d.Prioritize, out.Fail || d.Fail
		out.Allow, out.Admin = out.Allow || d.Allow, out.Admin || d.Admin
		out.DenyLogin, out.DenyAdmin = out.DenyLogin || d.DenyLogin, out.DenyAdmin || d.DenyAdmin
		out.Sample = out.Sample || d.Sample
	}
	out.Approve = len(ds) > 0 && !out.Reject
	for _, d := range ds {
		out.Approve = out.Approve && (d.Approve || len(d.ApproveNotes) > 0)
	}
	if out.Ignore {
		out.Track, out.Propose = false, false
	}
	out.Allow = (out.Allow || out.Admin) && !out.DenyLogin // an admin rule lets in, as a non-admin when deny_admin
	out.Admin = out.Admin && !out.DenyLogin && !out.DenyAdmin
	for _, p := range []*[]string{&out.Deny, &out.Warn, &out.ApproveNotes, &out.RejectNotes, &out.Trigger,
		&out.Cancel, &out.Team, &out.SpaceRead, &out.SpaceWrite, &out.SpaceAdmin, &out.Flags, &out.ResetFlags} {
		*p = uniqSorted(*p)
	}
	for _, p := range []*[]map[string]any{&out.Webhook, &out.Slack, &out.Teams, &out.Email, &out.Inbox, &out.PullRequest} {
		*p = uniqObjects(*p)
	}
	return out
}

func joinLine(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

func mergeRoles(a, b map[string][]string) map[string][]string {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = map[string][]string{}
	}
	for space, roles := range b {
		a[space] = uniqSorted(append(slices.Clone(a[space]), roles...))
	}
	return a
}

func uniqSorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// uniqObjects drops objects equal (as JSON) to an earlier one.
func uniqObjects(objs []map[string]any) []map[string]any {
	if len(objs) == 0 {
		return nil
	}
	seen := map[string]bool{}
	var out []map[string]any
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err == nil && seen[string(b)] {
			continue
		}
		seen[string(b)] = true
		out = append(out, maps.Clone(o))
	}
	return out
}
