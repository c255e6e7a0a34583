package apiv1

import "time"

// ContextHooks are shell commands run around the phases of a run
// (Spacelift's phase names).
type ContextHooks struct {
	BeforeInit    []string `json:"before_init,omitempty"`
	AfterInit     []string `json:"after_init,omitempty"`
	BeforePlan    []string `json:"before_plan,omitempty"`
	AfterPlan     []string `json:"after_plan,omitempty"`
	BeforeApply   []string `json:"before_apply,omitempty"`
	AfterApply    []string `json:"after_apply,omitempty"`
	BeforeDestroy []string `json:"before_destroy,omitempty"`
	AfterDestroy  []string `json:"after_destroy,omitempty"`
	BeforePerform []string `json:"before_perform,omitempty"`
	AfterPerform  []string `json:"after_perform,omitempty"`
	AfterRun      []string `json:"after_run,omitempty"`
}

// Context is a bundle of environment variables, mounted files and hooks
// of a space, attached to stacks.
type Context struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Space       string       `json:"space"`
	Labels      []string     `json:"labels"`
	Description string       `json:"description"`
	Hooks       ContextHooks `json:"hooks"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// ContextCreate is the body of POST /contexts.
type ContextCreate struct {
	ID          string        `json:"id" required:"true"`
	Name        string        `json:"name,omitempty"`
	Space       string        `json:"space,omitempty"` // default root
	Labels      []string      `json:"labels,omitempty"`
	Description string        `json:"description,omitempty"`
	Hooks       *ContextHooks `json:"hooks,omitempty"`
}

// ContextUpdate is the body of PATCH /contexts/{id}; absent fields are
// unchanged, hooks replace all the hooks.
type ContextUpdate struct {
	Name        *string       `json:"name,omitempty"`
	Labels      *[]string     `json:"labels,omitempty"`
	Description *string       `json:"description,omitempty"`
	Hooks       *ContextHooks `json:"hooks,omitempty"`
}

// ContextEnvVar is a variable of a context; secret values are write-only.
type ContextEnvVar struct {
	Name        string `json:"name"`
	Value       string `json:"value,omitempty"`
	Secret      bool   `json:"secret"`
	Description string `json:"description,omitempty"`
	Checksum    string `json:"checksum"` // SHA-256 of the value, hex
}

// ContextEnvVarSet is the body of PUT /contexts/{id}/env/{name}.
type ContextEnvVarSet struct {
	Value       string `json:"value" required:"true"`
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}

// ContextFile is a file a context mounts into the workspace (content not
// included).
type ContextFile struct {
	Path        string `json:"path"`
	Size        int64  `json:"size"`
	Secret      bool   `json:"secret"`
	Description string `json:"description,omitempty"`
	Checksum    string `json:"checksum"` // SHA-256 of the content, hex
}

// ContextFileSet is the body of PUT /contexts/{id}/files.
type ContextFileSet struct {
	Path        string `json:"path" required:"true"`
	Content     string `json:"content" required:"true"` // base64
	Secret      bool   `json:"secret,omitempty"`
	Description string `json:"description,omitempty"`
}

// ContextHookAdd is the body of POST /contexts/{id}/hooks.
type ContextHookAdd struct {
	Phase   string `json:"phase" required:"true"`
	Command string `json:"command" required:"true"`
}

// ContextAttachment is a stack a context is attached to.
type ContextAttachment struct {
	Stack    string `json:"stack"`
	Priority int    `json:"priority"` // explicit attachments; 0 for auto-attached ones
	Via      string `json:"via"`      // explicit, or the autoattach label
	// Applied is false for an explicit attachment that runs of the stack
	// do not use, NotApplied saying why (the stack's space no longer sees
	// the context's).
	Applied    bool   `json:"applied"`
	NotApplied string `json:"not_applied,omitempty"`
}

// ContextAttach is the body of POST /contexts/{id}/attachments.
type ContextAttach struct {
	Stack    string `json:"stack" required:"true"`
	Priority int    `json:"priority,omitempty"`
}

// StackContext is a context that applies to a stack, in precedence order.
type StackContext struct {
	Context  string `json:"context"`
	Name     string `json:"name"`
	Space    string `json:"space"`
	Priority int    `json:"priority"`
	Via      string `json:"via"`
}

// EffectiveEnvVar is a variable a stack's runs get, and where it comes from.
type EffectiveEnvVar struct {
	Name     string `json:"name"`
	Value    string `json:"value,omitempty"` // absent for secrets
	Secret   bool   `json:"secret"`
	Source   string `json:"source"`            // stack or context
	Context  string `json:"context,omitempty"` // the context, for source context
	Checksum string `json:"checksum"`
}

// EffectiveFile is a file mounted into a stack's runs, and where it comes from.
type EffectiveFile struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	Secret   bool   `json:"secret"`
	Source   string `json:"source"`
	Context  string `json:"context,omitempty"`
	Checksum string `json:"checksum"`
}

// EffectiveEnv is what a stack's runs see: variables, files, hooks and the
// contexts they come from.
type EffectiveEnv struct {
	Variables []EffectiveEnvVar `json:"variables"`
	Files     []EffectiveFile   `json:"files"`
	Hooks     ContextHooks      `json:"hooks"`
	Contexts  []StackContext    `json:"contexts"`
}
