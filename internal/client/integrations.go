package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// ListIntegrations returns the integrations of a space ("" for all readable).
func (c *Client) ListIntegrations(ctx context.Context, space string) (apiv1.List[apiv1.Integration], error) {
	var out apiv1.List[apiv1.Integration]
	q := url.Values{}
	setIf(q, "space", space)
	return out, c.do(ctx, http.MethodGet, "/integrations", q, nil, &out)
}

// GetIntegration returns one integration.
func (c *Client) GetIntegration(ctx context.Context, id string) (apiv1.Integration, error) {
	var out apiv1.Integration
	return out, c.do(ctx, http.MethodGet, "/integrations/"+esc(id), nil, nil, &out)
}

// CreateIntegration creates an integration.
func (c *Client) CreateIntegration(ctx context.Context, in apiv1.IntegrationCreate) (apiv1.Integration, error) {
	var out apiv1.Integration
	return out, c.do(ctx, http.MethodPost, "/integrations", nil, in, &out)
}

// UpdateIntegration changes an integration.
func (c *Client) UpdateIntegration(ctx context.Context, id string, in apiv1.IntegrationUpdate) (apiv1.Integration, error) {
	var out apiv1.Integration
	return out, c.do(ctx, http.MethodPatch, "/integrations/"+esc(id), nil, in, &out)
}

// DeleteIntegration deletes an integration.
func (c *Client) DeleteIntegration(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/integrations/"+esc(id), nil, nil, nil)
}

// AttachIntegration attaches an integration to a stack.
func (c *Client) AttachIntegration(ctx context.Context, id string, in apiv1.IntegrationAttach) (apiv1.IntegrationAttachment, error) {
	var out apiv1.IntegrationAttachment
	return out, c.do(ctx, http.MethodPost, "/integrations/"+esc(id)+"/attachments", nil, in, &out)
}

// DetachIntegration detaches an integration from a stack.
func (c *Client) DetachIntegration(ctx context.Context, id, stack string) error {
	return c.do(ctx, http.MethodDelete, "/integrations/"+esc(id)+"/attachments/"+esc(stack), nil, nil, nil)
}

// IntegrationAttachments lists an integration's attachments.
func (c *Client) IntegrationAttachments(ctx context.Context, id string) (apiv1.List[apiv1.IntegrationAttachment], error) {
	var out apiv1.List[apiv1.IntegrationAttachment]
	return out, c.do(ctx, http.MethodGet, "/integrations/"+esc(id)+"/attachments", nil, nil, &out)
}

// AWSTrustPolicy returns the IAM trust policy of an AWS integration for a stack.
func (c *Client) AWSTrustPolicy(ctx context.Context, id, stack string) (map[string]any, error) {
	var out map[string]any
	return out, c.do(ctx, http.MethodGet, "/integrations/"+esc(id)+"/aws-trust-policy", url.Values{"stack": {stack}}, nil, &out)
}

// OIDCSetup returns what to configure on a cloud so that it trusts a stack's runs.
func (c *Client) OIDCSetup(ctx context.Context, provider, stack string) (apiv1.OIDCSetup, error) {
	var out apiv1.OIDCSetup
	return out, c.do(ctx, http.MethodGet, "/oidc-setup", url.Values{"provider": {provider}, "stack": {stack}}, nil, &out)
}
