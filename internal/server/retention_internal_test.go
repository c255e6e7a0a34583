package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"

	"github.com/prometheus/client_golang/prometheus"
)

// A retention pass of the server deletes the runs past --run-retention,
// counts them in gantry_pruned_total and records them as gantry in the
// audit trail; with retention off (the default) the pruner does nothing.
func TestServerPrune(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newRecoveryFixture(t, d)
		s := f.s
		s.audit = audit.NewService(d, nil)
		st, err := f.stacks.Create(f.ctx, stack.Stack{ID: "web", Repository: "https://example.com/infra.git"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for range 3 {
			r, err := s.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Proposed, TriggeredBy: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Exec(f.ctx, `UPDATE runs SET state = 'FINISHED' WHERE id = $1`, r.ID); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		s.now = func() time.Time { return time.Now().Add(48 * time.Hour) }

		// Off: the pruner returns at once and deletes nothing.
		done := make(chan struct{})
		go func() { s.pruner(context.Background()); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the pruner runs with retention off")
		}

		s.cfg.RunRetention = 24 * time.Hour
		before := prunedRuns(t)
		s.prune(f.ctx)
		if got := prunedRuns(t) - before; got != 2 {
			t.Fatalf("gantry_pruned_total{kind=\"runs\"} grew by %v, want 2", got)
		}
		for i, id := range ids {
			_, err := s.runs.Get(f.ctx, id)
			if gone := err != nil; gone != (i < 2) {
				t.Errorf("run %d: Get = %v", i, err)
			}
		}
		var actor, change string
		if err := d.QueryRow(f.ctx, `SELECT actor, change FROM audit_events WHERE action = 'run.prune'`).Scan(&actor, &change); err != nil {
			t.Fatal(err)
		}
		if actor != audit.System || !strings.Contains(change, `"runs":2`) {
			t.Fatalf("run.prune event by %s: %s", actor, change)
		}
		if !strings.Contains(f.log.String(), "pruned runs past the run retention") {
			t.Fatalf("log: %s", f.log.String())
		}
	})
}

// prunedRuns is gantry_pruned_total{kind="runs"} now, as scraped.
func prunedRuns(t *testing.T) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prunedTotal)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "gantry_pruned_total" && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == "runs" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatal("gantry_pruned_total{kind=\"runs\"} is not exported")
	return 0
}
