package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// ListWebhooks returns the notification endpoints of a space ("" for all).
func (c *Client) ListWebhooks(ctx context.Context, space string) (apiv1.List[apiv1.Webhook], error) {
	q := url.Values{}
	setIf(q, "space", space)
	var out apiv1.List[apiv1.Webhook]
	err := c.do(ctx, http.MethodGet, "/webhooks", q, nil, &out)
	return out, err
}

// CreateWebhook creates a notification endpoint.
func (c *Client) CreateWebhook(ctx context.Context, in apiv1.WebhookCreate) (apiv1.Webhook, error) {
	var out apiv1.Webhook
	err := c.do(ctx, http.MethodPost, "/webhooks", nil, in, &out)
	return out, err
}

// GetWebhook returns one notification endpoint.
func (c *Client) GetWebhook(ctx context.Context, id string) (apiv1.Webhook, error) {
	var out apiv1.Webhook
	err := c.do(ctx, http.MethodGet, "/webhooks/"+esc(id), nil, nil, &out)
	return out, err
}

// UpdateWebhook changes the fields of an endpoint that in sets.
func (c *Client) UpdateWebhook(ctx context.Context, id string, in apiv1.WebhookUpdate) (apiv1.Webhook, error) {
	var out apiv1.Webhook
	err := c.do(ctx, http.MethodPatch, "/webhooks/"+esc(id), nil, in, &out)
	return out, err
}

// DeleteWebhook deletes a notification endpoint.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/webhooks/"+esc(id), nil, nil, nil)
}

// NotificationListOptions filters the inbox.
type NotificationListOptions struct {
	ListOptions
	Space string
	Run   string
}

// ListNotifications returns a page of inbox notifications, newest first.
func (c *Client) ListNotifications(ctx context.Context, opts NotificationListOptions) (apiv1.List[apiv1.Notification], error) {
	q := opts.values()
	setIf(q, "space", opts.Space)
	setIf(q, "run", opts.Run)
	var out apiv1.List[apiv1.Notification]
	err := c.do(ctx, http.MethodGet, "/notifications", q, nil, &out)
	return out, err
}

// MarkNotificationRead marks an inbox notification read.
func (c *Client) MarkNotificationRead(ctx context.Context, id string) (apiv1.Notification, error) {
	var out apiv1.Notification
	err := c.do(ctx, http.MethodPost, "/notifications/"+esc(id)+"/read", nil, nil, &out)
	return out, err
}

// DeliveryListOptions filters deliveries.
type DeliveryListOptions struct {
	ListOptions
	Run      string
	Endpoint string
	Status   string
}

// ListDeliveries returns a page of webhook and Slack deliveries, newest
// first, with their attempts.
func (c *Client) ListDeliveries(ctx context.Context, opts DeliveryListOptions) (apiv1.List[apiv1.Delivery], error) {
	q := opts.values()
	setIf(q, "run", opts.Run)
	setIf(q, "endpoint", opts.Endpoint)
	setIf(q, "status", opts.Status)
	var out apiv1.List[apiv1.Delivery]
	err := c.do(ctx, http.MethodGet, "/deliveries", q, nil, &out)
	return out, err
}
