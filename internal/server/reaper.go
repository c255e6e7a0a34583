package server

import (
	"context"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/run"
)

// liveness is since when this server has been able to record heartbeats:
// since it started, or since it last saw recording one fail (the database
// down or refusing writes, a full disk) or its reaper's own query fail.
// A worker is taken for lost only when this server has been able to
// record its heartbeats for a whole worker timeout and none came: a
// worker whose heartbeats went unrecorded because of the server is alive.
type liveness struct {
	mu    sync.Mutex
	since time.Time
}

func newLiveness(start time.Time) *liveness { return &liveness{since: start} }

// failed records that a heartbeat, or the database, failed at t.
func (l *liveness) failed(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.since) {
		l.since = t
	}
}

// lostBefore returns the time before which a heartbeat means a lost
// worker at now, or false while this server has not been able to record
// heartbeats for a whole timeout.
func (l *liveness) lostBefore(now time.Time, timeout time.Duration) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := now.Add(-timeout)
	return cutoff, !cutoff.Before(l.since)
}

// reaper fails runs whose worker stopped sending heartbeats.
func (s *Server) reaper(ctx context.Context) {
	every := max(s.cfg.WorkerTimeout/4, 250*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reap(ctx, s.now())
	}
}

// reap is one pass of the reaper at now.
func (s *Server) reap(ctx context.Context, now time.Time) {
	if cutoff, ok := s.live.lostBefore(now, s.cfg.WorkerTimeout); ok {
		n, err := s.runs.FailLost(ctx, run.Lost{Before: cutoff, Keep: s.runsHere})
		if err != nil && ctx.Err() == nil {
			s.live.failed(s.now())
			s.log.Error("reaper failed", "err", err)
		} else if n > 0 {
			s.log.Warn("failed runs whose worker was lost", "runs", n)
		}
	}
	// Workers silent for a day are gone for good: forget them.
	if k, err := s.pools.PruneWorkers(ctx, now.Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
		s.live.failed(s.now())
		s.log.Error("pruning gone workers failed", "err", err)
	} else if k > 0 {
		s.log.Info("forgot workers silent for a day", "workers", k)
	}
}

// heartbeatFailed is told by the worker protocol that a heartbeat could
// not be recorded: no worker is taken for lost for a whole worker timeout.
func (s *Server) heartbeatFailed() { s.live.failed(s.now()) }

// runsHere reports whether one of this process's built-in workers runs
// the run's job right now: it is alive, whatever its heartbeats say.
func (s *Server) runsHere(runID string) bool {
	_, ok := s.held.Load(runID)
	return ok
}

// holding records that a built-in worker runs the run's job, until the
// returned function is called.
func (s *Server) holding(runID string) (done func()) {
	s.held.Store(runID, struct{}{})
	return func() { s.held.Delete(runID) }
}
