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
