package client

import (
	"context"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/errs"
)

func TestWorkerPoolRequests(t *testing.T) {
	ctx := context.Background()
	const pool = `"id":"eu","name":"EU","space":"prod","labels":["a"],"description":"","created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"`
	tests := []struct {
		name   string
		status int
		body   string
		call   func(c *Client) (any, error)
		want   recorded
		check  func(t *testing.T, got any)
	}{
		{
			name: "create", status: 201, body: `{` + pool + `,"token":"gpt_eu_x"}`,
			call: func(c *Client) (any, error) {
				return c.CreateWorkerPool(ctx, apiv1.WorkerPoolCreate{ID: "eu", Name: "EU", Space: "prod", Labels: []string{"a"}})
			},
			want: recorded{Method: "POST", Path: "/api/v1/worker-pools", Auth: "Bearer tok",
				Body: `{"id":"eu","name":"EU","space":"prod","labels":["a"]}`},
			check: func(t *testing.T, got any) {
				if p := got.(apiv1.WorkerPoolToken); p.Token != "gpt_eu_x" || p.ID != "eu" || p.Space != "prod" || p.CreatedAt.IsZero() {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name: "list", status: 200, body: `{"items":[{` + pool + `}]}`,
			call: func(c *Client) (any, error) { return c.ListWorkerPools(ctx, "prod") },
			want: recorded{Method: "GET", Path: "/api/v1/worker-pools", RawQuery: "space=prod", Auth: "Bearer tok"},
			check: func(t *testing.T, got any) {
				if l := got.(apiv1.List[apiv1.WorkerPool]); len(l.Items) != 1 || l.Items[0].Name != "EU" {
					t.Errorf("got %+v", l)
				}
			},
		},
		{
			name: "get", status: 200, body: `{` + pool + `}`,
			call: func(c *Client) (any, error) { return c.GetWorkerPool(ctx, "eu") },
			want: recorded{Method: "GET", Path: "/api/v1/worker-pools/eu", Auth: "Bearer tok"},
		},
		{
			name: "update", status: 200, body: `{` + pool + `}`,
			call: func(c *Client) (any, error) {
				name, labels := "EU", []string{}
				return c.UpdateWorkerPool(ctx, "eu", apiv1.WorkerPoolUpdate{Name: &name, Labels: &labels})
			},
			want: recorded{Method: "PATCH", Path: "/api/v1/worker-pools/eu", Auth: "Bearer tok", Body: `{"name":"EU","labels":[]}`},
		},
		{
			name: "delete", status: 204,
			call: func(c *Client) (any, error) { return nil, c.DeleteWorkerPool(ctx, "eu") },
			want: recorded{Method: "DELETE", Path: "/api/v1/worker-pools/eu", Auth: "Bearer tok"},
		},
		{
			name: "reset", status: 200, body: `{` + pool + `,"token":"gpt_eu_new"}`,
			call: func(c *Client) (any, error) { return c.ResetWorkerPool(ctx, "eu") },
			want: recorded{Method: "POST", Path: "/api/v1/worker-pools/eu/reset", Auth: "Bearer tok"},
			check: func(t *testing.T, got any) {
				if p := got.(apiv1.WorkerPoolToken); p.Token != "gpt_eu_new" {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name: "workers", status: 200,
			body: `{"items":[{"id":"wrk-1","name":"box","status":"BUSY","labels":{"region":"eu"},"tools":{"opentofu":"1.10.7"},"concurrency":2,"jobs":["run-1"],"registered_at":"2026-01-02T03:04:05Z","last_seen_at":"2026-01-02T03:05:05Z"}]}`,
			call: func(c *Client) (any, error) { return c.ListWorkers(ctx, apiv1.BuiltinPool) },
			want: recorded{Method: "GET", Path: "/api/v1/worker-pools/builtin/workers", Auth: "Bearer tok"},
			check: func(t *testing.T, got any) {
				l := got.(apiv1.List[apiv1.Worker])
				if len(l.Items) != 1 || l.Items[0].Status != apiv1.WorkerBusy || l.Items[0].Labels["region"] != "eu" ||
					l.Items[0].Concurrency != 2 || len(l.Items[0].Jobs) != 1 {
					t.Errorf("got %+v", l)
				}
			},
		},
		{
			name: "drain escapes the path", status: 204,
			call: func(c *Client) (any, error) { return nil, c.DrainWorker(ctx, "eu", "wrk/1") },
			want: recorded{Method: "POST", Path: "/api/v1/worker-pools/eu/workers/wrk%2F1/drain", Auth: "Bearer tok"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, rec := fake(t, tc.status, tc.body)
			got, err := tc.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if *rec != tc.want {
				t.Errorf("request = %+v, want %+v", *rec, tc.want)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}

	c, _ := fake(t, 409, `{"error":{"code":"conflict","message":"worker pool \"eu\" is used by 1 stacks"}}`)
	if err := c.DeleteWorkerPool(ctx, "eu"); !errs.Is(err, errs.Conflict) {
		t.Errorf("DeleteWorkerPool on 409 = %v, want a conflict", err)
	}
}
