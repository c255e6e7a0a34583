package workerapi_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// A commit message and a failure reason over 4096 bytes are cut before the
// character that straddles byte 4096: PostgreSQL refuses half of one.
func TestLongTextsCutOnACharacter(t *testing.T) {
	long := strings.Repeat("a", 4095) + "é tail"
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		st := f.stack(t, nil)
		r := f.create(t, st.ID, run.Proposed)
		job := claim(t, c)
		sha := strings.Repeat("0123456789", 4)
		if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Initializing, CommitSHA: sha, CommitMessage: long, CommitAuthor: strings.Repeat("b", 254) + "é"}); err != nil {
			t.Fatalf("Phase with a long commit message: %v", err)
		}
		got := f.get(t, r.ID)
		if got.CommitMessage != strings.Repeat("a", 4095) || got.CommitAuthor != strings.Repeat("b", 254) {
			t.Errorf("commit message %d bytes (valid %v), author %q", len(got.CommitMessage), utf8.ValidString(got.CommitMessage), got.CommitAuthor)
		}
		if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: long}); err != nil {
			t.Fatalf("Finish with a long reason: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Failed); !utf8.ValidString(got.Reason) || !strings.HasPrefix(got.Reason, "aaa") || len(got.Reason) > 4096 {
			t.Errorf("reason: %d bytes, valid %v", len(got.Reason), utf8.ValidString(got.Reason))
		}
	})
}

// A failure reason quoting a tool's NUL character ends the run: the
// client drops the character, which no request may carry.
func TestFinishReasonWithNUL(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Proposed)
		job := claim(t, c)
		if err := c.Finish(f.ctx, job, workerapi.FinishRequest{OK: false, Reason: "tofu said a\x00b"}); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if got := f.wantState(t, r.ID, run.Failed); got.Reason != "tofu said ab" {
			t.Errorf("reason = %q", got.Reason)
		}
	})
}

// Reports with values no plan or commit has are refused with 400 and
// change nothing.
func TestReportsRefuseImpossibleValues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Proposed)
		job := claim(t, c)
		sha := strings.Repeat("0123456789abcdef", 3)[:40]
		for _, req := range []workerapi.PhaseRequest{
			{State: run.Initializing, CommitSHA: "abc"},
			{State: run.Initializing, CommitSHA: strings.ToUpper(sha)},
			{State: run.Initializing, CommitSHA: sha + "0"},
			{State: run.Initializing, CommitSHA: sha, CommitAt: -1},
		} {
			se := wantStatus(t, c.Phase(f.ctx, job, req), 400)
			if !strings.Contains(se.Error(), "commit_") {
				t.Errorf("Phase %+v: %v, want a message naming the field", req, se)
			}
		}
		if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Initializing, CommitSHA: sha + strings.Repeat("a", 24)}); err != nil {
			t.Fatalf("Phase with a SHA-256 commit id: %v", err)
		}
		if err := c.Phase(f.ctx, job, workerapi.PhaseRequest{State: run.Planning}); err != nil {
			t.Fatal(err)
		}
		for _, req := range []workerapi.PlannedRequest{
			{HasChanges: true, Add: -5, Change: 99999999999},
			{HasChanges: true, Destroy: run.MaxDeltaCount + 1},
		} {
			_, err := c.Planned(f.ctx, job, req)
			if se := wantStatus(t, err, 400); !strings.Contains(se.Error(), "count of resources") {
				t.Errorf("Planned %+v: %v", req, se)
			}
		}
		f.wantState(t, r.ID, run.Planning)
		if next, err := c.Planned(f.ctx, job, workerapi.PlannedRequest{HasChanges: true, PlanPending: true}); err != nil || next.Next != "plan" {
			t.Fatalf("Planned pending = %+v, %v", next, err)
		}
		wantStatus(t, c.RecordDelta(f.ctx, job, workerapi.DeltaRequest{Add: 1, Change: -1}), 400)
		if err := c.RecordDelta(f.ctx, job, workerapi.DeltaRequest{Add: run.MaxDeltaCount, Change: 2}); err != nil {
			t.Fatalf("RecordDelta: %v", err)
		}
		if got := f.get(t, r.ID); got.Delta != (run.Delta{Add: run.MaxDeltaCount, Change: 2}) {
			t.Errorf("delta = %+v", got.Delta)
		}
	})
}
