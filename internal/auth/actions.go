package auth

import "slices"

// Actions checked by Authorize: `area:verb`, with Spacelift's names where
// it has one. Each API route checks exactly one of them (see the route
// table in package api); Catalog describes each.
const (
	SpaceRead     = "space:read"
	SpaceWrite    = "space:write"
	SpaceAdmin    = "space:admin"
	StackCreate   = "stack:create"
	StackUpdate   = "stack:update"
	StackDelete   = "stack:delete"
	StackLock     = "stack:lock"
	StackUnlock   = "stack:unlock"
	StateRead     = "stack:state-read"
	StateDownload = "stack:state-download"
	StateWrite    = "stack:state-write"
	StateRollback = "stack:managed-state-rollback"
	RunTrigger    = "run:trigger"
	RunConfirm    = "run:confirm"
	RunDiscard    = "run:discard"
	RunCancel     = "run:cancel"
	RunStop       = "run:stop"
	RunReview     = "run:review"
	RunRetry      = "run:retry"
	TaskCreate    = "task:create"

	ContextCreate = "context:create"
	ContextUpdate = "context:update"
	ContextDelete = "context:delete"
	PolicyCreate  = "policy:create"
	PolicyUpdate  = "policy:update"
	PolicyDelete  = "policy:delete"

	IntegrationCreate = "integration:create"
	IntegrationUpdate = "integration:update"
	IntegrationDelete = "integration:delete"
	IntegrationAttach = "integration:attach"

	WorkerPoolCreate = "worker-pool:create"
	WorkerPoolUpdate = "worker-pool:update"
	WorkerPoolDelete = "worker-pool:delete"

	RoleManage   = "role:manage"
	AuditRead    = "audit:read"
	AuditManage  = "audit:manage"
	APIKeyManage = "apikey:manage"
)

// Action is one entry of the catalog.
type Action struct {
	Name  string `json:"name"`
	Allow string `json:"allows"`
	// Root: checked in the root space only (account-wide objects).
	Root bool `json:"root_only,omitempty"`
}

// Catalog lists every action, with what it allows.
var Catalog = []Action{
	{SpaceRead, "see the space and everything in it: stacks, runs, logs, plans, outputs, contexts (secret values never), policies, worker pools, webhooks, role bindings", false},
	{SpaceWrite, "change the space's own settings (name, description, labels, inherit)", false},
	{SpaceAdmin, "create child spaces, delete the space", false},
	{StackCreate, "create stacks in the space (and move a stack into it)", false},
	{StackUpdate, "change a stack's settings and environment, attach or detach contexts and policies", false},
	{StackDelete, "delete stacks", false},
	{StackLock, "take a stack's state lock from outside a run (local OpenTofu against the managed backend)", false},
	{StackUnlock, "release a stack's state lock from outside a run", false},
	{StateRead, "list a stack's state versions (serial, lineage, checksum, who wrote it)", false},
	{StateDownload, "download a stack's state (its contents hold resource attributes) and read runs' whole plan JSON (redacted without it)", false},
	{StateWrite, "write a stack's state from outside a run (local OpenTofu against the managed backend)", false},
	{StateRollback, "roll a stack's managed state back to an earlier version", false},
	{RunTrigger, "trigger tracked and proposed runs, notify pushes", false},
	{RunConfirm, "confirm an unconfirmed run", false},
	{RunDiscard, "discard an unconfirmed run", false},
	{RunCancel, "cancel a run that has not started", false},
	{RunStop, "stop a run in progress", false},
	{RunReview, "approve or reject a run", false},
	{RunRetry, "retry a failed, stopped or discarded run (a new run on the same commit; also needs run:trigger, or task:create for a task)", false},
	{TaskCreate, "run a task (an arbitrary command) on a stack", false},
	{ContextCreate, "create contexts", false},
	{ContextUpdate, "change a context, its variables, files and hooks", false},
	{ContextDelete, "delete contexts", false},
	{PolicyCreate, "create policies (and import them from the library)", false},
	{PolicyUpdate, "change policies", false},
	{PolicyDelete, "delete policies", false},
	{IntegrationCreate, "create cloud integrations and notification webhooks", false},
	{IntegrationUpdate, "change cloud integrations and notification webhooks", false},
	{IntegrationDelete, "delete cloud integrations and notification webhooks", false},
	{IntegrationAttach, "attach cloud integrations to the space's stacks (their runs get the credentials)", false},
	{WorkerPoolCreate, "create worker pools", false},
	{WorkerPoolUpdate, "change, reset and re-key worker pools, drain their workers", false},
	{WorkerPoolDelete, "delete worker pools", false},
	{RoleManage, "create and delete custom roles (root space) and bind roles in the space", false},
	{AuditRead, "list, export and verify the audit trail, see audit webhooks and their deliveries", true},
	{AuditManage, "create and delete audit webhooks", true},
	{APIKeyManage, "create, list and revoke every API key (a signed-in user manages their own without it)", true},
}

