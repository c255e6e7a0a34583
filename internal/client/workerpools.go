package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// ListWorkerPools returns the worker pools of a space ("" for all).
func (c *Client) ListWorkerPools(ctx context.Context, space string) (apiv1.List[apiv1.WorkerPool], error) {
	q := url.Values{}
	setIf(q, "space", space)
	var out apiv1.List[apiv1.WorkerPool]
	err := c.do(ctx, http.MethodGet, "/worker-pools", q, nil, &out)
	return out, err
}

// CreateWorkerPool creates a worker pool. The answer holds its token, which
// the server shows this once.
func (c *Client) CreateWorkerPool(ctx context.Context, in apiv1.WorkerPoolCreate) (apiv1.WorkerPoolToken, error) {
	var out apiv1.WorkerPoolToken
	err := c.do(ctx, http.MethodPost, "/worker-pools", nil, in, &out)
	return out, err
}

// GetWorkerPool returns one worker pool (never its token).
func (c *Client) GetWorkerPool(ctx context.Context, id string) (apiv1.WorkerPool, error) {
	var out apiv1.WorkerPool
	err := c.do(ctx, http.MethodGet, "/worker-pools/"+esc(id), nil, nil, &out)
	return out, err
}

// UpdateWorkerPool changes the fields of a pool that in sets.
func (c *Client) UpdateWorkerPool(ctx context.Context, id string, in apiv1.WorkerPoolUpdate) (apiv1.WorkerPool, error) {
	var out apiv1.WorkerPool
	err := c.do(ctx, http.MethodPatch, "/worker-pools/"+esc(id), nil, in, &out)
	return out, err
}

// DeleteWorkerPool deletes a worker pool no stack uses.
func (c *Client) DeleteWorkerPool(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/worker-pools/"+esc(id), nil, nil, nil)
}

// ResetWorkerPool gives a pool a new token (in the answer, shown this
// once); the old one stops working and its workers are removed.
func (c *Client) ResetWorkerPool(ctx context.Context, id string) (apiv1.WorkerPoolToken, error) {
	var out apiv1.WorkerPoolToken
	err := c.do(ctx, http.MethodPost, "/worker-pools/"+esc(id)+"/reset", nil, nil, &out)
	return out, err
}

// ListWorkers returns the workers of a pool; apiv1.BuiltinPool names the
// server's built-in pool.
func (c *Client) ListWorkers(ctx context.Context, pool string) (apiv1.List[apiv1.Worker], error) {
	var out apiv1.List[apiv1.Worker]
	err := c.do(ctx, http.MethodGet, "/worker-pools/"+esc(pool)+"/workers", nil, nil, &out)
	return out, err
}

// DrainWorker stops a worker of a pool from taking new jobs; the jobs it
// runs go on.
func (c *Client) DrainWorker(ctx context.Context, pool, worker string) error {
	return c.do(ctx, http.MethodPost, "/worker-pools/"+esc(pool)+"/workers/"+esc(worker)+"/drain", nil, nil, nil)
}

// SetWorkerPoolKey stores a pool's public key ("" turns sealing off).
func (c *Client) SetWorkerPoolKey(ctx context.Context, id, publicKey string) (apiv1.WorkerPool, error) {
	var out apiv1.WorkerPool
	err := c.do(ctx, http.MethodPut, "/worker-pools/"+esc(id)+"/public-key", nil, apiv1.WorkerPoolKey{PublicKey: publicKey}, &out)
	return out, err
}
