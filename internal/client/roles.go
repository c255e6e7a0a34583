package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// ListRoleActions returns the action catalog.
func (c *Client) ListRoleActions(ctx context.Context) (apiv1.List[apiv1.RoleAction], error) {
	var out apiv1.List[apiv1.RoleAction]
	return out, c.do(ctx, http.MethodGet, "/role-actions", nil, nil, &out)
}

// ListRoles returns the built-in and custom roles.
func (c *Client) ListRoles(ctx context.Context) (apiv1.List[apiv1.Role], error) {
	var out apiv1.List[apiv1.Role]
	return out, c.do(ctx, http.MethodGet, "/roles", nil, nil, &out)
}

// GetRole returns one role.
func (c *Client) GetRole(ctx context.Context, id string) (apiv1.Role, error) {
	var out apiv1.Role
	return out, c.do(ctx, http.MethodGet, "/roles/"+esc(id), nil, nil, &out)
}

// CreateRole creates a custom role.
func (c *Client) CreateRole(ctx context.Context, in apiv1.RoleCreate) (apiv1.Role, error) {
	var out apiv1.Role
	return out, c.do(ctx, http.MethodPost, "/roles", nil, in, &out)
}

// DeleteRole deletes a custom role.
func (c *Client) DeleteRole(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/roles/"+esc(id), nil, nil, nil)
}

// ListRoleBindings returns the bindings of a space ("" for all readable).
func (c *Client) ListRoleBindings(ctx context.Context, space string) (apiv1.List[apiv1.RoleBinding], error) {
	var out apiv1.List[apiv1.RoleBinding]
	q := url.Values{}
	setIf(q, "space", space)
	return out, c.do(ctx, http.MethodGet, "/role-bindings", q, nil, &out)
}

// Bind binds a role.
func (c *Client) Bind(ctx context.Context, in apiv1.RoleBindingCreate) (apiv1.RoleBinding, error) {
	var out apiv1.RoleBinding
	return out, c.do(ctx, http.MethodPost, "/role-bindings", nil, in, &out)
}

// Unbind deletes a binding.
func (c *Client) Unbind(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/role-bindings/"+esc(id), nil, nil, nil)
}

// ListUsers returns the users who signed in.
func (c *Client) ListUsers(ctx context.Context) (apiv1.List[apiv1.User], error) {
	var out apiv1.List[apiv1.User]
	return out, c.do(ctx, http.MethodGet, "/users", nil, nil, &out)
}

// SetUserDisabled disables (or enables) a user.
func (c *Client) SetUserDisabled(ctx context.Context, id string, disabled bool) (apiv1.User, error) {
	verb := "enable"
	if disabled {
		verb = "disable"
	}
	var out apiv1.User
	return out, c.do(ctx, http.MethodPost, "/users/"+esc(id)+"/"+verb, nil, nil, &out)
}