// KnownAction reports whether a is in the catalog.
func KnownAction(a string) bool {
	return slices.ContainsFunc(Catalog, func(c Action) bool { return c.Name == a })
}

// Built-in role slugs (Spacelift's legacy Reader/Writer/Admin levels).
const (
	RoleReader = "space-reader"
	RoleWriter = "space-writer"
	RoleAdmin  = "space-admin"
)

var readerActions = []string{SpaceRead, StateRead}

var writerActions = append(slices.Clone(readerActions),
	RunTrigger, RunConfirm, RunDiscard, RunCancel, RunStop, RunReview, RunRetry, TaskCreate,
	StackLock, StackUnlock, StateDownload)

// adminActions: every action but those checked in the root space only
// (an admin of the root space is the account admin and has those too).
var adminActions = func() []string {
	var out []string
	for _, a := range Catalog {
		if !a.Root {
			out = append(out, a.Name)
		}
	}
	return out
}()

// Role is a named set of actions.
type Role struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Actions     []string `json:"actions"`
	BuiltIn     bool     `json:"built_in"`
	CreatedBy   string   `json:"created_by,omitempty"`
}

// BuiltInRoles are the roles every installation has.
var BuiltInRoles = []Role{
	{ID: RoleReader, Name: "Space reader", Description: "see everything in the space", Actions: readerActions, BuiltIn: true},
	{ID: RoleWriter, Name: "Space writer", Description: "reader, plus trigger, confirm, review and stop runs, run tasks, download state", Actions: writerActions, BuiltIn: true},
	{ID: RoleAdmin, Name: "Space admin", Description: "everything in the space; in the root space, the account admin", Actions: adminActions, BuiltIn: true},
}

func builtIn(id string) (Role, bool) {
	for _, r := range BuiltInRoles {
		if r.ID == id {
			return r, true
		}
	}
	return Role{}, false
}

// Authenticated marks the few routes any authenticated caller may use
// (whoami, the policy library, the role catalog): they touch no space.
const Authenticated = "authenticated"

// ActionRootOnly reports whether action is checked in the root space only.
func ActionRootOnly(action string) bool {
	for _, c := range Catalog {
		if c.Name == action {
			return c.Root
		}
	}
	return false
}

// WithoutAdminGrants returns grants (space -> role slugs, from a login
// policy) without those that make an admin, for a deny_admin rule:
// space-admin in the root space (the account admin) and, in the root
// space, any role holding an action checked only there (account-wide
// actions an admin holds: the audit trail, every API key). roles are the
// installation's roles (an unknown slug grants nothing and stays).
func WithoutAdminGrants(grants map[string][]string, roles []Role) map[string][]string {
	if len(grants[rootSpace]) == 0 {
		return grants
	}
	adminLike := func(slug string) bool {
		if slug == RoleAdmin {
			return true
		}
		for _, r := range roles {
			if r.ID == slug {
				return slices.ContainsFunc(r.Actions, ActionRootOnly)
			}
		}
		return false
	}
	out := make(map[string][]string, len(grants))
	for sp, slugs := range grants {
		if sp == rootSpace {
			slugs = slices.DeleteFunc(slices.Clone(slugs), adminLike)
			if len(slugs) == 0 {
				continue
			}
		}
		out[sp] = slugs
	}
	return out
}
