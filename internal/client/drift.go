package client

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// GetDriftDetection returns a stack's drift detection schedule.
func (c *Client) GetDriftDetection(ctx context.Context, stack string) (apiv1.DriftDetection, error) {
	var out apiv1.DriftDetection
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/drift-detection", nil, nil, &out)
	return out, err
}

// SetDriftDetection creates or replaces a stack's drift detection schedule.
func (c *Client) SetDriftDetection(ctx context.Context, stack string, in apiv1.DriftDetectionSet) (apiv1.DriftDetection, error) {
	var out apiv1.DriftDetection
	err := c.do(ctx, http.MethodPut, "/stacks/"+esc(stack)+"/drift-detection", nil, in, &out)
	return out, err
}

// DeleteDriftDetection removes a stack's drift detection schedule.
func (c *Client) DeleteDriftDetection(ctx context.Context, stack string) error {
	return c.do(ctx, http.MethodDelete, "/stacks/"+esc(stack)+"/drift-detection", nil, nil, nil)
}

// ListSchedules returns a stack's schedules.
func (c *Client) ListSchedules(ctx context.Context, stack string) (apiv1.List[apiv1.Schedule], error) {
	var out apiv1.List[apiv1.Schedule]
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/schedules", nil, nil, &out)
	return out, err
}

// CreateSchedule schedules a tracked run, a task or a delete.
func (c *Client) CreateSchedule(ctx context.Context, stack string, in apiv1.ScheduleCreate) (apiv1.Schedule, error) {
	var out apiv1.Schedule
	err := c.do(ctx, http.MethodPost, "/stacks/"+esc(stack)+"/schedules", nil, in, &out)
	return out, err
}

// DeleteSchedule removes a schedule of a stack.
func (c *Client) DeleteSchedule(ctx context.Context, stack, schedule string) error {
	return c.do(ctx, http.MethodDelete, "/stacks/"+esc(stack)+"/schedules/"+esc(schedule), nil, nil, nil)
}

// DriftListOptions filters ListDrift.
type DriftListOptions struct {
	ListOptions
	Space, Cloud, Status string
}

// ListDrift returns a page of stacks' drift status.
func (c *Client) ListDrift(ctx context.Context, opts DriftListOptions) (apiv1.List[apiv1.StackDrift], error) {
	q := opts.values()
	setIf(q, "space", opts.Space)
	setIf(q, "cloud", opts.Cloud)
	setIf(q, "status", opts.Status)
	var out apiv1.List[apiv1.StackDrift]
	err := c.do(ctx, http.MethodGet, "/drift", q, nil, &out)
	return out, err
}

// ShowDrift returns a stack's drift with its history.
func (c *Client) ShowDrift(ctx context.Context, stack string) (apiv1.StackDriftDetail, error) {
	var out apiv1.StackDriftDetail
	err := c.do(ctx, http.MethodGet, "/stacks/"+esc(stack)+"/drift", nil, nil, &out)
	return out, err
}

// ReconcileDrift queues a tracked run that puts drift back.
func (c *Client) ReconcileDrift(ctx context.Context, stack string, resources []string) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodPost, "/stacks/"+esc(stack)+"/drift/reconcile", nil, apiv1.DriftReconcile{Resources: resources}, &out)
	return out, err
}
