package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// RunListOptions filters the list of runs.
type RunListOptions struct {
	ListOptions
	Stack string
	State string
	Type  string
	Space string
}

// CreateRun queues a run on a stack.
func (c *Client) CreateRun(ctx context.Context, stack string, in apiv1.RunCreate) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodPost, "/stacks/"+esc(stack)+"/runs", nil, in, &out)
	return out, err
}

// CreateTask runs a command on a stack (a TASK run).
func (c *Client) CreateTask(ctx context.Context, stack string, in apiv1.TaskCreate) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodPost, "/stacks/"+esc(stack)+"/tasks", nil, in, &out)
	return out, err
}

// RetryRun starts a new run like a failed, stopped, canceled or discarded one.
func (c *Client) RetryRun(ctx context.Context, runID string) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodPost, "/runs/"+esc(runID)+"/retry", nil, nil, &out)
	return out, err
}

// ListRuns returns a page of runs.
func (c *Client) ListRuns(ctx context.Context, opts RunListOptions) (apiv1.List[apiv1.Run], error) {
	q := opts.values()
	setIf(q, "stack", opts.Stack)
	setIf(q, "state", opts.State)
	setIf(q, "type", opts.Type)
	setIf(q, "space", opts.Space)
	var out apiv1.List[apiv1.Run]
	err := c.do(ctx, http.MethodGet, "/runs", q, nil, &out)
	return out, err
}

// GetRun returns one run with its transitions.
func (c *Client) GetRun(ctx context.Context, id string) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodGet, "/runs/"+esc(id), nil, nil, &out)
	return out, err
}

func (c *Client) runAction(ctx context.Context, id, action string) (apiv1.Run, error) {
	var out apiv1.Run
	err := c.do(ctx, http.MethodPost, "/runs/"+esc(id)+"/"+action, nil, nil, &out)
	return out, err
}

// ConfirmRun confirms an UNCONFIRMED run so that it applies its plan.
func (c *Client) ConfirmRun(ctx context.Context, id string) (apiv1.Run, error) {
	return c.runAction(ctx, id, "confirm")
}

// DiscardRun discards an UNCONFIRMED run.
func (c *Client) DiscardRun(ctx context.Context, id string) (apiv1.Run, error) {
	return c.runAction(ctx, id, "discard")
}

// CancelRun cancels a run that has not started.
func (c *Client) CancelRun(ctx context.Context, id string) (apiv1.Run, error) {
	return c.runAction(ctx, id, "cancel")
}

// StopRun asks a running run to stop.
func (c *Client) StopRun(ctx context.Context, id string) (apiv1.Run, error) {
	return c.runAction(ctx, id, "stop")
}

// RunLogs reads a run's log from offset. With wait > 0 the server holds the
// request up to wait (whole seconds) when no data follows offset yet.
func (c *Client) RunLogs(ctx context.Context, id string, offset int64, wait time.Duration) (apiv1.LogChunk, error) {
	q := url.Values{}
	q.Set("offset", fmt.Sprint(offset))
	if secs := int(wait / time.Second); secs > 0 {
		q.Set("wait", fmt.Sprint(secs))
	}
	var out apiv1.LogChunk
	err := c.do(ctx, http.MethodGet, "/runs/"+esc(id)+"/logs", q, nil, &out)
	return out, err
}

// RunPlan returns the plan JSON (`show -json`) of a run.
func (c *Client) RunPlan(ctx context.Context, id string) ([]byte, error) {
	var out []byte
	err := c.do(ctx, http.MethodGet, "/runs/"+esc(id)+"/plan", nil, nil, &out)
	return out, err
}

// WaitRun polls a run every interval until until(run) is true, and returns
// that run. It stops with an error when ctx ends or a poll fails.
func (c *Client) WaitRun(ctx context.Context, id string, until func(apiv1.Run) bool, interval time.Duration) (apiv1.Run, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return apiv1.Run{}, ctx.Err()
		case <-t.C:
		}
		run, err := c.GetRun(ctx, id)
		if err != nil {
			return run, err
		}
		if until(run) {
			return run, nil
		}
		t.Reset(interval)
	}
}

// LogWait is how long FollowLogs asks the server to hold each read.
const LogWait = 20 * time.Second

// followIdle is the pause after an empty, not done chunk, so a server that
// does not long-poll is not hammered.
var followIdle = 500 * time.Millisecond

// FollowLogs copies a run's log to w from the start until the run is done.
func (c *Client) FollowLogs(ctx context.Context, id string, w io.Writer) error {
	var offset int64
	wait := LogWait
	for {
		chunk, err := c.RunLogs(ctx, id, offset, wait)
		if err != nil {
			return err
		}
		if chunk.Data != "" {
			if _, err := io.WriteString(w, chunk.Data); err != nil {
				return err
			}
		}
		if chunk.NextOffset > offset {
			offset = chunk.NextOffset
		}
		switch {
		case chunk.Done && chunk.Data == "":
			return nil
		case chunk.Done:
			// The run is over but this chunk may not hold the whole rest of
			// the log: read on, without waiting, until an empty chunk.
			wait = 0
		case chunk.Data == "":
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(followIdle):
			}
		}
	}
}
