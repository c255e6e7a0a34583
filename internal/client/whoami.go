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

// Logout ends the session of the client's token (a session token of
// `gantry login --sso`) at the server; the server ignores other tokens.
func (c *Client) Logout(ctx context.Context) error {
	return c.send(ctx, http.MethodPost, c.base+"/auth/logout", nil, nil, nil)
}
