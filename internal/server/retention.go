package server

import (
	"context"
	"time"

	"github.com/gantry-iac/gantry/internal/retention"

	"github.com/prometheus/client_golang/prometheus"
)

// Retention passes: the first soon after the start (a new setting shows
// its effect), then every pruneEvery, like the pruning of policy inputs.
const (
	pruneFirst = time.Minute
	pruneEvery = 10 * time.Minute
)

// prunedTotal is gantry_pruned_total: what the retention passes of this
// process deleted.
var prunedTotal = func() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gantry_pruned_total",
		Help: "Runs and state versions deleted by retention (--run-retention, --state-retention-versions) in this process, by kind."},
		[]string{"kind"})
	c.WithLabelValues("runs")
	c.WithLabelValues("state_versions")
	return c
}()

// retentionPolicy is what the flags keep.
func (s *Server) retentionPolicy() retention.Policy {
	return retention.Policy{RunAge: s.cfg.RunRetention, StateVersions: s.cfg.StateRetentionVersions}
}

// pruner runs the retention passes until ctx ends (nothing when every
// run and state version is kept, the default).
func (s *Server) pruner(ctx context.Context) {
	if !s.retentionPolicy().Enabled() {
		return
	}
	t := time.NewTimer(pruneFirst)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.prune(ctx)
		t.Reset(pruneEvery)
	}
}

// prune is one retention pass; the pruner logs and audits what it deleted.
func (s *Server) prune(ctx context.Context) {
	p := retention.New(s.db, s.log)
	p.Audit = s.audit.Hook()
	p.Now = s.now
	res, err := p.Prune(ctx, s.retentionPolicy())
	prunedTotal.WithLabelValues("runs").Add(float64(res.Runs))
	prunedTotal.WithLabelValues("state_versions").Add(float64(res.StateVersions))
	if err != nil && ctx.Err() == nil {
		s.log.Error("pruning history past the retention failed (the next pass tries again)", "err", err,
			"runs_pruned", res.Runs, "state_versions_pruned", res.StateVersions)
	}
}
