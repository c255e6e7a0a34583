package client

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Outputs returns the root module outputs of a stack's current state.
func (c *Client) Outputs(ctx context.Context, stack string) (apiv1.List[apiv1.Output], error) {
	var out apiv1.List[apiv1.Output]
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/outputs", nil, nil, &out)
	return out, err
}

// StateVersions lists the stored state versions of a stack.
func (c *Client) StateVersions(ctx context.Context, stack string) (apiv1.List[apiv1.StateVersion], error) {
	var out apiv1.List[apiv1.StateVersion]
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/state/versions", nil, nil, &out)
	return out, err
}

// StateVersion returns the raw state document of one version; serial is a
// number or "current".
func (c *Client) StateVersion(ctx context.Context, stack, serial string) ([]byte, error) {
	var out []byte
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/state/versions/"+esc(serial), nil, nil, &out)
	return out, err
}

// RollbackState makes a copy of an older version the current state.
func (c *Client) RollbackState(ctx context.Context, stack string, in apiv1.StateRollback) (apiv1.StateVersion, error) {
	var out apiv1.StateVersion
	err := c.do(ctx, http.MethodPost, "/stacks/"+esc(stack)+"/state/rollback", nil, in, &out)
	return out, err
}
