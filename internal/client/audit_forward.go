package client

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// ListAuditWebhooks returns the audit forwarding endpoints.
func (c *Client) ListAuditWebhooks(ctx context.Context) (apiv1.List[apiv1.AuditWebhook], error) {
	var out apiv1.List[apiv1.AuditWebhook]
	err := c.do(ctx, http.MethodGet, "/audit/webhooks", nil, nil, &out)
	return out, err
}

// CreateAuditWebhook creates an audit forwarding endpoint.
func (c *Client) CreateAuditWebhook(ctx context.Context, in apiv1.AuditWebhookCreate) (apiv1.AuditWebhook, error) {
	var out apiv1.AuditWebhook
	err := c.do(ctx, http.MethodPost, "/audit/webhooks", nil, in, &out)
	return out, err
}

// DeleteAuditWebhook deletes an audit forwarding endpoint.
func (c *Client) DeleteAuditWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/audit/webhooks/"+esc(id), nil, nil, nil)
}

// AuditDeliveries returns the forwarding status of every audit webhook.
func (c *Client) AuditDeliveries(ctx context.Context) (apiv1.List[apiv1.AuditDelivery], error) {
	var out apiv1.List[apiv1.AuditDelivery]
	err := c.do(ctx, http.MethodGet, "/audit/deliveries", nil, nil, &out)
	return out, err
}
