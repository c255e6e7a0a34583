package workerapi

import (
	"net/http"

	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
)

// deregister forgets a worker that says goodbye: it is stopping, and the
// jobs it ran have ended. A run the server still has it hold is one whose
// end it could not report (the server was unreachable): nobody will, so
// the run fails now, as the reaper would fail it a --worker-timeout later,
// and the worker's row goes with it. From then on its token is unknown
// (401), and the pool's workers list and its connected count (a run's
// waiting_for) no longer have it.
func (h *Handler) deregister(w http.ResponseWriter, r *http.Request) error {
	wk, err := h.Registry.Authenticate(r.Context(), httpx.BearerToken(r))
	if err != nil {
		return err
	}
	failed, err := h.Runs.FailLost(r.Context(), run.Lost{Workers: []string{wk.ID},
		Reason: "worker " + wk.ID + " (" + wk.Name + ") stopped without reporting how the job ended"})
	if err != nil {
		return err
	}
	removed, err := h.Registry.Remove(r.Context(), wk.ID)
	if err != nil {
		return err
	}
	pool := wk.Pool
	if pool == "" {
		pool = "builtin" // the server's own workers
	}
	h.Log.Info("a worker stopped and left its pool", "worker_id", wk.ID, "worker", wk.Name, "pool", pool, "runs_failed", failed, "removed", removed)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// drain marks a worker that is stopping while its jobs run on as drained:
// it claims no new jobs, the pool's workers list shows it DRAINED, and it
// no longer counts as connected (a waiting run's waiting_for says so at
// once). Its goodbye follows when its jobs have ended.
func (h *Handler) drain(w http.ResponseWriter, r *http.Request) error {
	wk, err := h.Registry.Authenticate(r.Context(), httpx.BearerToken(r))
	if err != nil {
		return err
	}
	if err := h.Registry.Drain(r.Context(), wk.ID); err != nil {
		return err
	}
	h.Log.Info("a worker is stopping: drained until its jobs end", "worker_id", wk.ID, "worker", wk.Name)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
