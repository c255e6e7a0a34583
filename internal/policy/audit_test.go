package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
)

// Policy changes, run triggers, reviews and people's actions on runs are
// audited in the transaction of the change; a refused action leaves none.
func TestDomainAuditEvents(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		au := audit.NewService(d, nil)
		f.policies.Audit, f.runs.Audit = au, au
		st := f.stack(t, nil)
		f.policy(t, "gate", "APPROVAL", "package spacelift\n\napprove if count(input.reviews.current.approvals) > 0\n", "autoattach:*")
		if _, err := f.policies.Update(f.ctx, "gate", func(p *policy.Policy) error { p.Name = "Gate"; return nil }); err != nil {
			t.Fatal(err)
		}
		r := f.create(t, st.ID, run.Tracked)
		if _, err := f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "api_key::alice"}, "approve", "ok", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.Cancel(f.ctx, r.ID, "api_key::alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.Cancel(f.ctx, r.ID, "api_key::alice"); err == nil {
			t.Fatal("cancelled a canceled run")
		}
		if err := f.policies.Delete(f.ctx, "gate"); err != nil {
			t.Fatal(err)
		}
		evs, _, err := au.List(f.ctx, audit.Filter{}, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for i := len(evs) - 1; i >= 0; i-- {
			actions = append(actions, evs[i].Action)
		}
		want := []string{"policy.create", "policy.update", "run.trigger", "run.review", "run.cancel", "policy.delete"}
		if !slices.Equal(actions, want) {
			t.Fatalf("audit actions = %v, want %v", actions, want)
		}
		for _, ev := range evs {
			if ev.Action == "run.cancel" && (ev.SubjectID != r.ID || !strings.Contains(string(ev.Change), "CANCELED")) {
				t.Fatalf("cancel event = %+v (%s)", ev, ev.Change)
			}
		}
		if v, err := au.Verify(f.ctx); err != nil || !v.OK {
			t.Fatalf("verify = %+v, %v", v, err)
		}
	})
}
