package client

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// CreateAPIKey creates an API key. The answer holds its token, which the
// server shows this once.
func (c *Client) CreateAPIKey(ctx context.Context, in apiv1.APIKeyCreate) (apiv1.APIKeyCreated, error) {
	var out apiv1.APIKeyCreated
	err := c.do(ctx, http.MethodPost, "/api-keys", nil, in, &out)
	return out, err
}

// ListAPIKeys returns every API key, revoked ones too, without tokens.
func (c *Client) ListAPIKeys(ctx context.Context) (apiv1.List[apiv1.APIKey], error) {
	var out apiv1.List[apiv1.APIKey]
	err := c.do(ctx, http.MethodGet, "/api-keys", nil, nil, &out)
	return out, err
}

// RevokeAPIKey revokes an API key: it stops working at once.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api-keys/"+esc(id), nil, nil, nil)
}
