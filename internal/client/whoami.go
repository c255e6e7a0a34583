package client

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Whoami returns the caller as the server sees it.
func (c *Client) Whoami(ctx context.Context) (apiv1.Whoami, error) {
	var out apiv1.Whoami
	err := c.do(ctx, http.MethodGet, "/whoami", nil, nil, &out)
	return out, err
}
