package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// On PostgreSQL a server records every replicaEvery that it is alive and
// counts the other servers seen within replicaTimeout. It publishes its
// wake-ups (NOTIFY) only while there is another: alone, nobody would read
// them, and each costs the database a statement and a delivery back to
// the sender. A server that starts is seen by the others within
// replicaEvery; meanwhile its waiters re-read on their timers (a second).
const (
	replicaEvery   = 2 * time.Second
	replicaTimeout = 10 * time.Second
	replicaForget  = time.Hour // rows of servers gone this long are removed
)

// replicaMetrics are the gauge of live servers and the count of wake-ups
// published, read from the server's counters.
func (s *Server) replicaMetrics() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gantry_replicas", Help: "Servers alive on this database, this one included (always 1 on SQLite).",
		}, func() float64 { return float64(s.replicas.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "gantry_wakeups_published_total", Help: "Wake-up notifications sent to the other servers (PostgreSQL NOTIFY).",
		}, func() float64 { return float64(s.published.Load()) }),
	}
}

// seeReplicas records this server as alive and counts the others.
func (s *Server) seeReplicas(ctx context.Context, now time.Time) error {
	if _, err := s.db.Exec(ctx, `INSERT INTO replicas (instance, seen_at) VALUES ($1, $2)
		ON CONFLICT (instance) DO UPDATE SET seen_at = excluded.seen_at`, s.instance, now.UnixNano()); err != nil {
		return err
	}
	var n int
	if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM replicas WHERE instance <> $1 AND seen_at > $2`,
		s.instance, now.Add(-replicaTimeout).UnixNano()).Scan(&n); err != nil {
		return err
	}
	s.others.Store(n > 0)
	s.replicas.Store(int64(1 + n))
	return nil
}

// watchReplicas keeps the count of replicas current until ctx ends.
func (s *Server) watchReplicas(ctx context.Context) {
	t := time.NewTicker(replicaEvery)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if err := s.seeReplicas(ctx, now); err != nil {
			if ctx.Err() == nil {
				// Unsure: publish rather than leave another replica waiting.
				s.others.Store(true)
				s.live.failed(s.now()) // nor could heartbeats be recorded
				s.log.Warn("recording this server as alive failed", "err", err)
			}
			continue
		}
		if i%150 == 0 { // every five minutes
			_, _ = s.db.Exec(ctx, `DELETE FROM replicas WHERE seen_at < $1`, now.Add(-replicaForget).UnixNano())
		}
	}
}

// leaveReplicas removes this server's row at shutdown, so that the others
// stop publishing to it at their next look.
func (s *Server) leaveReplicas() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = s.db.Exec(ctx, `DELETE FROM replicas WHERE instance = $1`, s.instance)
}
