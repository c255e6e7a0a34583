package schedule

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
)

func TestTickScheduledDelete(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		at := time.Now().Add(time.Hour).Truncate(time.Second)

		// Nothing to destroy first: the stack goes at its time.
		st := f.stack(t, "-")
		f.ended(t, st, true)
		f.add(t, st.ID, NewSchedule{Kind: KindDelete, At: at})
		f.tick(t, at.Add(-time.Second))
		if !f.stackExists(t, st.ID) {
			t.Fatal("stack deleted before its time")
		}
		f.tick(t, at)
		if f.stackExists(t, st.ID) {
			t.Fatal("stack not deleted at its time")
		}
		if list, _ := f.svc.List(f.ctx, st.ID); len(list) != 0 {
			t.Fatalf("%d schedules left of the deleted stack", len(list))
		}

		// A run in progress: the delete waits for it, a minute at a time.
		busy := f.stack(t, "-")
		r := f.create(t, busy.ID, run.Tracked)
		sc := f.add(t, busy.ID, NewSchedule{Kind: KindDelete, At: at})
		f.tick(t, at)
		sc = f.schedule(t, sc)
		if !f.stackExists(t, busy.ID) || sc.Status != StatusActive || !strings.Contains(sc.LastNote, "not deleted yet") ||
			!sc.NextRunAt.Equal(at.Add(time.Minute)) || !sc.NextDue.Equal(at) {
			t.Fatalf("busy stack: status %s, note %q, next run %s, next due %s; want kept, retried at %s", sc.Status, sc.LastNote, sc.NextRunAt, sc.NextDue, at.Add(time.Minute))
		}
		if len(f.runsOf(t, busy.ID, false)) != 1 {
			t.Fatal("a scheduled delete without destroy queued a run")
		}
		f.end(t, r, true)
		f.tick(t, at.Add(30*time.Second))
		if !f.stackExists(t, busy.ID) {
			t.Fatal("deleted before the retry time")
		}
		f.tick(t, at.Add(time.Minute))
		if f.stackExists(t, busy.ID) {
			t.Fatal("not deleted once its run ended")
		}
	})
}

func TestTickScheduledDeleteDestroysFirst(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		at := time.Now().Add(time.Hour).Truncate(time.Second)
		st := f.stack(t, "-")
		f.ended(t, st, true)
		sc := f.add(t, st.ID, NewSchedule{Kind: KindDelete, At: at, DeleteResources: true})
		f.tick(t, at)
		runs := f.runsOf(t, st.ID, false)
		destroy := runs[len(runs)-1]
		if len(runs) != 2 || destroy.Type != run.Destroy || destroy.TriggeredBy != TriggerDelete {
			t.Fatalf("runs %v; want a DESTROY run by %s", runs, TriggerDelete)
		}
		sc = f.schedule(t, sc)
		if sc.Status != StatusWaiting || sc.LastRunID != destroy.ID || !sc.NextRunAt.IsZero() {
			t.Fatalf("status %s, last run %s, next run %s; want waiting for %s, never again", sc.Status, sc.LastRunID, sc.NextRunAt, destroy.ID)
		}
		f.tick(t, at.Add(time.Hour))
		if n := len(f.runsOf(t, st.ID, false)); n != 2 || !f.stackExists(t, st.ID) {
			t.Fatalf("%d runs after another tick; want no other run and the stack kept while it destroys", n)
		}

		// Planned with changes, waiting for confirmation: the scheduler
		// confirms its own destroy.
		f.claim(t, destroy)
		f.phase(t, destroy.ID, run.Initializing, run.Planning)
		if next, _, err := f.runs.Planned(f.ctx, destroy.ID, worker, true, run.Delta{Destroy: 3}, false); err != nil || next != run.NextSave {
			t.Fatalf("Planned = %q, %v", next, err)
		}
		if err := f.runs.PutArtifact(f.ctx, destroy.ID, run.ArtifactWorkspace, []byte("workspace")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.HandOff(f.ctx, destroy.ID, worker); err != nil {
			t.Fatal(err)
		}
		f.wantState(t, destroy.ID, run.Unconfirmed)
		f.tick(t, at.Add(time.Hour))
		f.wantState(t, destroy.ID, run.Confirmed)

		// Applying: still waiting.
		f.claim(t, destroy)
		f.wantState(t, destroy.ID, run.Applying)
		f.tick(t, at.Add(time.Hour))
		if !f.stackExists(t, st.ID) || f.schedule(t, sc).Status != StatusWaiting {
			t.Fatal("the stack went while its destroy run applied")
		}

		// Applied: the next tick deletes the stack.
		if _, err := f.runs.Finish(f.ctx, destroy.ID, worker, true, ""); err != nil {
			t.Fatal(err)
		}
		f.tick(t, at.Add(time.Hour))
		if f.stackExists(t, st.ID) {
			t.Fatal("stack kept after its destroy run finished")
		}
	})
}

func TestTickScheduledDeleteKeepsTheStackWhenDestroyFails(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		at := time.Now().Add(time.Hour).Truncate(time.Second)
		st := f.stack(t, "-")
		sc := f.add(t, st.ID, NewSchedule{Kind: KindDelete, At: at, DeleteResources: true})
		f.tick(t, at)
		sc = f.schedule(t, sc)
		destroy := f.get(t, sc.LastRunID)
		f.end(t, destroy, false)
		f.tick(t, at)
		sc = f.schedule(t, sc)
		if sc.Status != StatusDone || !strings.Contains(sc.LastNote, destroy.ID) || !strings.Contains(sc.LastNote, "FAILED") ||
			!strings.Contains(sc.LastNote, "kept") {
			t.Fatalf("status %s, note %q; want done, noting the failed destroy and the kept stack", sc.Status, sc.LastNote)
		}
		for range 2 {
			f.tick(t, at.Add(24*time.Hour))
		}
		if !f.stackExists(t, st.ID) || len(f.runsOf(t, st.ID, false)) != 1 || f.schedule(t, sc).Status != StatusDone {
			t.Fatal("a done scheduled delete acted again")
		}
		// Done, it no longer blocks scheduling another delete.
		f.add(t, st.ID, NewSchedule{Kind: KindDelete, At: at})
	})
}

// A scheduled delete at a time in the past would destroy at once (a
// mistyped year): refused, saying so; a few seconds ago is clock skew.
func TestAddScheduledDeleteInThePast(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, "-")
		for _, at := range []time.Time{time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Now().Add(-time.Minute)} {
			_, err := f.svc.Add(f.ctx, st.ID, "alice", NewSchedule{Kind: KindDelete, At: at, DeleteResources: true})
			if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "in the past") {
				t.Errorf("a delete at %s: %v, want refused: in the past", at, err)
			}
		}
		if list, _ := f.svc.List(f.ctx, st.ID); len(list) != 0 {
			t.Fatalf("%d schedules stored by refused requests", len(list))
		}
		sc := f.add(t, st.ID, NewSchedule{Kind: KindDelete, At: time.Now().Add(-ClockSkew / 2), DeleteResources: true})
		if sc.Status != StatusActive {
			t.Fatalf("a delete a few seconds ago (clock skew): %+v", sc)
		}
	})
}
