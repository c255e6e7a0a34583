package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// StackListOptions filters the list of stacks.
type StackListOptions struct {
	ListOptions
	Space  string   // only stacks of this space
	Labels []string // only stacks having all these labels
}

// ListStacks returns a page of stacks.
func (c *Client) ListStacks(ctx context.Context, opts StackListOptions) (apiv1.List[apiv1.Stack], error) {
	q := opts.values()
	setIf(q, "space", opts.Space)
	for _, l := range opts.Labels {
		q.Add("label", l)
	}
	var out apiv1.List[apiv1.Stack]
	err := c.do(ctx, http.MethodGet, "/stacks", q, nil, &out)
	return out, err
}

// CreateStack creates a stack.
func (c *Client) CreateStack(ctx context.Context, in apiv1.StackCreate) (apiv1.Stack, error) {
	var out apiv1.Stack
	err := c.do(ctx, http.MethodPost, "/stacks", nil, in, &out)
	return out, err
}

// GetStack returns one stack.
func (c *Client) GetStack(ctx context.Context, id string) (apiv1.Stack, error) {
	var out apiv1.Stack
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(id), nil, nil, &out)
	return out, err
}

// UpdateStack changes the fields of a stack that in sets.
// force turns managed state off even when the stack has state in Gantry.
func (c *Client) UpdateStack(ctx context.Context, id string, in apiv1.StackUpdate, force bool) (apiv1.Stack, error) {
	var out apiv1.Stack
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	err := c.do(ctx, http.MethodPatch, "/stacks/"+esc(id), q, in, &out)
	return out, err
}

// DeleteStack deletes a stack; force deletes it even when it has resources
// in its state or runs in progress.
func (c *Client) DeleteStack(ctx context.Context, id string, force bool) error {
	q := url.Values{"force": {strconv.FormatBool(force)}}
	return c.do(ctx, http.MethodDelete, "/stacks/"+esc(id), q, nil, nil)
}

// ListEnv returns the environment variables of a stack; secret values are empty.
func (c *Client) ListEnv(ctx context.Context, stack string) (apiv1.List[apiv1.EnvVar], error) {
	var out apiv1.List[apiv1.EnvVar]
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/env", nil, nil, &out)
	return out, err
}

// SetEnv creates or replaces an environment variable of a stack.
func (c *Client) SetEnv(ctx context.Context, stack, name string, in apiv1.EnvVarSet) (apiv1.EnvVar, error) {
	var out apiv1.EnvVar
	err := c.do(ctx, http.MethodPut, "/stacks/"+esc(stack)+"/env/"+esc(name), nil, in, &out)
	return out, err
}

// DeleteEnv deletes an environment variable of a stack.
func (c *Client) DeleteEnv(ctx context.Context, stack, name string) error {
	return c.do(ctx, http.MethodDelete, "/stacks/"+esc(stack)+"/env/"+esc(name), nil, nil, nil)
}
