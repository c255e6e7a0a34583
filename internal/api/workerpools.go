package api

import (
	"context"
	"net/http"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/workerpool"
)

// workerPoolRoutes registers the worker pool endpoints. Pool tokens only
// appear in the answers of create and reset; nothing logs them.
func (a *API) workerPoolRoutes(user func(pattern, action string, h handler)) {
	r := routeFunc(user)
	r.Handle("GET /api/v1/worker-pools", auth.SpaceRead, a.listWorkerPools)
	r.Handle("POST /api/v1/worker-pools", auth.WorkerPoolCreate, a.createWorkerPool)
	r.Handle("GET /api/v1/worker-pools/{id}", auth.SpaceRead, a.getWorkerPool)
	r.Handle("PATCH /api/v1/worker-pools/{id}", auth.WorkerPoolUpdate, a.updateWorkerPool)
	r.Handle("DELETE /api/v1/worker-pools/{id}", auth.WorkerPoolDelete, a.deleteWorkerPool)
	r.Handle("POST /api/v1/worker-pools/{id}/reset", auth.WorkerPoolUpdate, a.resetWorkerPool)
	r.Handle("PUT /api/v1/worker-pools/{id}/public-key", auth.WorkerPoolUpdate, a.setWorkerPoolKey)
	r.Handle("GET /api/v1/worker-pools/{id}/workers", auth.SpaceRead, a.listWorkers)
	r.Handle("POST /api/v1/worker-pools/{id}/workers/{worker}/drain", auth.WorkerPoolUpdate, a.drainWorker)
}

// pools returns the pool service, or an error if the server runs without one.
func (a *API) pools() (*workerpool.Service, error) {
	if a.Pools == nil {
		return nil, errs.E(errs.Unavailable, "worker pools are not enabled on this server")
	}
	return a.Pools, nil
}

func workerPoolOut(p workerpool.Pool) apiv1.WorkerPool {
	l := p.Labels
	if l == nil {
		l = []string{}
	}
	return apiv1.WorkerPool{ID: p.ID, Name: p.Name, Space: p.Space, Labels: l, Description: p.Description, PublicKey: p.PublicKey,
		DriftRunLimit: p.DriftRunLimit, CreatedAt: utc(p.CreatedAt), UpdatedAt: utc(p.UpdatedAt)}
}

func workerOut(w workerpool.WorkerStatus) apiv1.Worker {
	out := apiv1.Worker{ID: w.ID, Name: w.Name, Status: w.Status, Labels: w.Labels, Tools: w.Tools,
		Concurrency: w.Concurrency, Features: w.Features, Version: w.Version, Jobs: w.Jobs, RegisteredAt: utc(w.Registered), LastSeenAt: utc(w.LastSeen)}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Tools == nil {
		out.Tools = map[string]string{}
	}
	if out.Jobs == nil {
		out.Jobs = []string{}
	}
	return out
}

// workerPool loads the pool of the path and checks p may do action in its space.
func (a *API) workerPool(r *http.Request, p auth.Principal, action string) (*workerpool.Service, workerpool.Pool, error) {
	s, err := a.pools()
	if err != nil {
		return nil, workerpool.Pool{}, err
	}
	pool, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, pool, err
	}
	return s, pool, auth.Authorize(p, action, pool.Space)
}

// poolScope resolves the pool of the worker endpoints' path: "builtin" is
// the server's built-in pool (pool "" of the service, in the root space).
func (a *API) poolScope(r *http.Request, p auth.Principal, action string) (*workerpool.Service, string, error) {
	if r.PathValue("id") == apiv1.BuiltinPool {
		s, err := a.pools()
		if err != nil {
			return nil, "", err
		}
		return s, "", auth.Authorize(p, action, space.Root)
	}
	s, pool, err := a.workerPool(r, p, action)
	return s, pool.ID, err
}

