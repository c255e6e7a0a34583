package client

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// ListSpaces returns a page of spaces.
func (c *Client) ListSpaces(ctx context.Context, opts ListOptions) (apiv1.List[apiv1.Space], error) {
	var out apiv1.List[apiv1.Space]
	err := c.do(ctx, http.MethodGet, "/spaces", opts.values(), nil, &out)
	return out, err
}

// CreateSpace creates a space.
func (c *Client) CreateSpace(ctx context.Context, in apiv1.SpaceCreate) (apiv1.Space, error) {
	var out apiv1.Space
	err := c.do(ctx, http.MethodPost, "/spaces", nil, in, &out)
	return out, err
}

// GetSpace returns one space.
func (c *Client) GetSpace(ctx context.Context, id string) (apiv1.Space, error) {
	var out apiv1.Space
	err := c.do(ctx, http.MethodGet, "/spaces/"+esc(id), nil, nil, &out)
	return out, err
}

// UpdateSpace changes the fields of a space that in sets.
func (c *Client) UpdateSpace(ctx context.Context, id string, in apiv1.SpaceUpdate) (apiv1.Space, error) {
	var out apiv1.Space
	err := c.do(ctx, http.MethodPatch, "/spaces/"+esc(id), nil, in, &out)
	return out, err
}

// DeleteSpace deletes a space.
func (c *Client) DeleteSpace(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/spaces/"+esc(id), nil, nil, nil)
}
