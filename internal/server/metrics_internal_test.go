package server

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/drift"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
)

// The drift check age is that of the last good check: failed checks do not
// make it younger (the stale alert must fire while checks fail), and a
// stack none of whose checks succeeded is infinitely stale.
func TestDriftMetrics(t *testing.T) {
	now := time.Now()
	ms := []drift.Metric{
		{StackID: "good", SpaceID: "root", ByCloud: map[string]int{"aws": 1}, LastCheckedAt: now.Add(-time.Minute), LastGoodAt: now.Add(-time.Minute)},
		{StackID: "failing", SpaceID: "root", ByCloud: map[string]int{"aws": 2}, LastCheckedAt: now.Add(-time.Minute),
			LastGoodAt: now.Add(-10 * time.Hour), LastFailed: true},
		{StackID: "never", SpaceID: "root", ByCloud: map[string]int{}, LastCheckedAt: now.Add(-time.Minute), LastFailed: true},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newDriftCollector(func(context.Context) ([]drift.Metric, error) { return ms, nil }, slog.New(slog.DiscardHandler)))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			stack := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "stack" {
					stack = l.GetValue()
				}
			}
			if got[f.GetName()] == nil {
				got[f.GetName()] = map[string]float64{}
			}
			got[f.GetName()][stack] += m.GetGauge().GetValue()
		}
	}
	age, failed, last := got["gantry_drift_check_age_seconds"], got["gantry_drift_last_check_failed"], got["gantry_drift_last_check_timestamp_seconds"]
	if a := age["good"]; a < 59 || a > 120 {
		t.Errorf("age of a good check a minute old: %v", a)
	}
	if a := age["failing"]; a < 10*3600-1 || a > 10*3600+60 {
		t.Errorf("age of a stack whose last good check is 10h old and last check failed a minute ago: %v, want ~36000", a)
	}
	if a := age["never"]; !math.IsInf(a, 1) {
		t.Errorf("age of a stack whose checks all failed: %v, want +Inf", a)
	}
	if failed["good"] != 0 || failed["failing"] != 1 || failed["never"] != 1 {
		t.Errorf("gantry_drift_last_check_failed: %v", failed)
	}
	if want := float64(now.Add(-time.Minute).UnixNano()) / 1e9; math.Abs(last["failing"]-want) > 1 {
		t.Errorf("last check timestamp of the failing stack: %v, want %v (the failed check)", last["failing"], want)
	}
	if d := got["gantry_drifted_resources"]; d["good"] != 1 || d["failing"] != 2 {
		t.Errorf("gantry_drifted_resources: %v", d)
	}
}

// gantry_runs_active is read from the database at scrape time: when the
// database fails, the metric is left out and a warning says why, as for
// the drift metrics, instead of the metric silently disappearing.
func TestRunsActiveWarnsOnDatabaseError(t *testing.T) {
	d, err := db.Open(context.Background(), "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s := &Server{db: d, log: slog.New(slog.NewTextHandler(&log, nil))}
	reg := prometheus.NewRegistry()
	reg.MustRegister(runsCollector{s: s, desc: prometheus.NewDesc("gantry_runs_active", "", []string{"state"}, nil)})
	if _, err := reg.Gather(); err != nil || log.Len() != 0 {
		t.Fatalf("Gather on a working database: %v, log %q", err, log.String())
	}
	d.Close()
	families, err := reg.Gather()
	if err != nil || len(families) != 0 {
		t.Errorf("Gather = %v, %v; want no metric and no error", families, err)
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "collecting gantry_runs_active failed") {
		t.Errorf("no warning logged:\n%s", log.String())
	}
}

// gantry_runs_active is exported for every state a run can be in before
// it ends, with 0 when no run is in it: an idle system still has the
// metric, so that an alert on its absence fires only when the database
// cannot be read.
func TestRunsActiveIdleIsZero(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newRecoveryFixture(t, d)
		reg := prometheus.NewRegistry()
		reg.MustRegister(runsCollector{s: f.s, desc: prometheus.NewDesc("gantry_runs_active", "", []string{"state"}, nil)})
		gather := func() map[string]float64 {
			t.Helper()
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, fam := range families {
				for _, m := range fam.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
				}
			}
			return got
		}
		want := map[string]float64{}
		for _, state := range run.States {
			if !run.Terminal(state) {
				want[state] = 0
			}
		}
		if got := gather(); !maps.Equal(got, want) {
			t.Errorf("idle: gantry_runs_active = %v, want %v", got, want)
		}
		f.held(t, "", "")
		want[run.Preparing] = 1
		if got := gather(); !maps.Equal(got, want) {
			t.Errorf("one run PREPARING: gantry_runs_active = %v, want %v", got, want)
		}
	})
}

// gantry_database_up says at every scrape whether the database answers:
// 0 during an outage (/healthz and /readyz do not look), 1 again after.
func TestDatabaseUpMetric(t *testing.T) {
	gauge := func(t *testing.T, d *db.DB, log *bytes.Buffer) float64 {
		t.Helper()
		reg := prometheus.NewRegistry()
		reg.MustRegister(databaseUp(d, slog.New(slog.NewTextHandler(log, nil))))
		families, err := reg.Gather()
		if err != nil || len(families) != 1 || families[0].GetName() != "gantry_database_up" {
			t.Fatalf("Gather = %v, %v", families, err)
		}
		return families[0].GetMetric()[0].GetGauge().GetValue()
	}
	t.Run("postgres", func(t *testing.T) {
		url := dbtest.PostgresURL(t)
		d := dbtest.Open(t, url)
		var log bytes.Buffer
		if v := gauge(t, d, &log); v != 1 {
			t.Errorf("up: %v, want 1 (log %s)", v, log.String())
		}
		end := dbtest.Outage(t, url)
		start := time.Now()
		if v := gauge(t, d, &log); v != 0 {
			t.Errorf("during an outage: %v, want 0", v)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the scrape took %v during the outage", d)
		}
		if !strings.Contains(log.String(), "gantry_database_up is 0") {
			t.Errorf("no warning: %s", log.String())
		}
		end()
		if v := gauge(t, d, &log); v != 1 {
			t.Errorf("after the outage: %v, want 1", v)
		}
	})
	t.Run("sqlite", func(t *testing.T) {
		d, err := db.Open(context.Background(), "", t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		if v := gauge(t, d, &log); v != 1 {
			t.Errorf("up: %v, want 1", v)
		}
		d.Close()
		if v := gauge(t, d, &log); v != 0 {
			t.Errorf("closed: %v, want 0", v)
		}
	})
}

// The memory budget's metrics say what is held and how many wait.
func TestBudgetMetrics(t *testing.T) {
	b := httpx.NewBudget(100)
	release, err := b.Acquire(context.Background(), 60)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = b.Acquire(ctx, 50) }()
	reg := prometheus.NewRegistry()
	reg.MustRegister(budgetMetrics(b)...)
	got := map[string]float64{}
	deadline := time.Now().Add(10 * time.Second)
	for got["gantry_request_memory_waiting"] != 1 && time.Now().Before(deadline) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			got[f.GetName()] = f.GetMetric()[0].GetGauge().GetValue()
		}
		time.Sleep(time.Millisecond)
	}
	if got["gantry_request_memory_held_bytes"] != 60 || got["gantry_request_memory_waiting"] != 1 {
		t.Errorf("metrics = %v, want 60 bytes held and 1 waiting", got)
	}
	// A server without a budget reports none held.
	reg = prometheus.NewRegistry()
	reg.MustRegister(budgetMetrics(nil)...)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}