func (a *API) listWorkerPools(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, err := a.pools()
	if err != nil {
		return err
	}
	sp := r.URL.Query().Get("space")
	if err := listScope(p, sp); err != nil {
		return err
	}
	list, err := s.List(r.Context(), sp)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.WorkerPool]{Items: []apiv1.WorkerPool{}}
	for _, pool := range list {
		if !readable(p, pool.Space) {
			continue
		}
		out.Items = append(out.Items, workerPoolOut(pool))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createWorkerPool(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, err := a.pools()
	if err != nil {
		return err
	}
	var in apiv1.WorkerPoolCreate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if in.ID == "" {
		return errs.E(errs.Invalid, "id is required")
	}
	pool := workerpool.Pool{ID: in.ID, Name: in.Name, Space: orRoot(in.Space), Labels: in.Labels, Description: in.Description,
		DriftRunLimit: in.DriftRunLimit}
	if err := auth.Authorize(p, auth.WorkerPoolCreate, pool.Space); err != nil {
		return err
	}
	pool, token, err := s.Create(r.Context(), pool)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, apiv1.WorkerPoolToken{WorkerPool: workerPoolOut(pool), Token: token})
	return nil
}

func (a *API) getWorkerPool(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	_, pool, err := a.workerPool(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, workerPoolOut(pool))
	return nil
}

func (a *API) updateWorkerPool(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, pool, err := a.workerPool(r, p, auth.WorkerPoolUpdate)
	if err != nil {
		return err
	}
	var in apiv1.WorkerPoolUpdate
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	pool, err = s.Update(r.Context(), pool.ID, func(pl *workerpool.Pool) error {
		set(&pl.Name, in.Name)
		set(&pl.Labels, in.Labels)
		set(&pl.Description, in.Description)
		set(&pl.DriftRunLimit, in.DriftRunLimit)
		return nil
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, workerPoolOut(pool))
	return nil
}

func (a *API) deleteWorkerPool(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, pool, err := a.workerPool(r, p, auth.WorkerPoolDelete)
	if err != nil {
		return err
	}
	if err := s.Delete(r.Context(), pool.ID); err != nil {
		return err
	}
	return noContent(w)
}

func (a *API) resetWorkerPool(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, pool, err := a.workerPool(r, p, auth.WorkerPoolUpdate)
	if err != nil {
		return err
	}
	token, err := s.Reset(r.Context(), pool.ID)
	if err != nil {
		return err
	}
	if pool, err = s.Get(r.Context(), pool.ID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, apiv1.WorkerPoolToken{WorkerPool: workerPoolOut(pool), Token: token})
	return nil
}

func (a *API) setWorkerPoolKey(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, pool, err := a.workerPool(r, p, auth.WorkerPoolUpdate)
	if err != nil {
		return err
	}
	var in apiv1.WorkerPoolKey
	if err := httpx.DecodeJSON(w, r, &in, MaxBody); err != nil {
		return err
	}
	if err := s.SetPublicKey(r.Context(), pool.ID, in.PublicKey); err != nil {
		return err
	}
	if pool, err = s.Get(r.Context(), pool.ID); err != nil {
		return err
	}
	a.Log.InfoContext(r.Context(), "worker pool key set", "pool", pool.ID, "by", p.String(), "sealing", pool.PublicKey != "")
	httpx.WriteJSON(w, http.StatusOK, workerPoolOut(pool))
	return nil
}

func (a *API) listWorkers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, pool, err := a.poolScope(r, p, auth.SpaceRead)
	if err != nil {
		return err
	}
	list, err := s.Workers(r.Context(), pool)
	if err != nil {
		return err
	}
	out := apiv1.List[apiv1.Worker]{Items: []apiv1.Worker{}}
	for _, wk := range list {
		if wk.Jobs, err = a.readableRuns(r.Context(), p, wk.Jobs); err != nil {
			return err
		}
		out.Items = append(out.Items, workerOut(wk))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// readableRuns keeps the runs of spaces p may read: a pool (the built-in
// one in root above all) runs jobs of many spaces, and its worker list must
// not name runs the caller could not open. A run gone meanwhile is dropped.
func (a *API) readableRuns(ctx context.Context, p auth.Principal, runIDs []string) ([]string, error) {
	var out []string
	for _, id := range runIDs {
		rn, err := a.Runs.Get(ctx, id)
		if errs.Is(err, errs.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if readable(p, rn.SpaceID) {
			out = append(out, id)
		}
	}
	return out, nil
}

func (a *API) drainWorker(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	s, pool, err := a.poolScope(r, p, auth.WorkerPoolUpdate)
	if err != nil {
		return err
	}
	if err := s.Drain(r.Context(), pool, r.PathValue("worker")); err != nil {
		return err
	}
	return noContent(w)
}
