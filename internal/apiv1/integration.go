package apiv1

import "time"

// Integration is a cloud integration: a space's trust in a cloud account,
// whose short-lived credentials runs of its stacks receive.
type Integration struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Space       string            `json:"space"`
	Type        string            `json:"type"`   // aws
	Config      map[string]string `json:"config"` // per type (docs/credentials.md); never secret
	Labels      []string          `json:"labels"`
	Description string            `json:"description"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// IntegrationCreate is the body of POST /integrations.
type IntegrationCreate struct {
	ID          string            `json:"id" required:"true"`
	Name        string            `json:"name,omitempty"`
	Space       string            `json:"space,omitempty"` // default root
	Type        string            `json:"type" required:"true"`
	Config      map[string]string `json:"config,omitempty"`
	Labels      []string          `json:"labels,omitempty"`
	Description string            `json:"description,omitempty"`
}

// IntegrationUpdate is the body of PATCH /integrations/{id}: the fields
// set change; config replaces the whole settings.
type IntegrationUpdate struct {
	Name        *string            `json:"name,omitempty"`
	Config      *map[string]string `json:"config,omitempty"`
	Labels      *[]string          `json:"labels,omitempty"`
	Description *string            `json:"description,omitempty"`
}

// IntegrationAttach is the body of POST /integrations/{id}/attachments.
type IntegrationAttach struct {
	Stack string `json:"stack" required:"true"`
	Read  bool   `json:"read" required:"true"`
	Write bool   `json:"write" required:"true"`
}

// IntegrationAttachment is a stack an integration applies to.
type IntegrationAttachment struct {
	Stack string `json:"stack"`
	Read  bool   `json:"read"`
	Write bool   `json:"write"`
	Via   string `json:"via"` // explicit, or the autoattach label
	// Applied is false for an attachment that runs of the stack do not
	// use, NotApplied saying why (the stack's space no longer sees the
	// integration's).
	Applied    bool   `json:"applied"`
	NotApplied string `json:"not_applied,omitempty"`
}

// OIDCSetup is what to configure on a cloud so that it trusts a stack's
// runs (GET /oidc-setup).
type OIDCSetup struct {
	Provider     string   `json:"provider"`
	Issuer       string   `json:"issuer"`
	Audience     string   `json:"audience"`
	SubjectRead  string   `json:"subject_read"`  // with run type *
	SubjectWrite string   `json:"subject_write"` // with run type *
	Subjects     []string `json:"subjects,omitempty"`
	Instructions string   `json:"instructions"` // commands and documents to paste
}
