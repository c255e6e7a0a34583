package client

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// CreateContext creates a context.
func (c *Client) CreateContext(ctx context.Context, in apiv1.ContextCreate) (apiv1.Context, error) {
	var out apiv1.Context
	err := c.do(ctx, http.MethodPost, "/contexts", nil, in, &out)
	return out, err
}

// GetContext returns one context with its hooks.
func (c *Client) GetContext(ctx context.Context, id string) (apiv1.Context, error) {
	var out apiv1.Context
	err := c.do(ctx, http.MethodGet, "/contexts/"+esc(id), nil, nil, &out)
	return out, err
}

// ListContexts returns a page of contexts, only those of space when it is
// not empty.
func (c *Client) ListContexts(ctx context.Context, opts ListOptions, space string) (apiv1.List[apiv1.Context], error) {
	q := opts.values()
	setIf(q, "space", space)
	var out apiv1.List[apiv1.Context]
	err := c.do(ctx, http.MethodGet, "/contexts", q, nil, &out)
	return out, err
}

// UpdateContext changes the fields of a context that in sets.
func (c *Client) UpdateContext(ctx context.Context, id string, in apiv1.ContextUpdate) (apiv1.Context, error) {
	var out apiv1.Context
	err := c.do(ctx, http.MethodPatch, "/contexts/"+esc(id), nil, in, &out)
	return out, err
}

// DeleteContext deletes a context with its variables, files and attachments.
func (c *Client) DeleteContext(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/contexts/"+esc(id), nil, nil, nil)
}

// ContextEnv returns a context's variables; secret values are empty.
func (c *Client) ContextEnv(ctx context.Context, id string) (apiv1.List[apiv1.ContextEnvVar], error) {
	var out apiv1.List[apiv1.ContextEnvVar]
	err := c.do(ctx, http.MethodGet, "/contexts/"+esc(id)+"/env", nil, nil, &out)
	return out, err
}

// SetContextEnv creates or replaces a variable of a context.
func (c *Client) SetContextEnv(ctx context.Context, id, name string, in apiv1.ContextEnvVarSet) (apiv1.ContextEnvVar, error) {
	var out apiv1.ContextEnvVar
	err := c.do(ctx, http.MethodPut, "/contexts/"+esc(id)+"/env/"+esc(name), nil, in, &out)
	return out, err
}

// DeleteContextEnv deletes a variable of a context.
func (c *Client) DeleteContextEnv(ctx context.Context, id, name string) error {
	return c.do(ctx, http.MethodDelete, "/contexts/"+esc(id)+"/env/"+esc(name), nil, nil, nil)
}

// ContextFiles returns a context's mounted files, without content.
func (c *Client) ContextFiles(ctx context.Context, id string) (apiv1.List[apiv1.ContextFile], error) {
	var out apiv1.List[apiv1.ContextFile]
	err := c.do(ctx, http.MethodGet, "/contexts/"+esc(id)+"/files", nil, nil, &out)
	return out, err
}

// SetContextFile creates or replaces a mounted file of a context.
func (c *Client) SetContextFile(ctx context.Context, id, path string, content []byte, secret bool) (apiv1.ContextFile, error) {
	var out apiv1.ContextFile
	in := apiv1.ContextFileSet{Path: path, Content: base64.StdEncoding.EncodeToString(content), Secret: secret}
	err := c.do(ctx, http.MethodPut, "/contexts/"+esc(id)+"/files", nil, in, &out)
	return out, err
}

// DeleteContextFile removes a mounted file of a context.
func (c *Client) DeleteContextFile(ctx context.Context, id, path string) error {
	return c.do(ctx, http.MethodDelete, "/contexts/"+esc(id)+"/files", url.Values{"path": {path}}, nil, nil)
}

// AddContextHook appends a command to one phase of a context's hooks.
func (c *Client) AddContextHook(ctx context.Context, id, phase, command string) (apiv1.Context, error) {
	var out apiv1.Context
	err := c.do(ctx, http.MethodPost, "/contexts/"+esc(id)+"/hooks", nil, apiv1.ContextHookAdd{Phase: phase, Command: command}, &out)
	return out, err
}

// ContextAttachments returns the stacks a context applies to.
func (c *Client) ContextAttachments(ctx context.Context, id string) (apiv1.List[apiv1.ContextAttachment], error) {
	var out apiv1.List[apiv1.ContextAttachment]
	err := c.do(ctx, http.MethodGet, "/contexts/"+esc(id)+"/attachments", nil, nil, &out)
	return out, err
}

// AttachContext attaches a context to a stack with a priority (lower
// wins), or changes the priority of the attachment.
func (c *Client) AttachContext(ctx context.Context, id, stack string, priority int) (apiv1.ContextAttachment, error) {
	var out apiv1.ContextAttachment
	err := c.do(ctx, http.MethodPost, "/contexts/"+esc(id)+"/attachments", nil, apiv1.ContextAttach{Stack: stack, Priority: priority}, &out)
	return out, err
}

// DetachContext removes the explicit attachment of a context to a stack.
func (c *Client) DetachContext(ctx context.Context, id, stack string) error {
	return c.do(ctx, http.MethodDelete, "/contexts/"+esc(id)+"/attachments/"+esc(stack), nil, nil, nil)
}

// StackContexts returns the contexts that apply to a stack, in precedence
// order.
func (c *Client) StackContexts(ctx context.Context, stack string) (apiv1.List[apiv1.StackContext], error) {
	var out apiv1.List[apiv1.StackContext]
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/contexts", nil, nil, &out)
	return out, err
}

// EffectiveEnv returns what a stack's runs see and where each value comes
// from; secret values are empty.
func (c *Client) EffectiveEnv(ctx context.Context, stack string) (apiv1.EffectiveEnv, error) {
	var out apiv1.EffectiveEnv
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/env/effective", nil, nil, &out)
	return out, err
}
