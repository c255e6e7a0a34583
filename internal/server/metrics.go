package server

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "gantry_http_requests_total", Help: "HTTP requests served, by method and status code.",
}, []string{"method", "code"})

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: 200}
		next.ServeHTTP(rec, r)
		method := r.Method
		switch method {
		case "GET", "POST", "PUT", "PATCH", "DELETE", "LOCK", "UNLOCK", "HEAD":
		default:
			method = "other"
		}
		httpRequests.WithLabelValues(method, strconv.Itoa(rec.code)).Inc()
	})
}

// runsCollector reports the number of runs per state at scrape time:
// every state a run can be in before it ends, with 0 when no run is in it,
// so that an idle system still exports the metric (its absence means that
// the database could not be read).
type runsCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (c runsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c runsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := c.s.db.Query(ctx, `SELECT state, COUNT(*) FROM runs WHERE state NOT IN `+run.TerminalSQL+` GROUP BY state`)
	if err != nil {
		c.s.log.Warn("collecting gantry_runs_active failed: the metric is left out of this scrape", "err", err)
		return
	}
	defer rows.Close()
	counts := map[string]float64{}
	for _, state := range run.States {
		if !run.Terminal(state) {
			counts[state] = 0
		}
	}
	for rows.Next() {
		var state string
		var n float64
		if rows.Scan(&state, &n) == nil {
			counts[state] = n
		}
	}
	if err := rows.Err(); err != nil {
		c.s.log.Warn("collecting gantry_runs_active failed: the metric is left out of this scrape", "err", err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, state)
	}
}

// driftCollector reports open drift, the age of each stack's last good
// drift check and whether its last check failed, at scrape time.
type driftCollector struct {
	metrics                            func(context.Context) ([]drift.Metric, error)
	log                                *slog.Logger
	drifted, age, lastTime, lastFailed *prometheus.Desc
}

func newDriftCollector(metrics func(context.Context) ([]drift.Metric, error), log *slog.Logger) driftCollector {
	return driftCollector{metrics: metrics, log: log,
		drifted: prometheus.NewDesc("gantry_drifted_resources", "Resources that drifted and were not reconciled yet, by stack, space and cloud (from the last drift detection run).",
			[]string{"stack", "space", "cloud"}, nil),
		age: prometheus.NewDesc("gantry_drift_check_age_seconds",
			"Seconds since the stack's last successful drift check ended (failed checks do not count; +Inf while none succeeded).",
			[]string{"stack", "space"}, nil),
		lastTime: prometheus.NewDesc("gantry_drift_last_check_timestamp_seconds", "When the stack's last drift check ended, successful or failed (Unix time).",
			[]string{"stack", "space"}, nil),
		lastFailed: prometheus.NewDesc("gantry_drift_last_check_failed", "1 when the stack's last drift check failed, else 0.",
			[]string{"stack", "space"}, nil),
	}
}

func (c driftCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.drifted
	ch <- c.age
	ch <- c.lastTime
	ch <- c.lastFailed
}

func (c driftCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := c.metrics(ctx)
	if err != nil {
		c.log.Warn("collecting drift metrics failed", "err", err)
		return
	}
	now := time.Now()
	for _, m := range ms {
		for cloud, n := range m.ByCloud {
			ch <- prometheus.MustNewConstMetric(c.drifted, prometheus.GaugeValue, float64(n), m.StackID, m.SpaceID, cloud)
		}
		age := math.Inf(1)
		if !m.LastGoodAt.IsZero() {
			age = now.Sub(m.LastGoodAt).Seconds()
		}
		failed := 0.0
		if m.LastFailed {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age, m.StackID, m.SpaceID)
		ch <- prometheus.MustNewConstMetric(c.lastTime, prometheus.GaugeValue, float64(m.LastCheckedAt.UnixNano())/1e9, m.StackID, m.SpaceID)
		ch <- prometheus.MustNewConstMetric(c.lastFailed, prometheus.GaugeValue, failed, m.StackID, m.SpaceID)
	}
}

func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), httpRequests, prunedTotal,
		runsCollector{s: s, desc: prometheus.NewDesc("gantry_runs_active", "Runs not yet terminal, by state.", []string{"state"}, nil)},
		newDriftCollector(func(ctx context.Context) ([]drift.Metric, error) { return s.drift.Metrics(ctx) }, s.log))
	reg.MustRegister(databaseUp(s.db, s.log))
	reg.MustRegister(s.replicaMetrics()...)
	reg.MustRegister(budgetMetrics(s.budget)...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// databaseUpTimeout bounds the query gantry_database_up makes at scrape
// time: a database slower than that to answer a trivial query is down for
// the clients too.
const databaseUpTimeout = time.Second

// databaseUp is gantry_database_up: 1 when the database answers a trivial
// query within databaseUpTimeout at scrape time, else 0 (and a warning
// says why). /healthz and /readyz do not look at the database; this does.
func databaseUp(d *db.DB, log *slog.Logger) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gantry_database_up",
		Help: "1 when the database answered a query within a second at scrape time, else 0."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), databaseUpTimeout)
			defer cancel()
			var one int
			if err := d.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
				log.Warn("the database did not answer at scrape time: gantry_database_up is 0", "err", err)
				return 0
			}
			return 1
		})
}

// budgetMetrics report the memory budget of large requests
// (--max-request-memory): what is held, and how many requests wait.
func budgetMetrics(b *httpx.Budget) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gantry_request_memory_held_bytes",
			Help: "Bytes of the large requests' memory budget (--max-request-memory) held now."},
			func() float64 { used, _ := b.Stats(); return float64(used) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gantry_request_memory_waiting",
			Help: "Large requests (states, plans, artifacts) waiting for the memory budget (--max-request-memory)."},
			func() float64 { _, waiting := b.Stats(); return float64(waiting) }),
	}
}
