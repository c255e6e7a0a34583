package apiv1

import "time"

// RoleAction is one action of the catalog (GET /role-actions).
type RoleAction struct {
	Name     string `json:"name"`
	Allows   string `json:"allows"`
	RootOnly bool   `json:"root_only"`
}

// Role is a named set of actions: built-in or custom.
type Role struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Actions     []string `json:"actions"`
	BuiltIn     bool     `json:"built_in"`
	CreatedBy   string   `json:"created_by,omitempty"`
}

// RoleCreate is the body of POST /roles.
type RoleCreate struct {
	ID          string   `json:"id" required:"true"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Actions     []string `json:"actions" required:"true"`
}

// RoleBinding gives an actor a role in a space and its descendants.
type RoleBinding struct {
	ID        string `json:"id"`
	Role      string `json:"role"`
	Space     string `json:"space"`
	ActorType string `json:"actor_type"` // user, api_key or group
	ActorID   string `json:"actor_id"`   // user id, API key id or group name
	// Actor names the actor as whoami, timelines and the audit trail do:
	// api_key::<name>, user::<login>, group::<name>.
	Actor     string    `json:"actor"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// RoleBindingCreate is the body of POST /role-bindings: exactly one of
// User (id or login), APIKey (id or name) and Group.
type RoleBindingCreate struct {
	Role   string `json:"role" required:"true"`
	Space  string `json:"space,omitempty"` // default root
	User   string `json:"user,omitempty"`
	APIKey string `json:"api_key,omitempty"`
	Group  string `json:"group,omitempty"`
}

// User signed in with single sign-on.
type User struct {
	ID          string              `json:"id"`
	Login       string              `json:"login"`
	Name        string              `json:"name"`
	Email       string              `json:"email"`
	Issuer      string              `json:"issuer"`
	Groups      []string            `json:"groups"`
	Grants      map[string][]string `json:"grants,omitempty"` // login policy roles per space, last login
	Admin       bool                `json:"admin"`
	CreatedAt   time.Time           `json:"created_at"`
	LastLoginAt time.Time           `json:"last_login_at"`
	DisabledAt  *time.Time          `json:"disabled_at,omitempty"` // disabled: cannot sign in, sessions and own keys revoked
}
