package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

const warnAll = `package spacelift

warn contains sprintf("%d changes need a look", [count(input.terraform.resource_changes)]) if {
	count(input.terraform.resource_changes) > 0
}
`

func TestPlanPolicyDenyFailsRun(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, func(s *stack.Stack) { s.Labels = []string{"guarded"} })
		f.policy(t, "deny-public", "PLAN", denyPublic, "autoattach:guarded")
		r := f.create(t, st.ID, run.Tracked)
		next, got := f.plan(t, st, bucketPlan("private", "public-read"))
		if next != run.NextDone {
			t.Fatalf("next = %s, want done", next)
		}
		wantState(t, got, run.Failed)
		if !strings.Contains(got.Reason, "bucket aws_s3_bucket.b1 is public") {
			t.Fatalf("reason = %q, want the deny message", got.Reason)
		}
		if len(got.Notes) == 0 || !strings.Contains(strings.Join(got.Notes, "\n"), "bucket aws_s3_bucket.b1 is public") {
			t.Fatalf("notes for the log = %q", got.Notes)
		}
		rcs, err := f.policies.Receipts(f.ctx, r.ID)
		if err != nil || len(rcs) != 1 || rcs[0].Outcome != "deny" || rcs[0].PolicyID != "deny-public" || rcs[0].SampleKey == "" {
			t.Fatalf("receipts = %+v, %v", rcs, err)
		}
		// A clean plan of the same stack passes.
		f.create(t, st.ID, run.Tracked)
		next, got = f.plan(t, st, bucketPlan("private"))
		if next != run.NextSave || got.State != run.Planning {
			t.Fatalf("clean plan: next %s state %s, want save while PLANNING", next, got.State)
		}
	})
}

func TestPlanWarnStopsAutodeploy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = true })
		f.policy(t, "warn-all", "PLAN", warnAll)
		f.attach(t, "warn-all", st.ID)
		f.create(t, st.ID, run.Tracked)
		next, got := f.plan(t, st, bucketPlan("private"))
		if next != run.NextSave {
			t.Fatalf("a warned autodeploy run: next = %s, want save (a person confirms)", next)
		}
		if !strings.Contains(strings.Join(got.Notes, "\n"), "1 changes need a look") {
			t.Fatalf("notes = %q", got.Notes)
		}
		// Without policies the autodeploy run applies at once.
		other := f.stack(t, func(s *stack.Stack) { s.Autodeploy = true })
		f.create(t, other.ID, run.Tracked)
		if next, _ := f.plan(t, other, bucketPlan("private")); next != run.NextApply {
			t.Fatalf("an autodeploy run without policies: next = %s, want apply", next)
		}
		// NeedsPlan makes the worker produce the plan JSON first.
		need, err := f.policies.NeedsPlan(f.ctx, run.Run{StackID: st.ID})
		if err != nil || !need {
			t.Fatalf("NeedsPlan = %v, %v", need, err)
		}
	})
}

const twoApprovals = `package spacelift

approve if count(input.reviews.current.approvals) >= 2
reject if count(input.reviews.current.rejections) > 0
`

func TestApprovalNeedsTwoReviews(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "two-approvals", "APPROVAL", twoApprovals)
		f.attach(t, "two-approvals", st.ID)
		r := f.create(t, st.ID, run.Tracked)
		wantState(t, r, run.PendingReview)
		if r.ReviewFrom != run.Queued {
			t.Fatalf("review_from = %q, want QUEUED", r.ReviewFrom)
		}
		// A second run waits behind the one pending review.
		r2 := f.create(t, st.ID, run.Tracked)
		wantState(t, r2, run.PendingReview)
		got, err := f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "api_key::alice"}, "approve", "fine", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.PendingReview)
		// The same reviewer twice still counts once.
		if got, err = f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "api_key::alice"}, "approve", "", ""); err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.PendingReview)
		if got, err = f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "api_key::bob"}, "approve", "", ""); err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.Ready)
		// A reject fails the other.
		if got, err = f.policies.AddReview(f.ctx, r2.ID, policy.Actor{Name: "api_key::carol"}, "REJECT", "not now", ""); err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.Failed)
		if !strings.Contains(got.Reason, "rejected") {
			t.Fatalf("reason = %q", got.Reason)
		}
		if _, err := f.policies.AddReview(f.ctx, r2.ID, policy.Actor{Name: "api_key::carol"}, "approve", "", ""); !errs.Is(err, errs.Conflict) {
			t.Fatalf("reviewing a failed run = %v, want Conflict", err)
		}
		if _, err := f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "api_key::carol"}, "maybe", "", ""); !errs.Is(err, errs.Invalid) {
			t.Fatalf("a review that neither approves nor rejects = %v, want Invalid", err)
		}
		rcs, _ := f.policies.Receipts(f.ctx, r.ID)
		var outcomes []string
		for _, rc := range rcs {
			outcomes = append(outcomes, rc.Outcome)
		}
		if want := []string{"undecided", "undecided", "undecided", "approve"}; !slices.Equal(outcomes, want) {
			t.Fatalf("approval receipts = %v, want %v", outcomes, want)
		}
	})
}

func TestApprovalAtUnconfirmed(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		// Approves at QUEUED, waits for a review at UNCONFIRMED.
		f.policy(t, "gate", "APPROVAL", `package spacelift

approve if input.run.state == "QUEUED"
approve if count(input.reviews.current.approvals) > 0
`)
		f.attach(t, "gate", st.ID)
		r := f.create(t, st.ID, run.Tracked)
		wantState(t, r, run.Ready)
		next, _ := f.plan(t, st, bucketPlan("private"))
		if next != run.NextSave {
			t.Fatalf("next = %s", next)
		}
		if err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactWorkspace, []byte("ws")); err != nil {
			t.Fatal(err)
		}
		got, err := f.runs.HandOff(f.ctx, r.ID, worker)
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.PendingReview)
		if got, err = f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "api_key::alice"}, "approve", "", ""); err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.Unconfirmed)
		if _, err := f.runs.Confirm(f.ctx, r.ID, "api_key::alice"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFlagsCarryAcrossTypes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "flagger", "APPROVAL", "package spacelift\n\napprove := true\n\nflag contains \"reviewed-by-policy\"\n")
		f.policy(t, "plan-reads-flags", "PLAN", `package spacelift

warn contains "flag seen" if "reviewed-by-policy" in input.spacelift.run.flags
reset_flag contains "reviewed-by-policy"
flag contains "planned"
`)
		f.attach(t, "flagger", st.ID)
		f.attach(t, "plan-reads-flags", st.ID)
		r := f.create(t, st.ID, run.Tracked)
		if !slices.Equal(r.Flags, []string{"reviewed-by-policy"}) {
			t.Fatalf("flags after approval = %v", r.Flags)
		}
		_, got := f.plan(t, st, bucketPlan("private"))
		if !slices.Contains(got.Notes, "  - flag seen") {
			t.Fatalf("the plan policy did not see the approval's flag: %q", got.Notes)
		}
		// The plan policy's reset_flag does not remove a flag it never set:
		// only the flag's owner (flagger) can (TestFlagResetNeedsEveryOwner).
		if got := f.get(t, r.ID); !slices.Equal(got.Flags, []string{"planned", "reviewed-by-policy"}) {
			t.Fatalf("flags after plan = %v, want [planned reviewed-by-policy]", got.Flags)
		}
	})
}

var _ = policy.Approve

// A server alone on its database answers the gates' "does any policy of
// this type exist" from its cache, which every change made through it
// clears at once; a server sharing the database asks the database, and so
// sees a policy another replica just wrote.
func TestGatesAloneUseTheCache(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		shared := false
		f.policies.Shared = func() bool { return shared }
		st := f.stack(t, nil)
		if need, err := f.policies.NeedsPlan(f.ctx, run.Run{StackID: st.ID}); err != nil || need {
			t.Fatalf("NeedsPlan without policies = %v, %v", need, err)
		}
		// Made through this server: seen at once.
		f.policy(t, "warn-all", "PLAN", warnAll)
		f.attach(t, "warn-all", st.ID)
		if need, err := f.policies.NeedsPlan(f.ctx, run.Run{StackID: st.ID}); err != nil || !need {
			t.Fatalf("NeedsPlan right after a plan policy was made here = %v, %v", need, err)
		}
		// Approval policies written behind this server's back (another
		// replica whose wake-up was lost): alone, the cache does not know;
		// shared, the database is asked.
		if _, err := d.Exec(f.ctx, `INSERT INTO policies (id, name, space_id, type, body, engine, engine_set, labels, description, version, created_at, updated_at)
			SELECT 'reject-elsewhere', 'x', space_id, 'APPROVAL', $1, engine, engine_set, '["autoattach:*"]', '', 1, created_at, updated_at FROM policies WHERE id = 'warn-all'`,
			"package spacelift\n\nreject if true\n"); err != nil {
			t.Fatal(err)
		}
		r := f.create(t, st.ID, run.Tracked)
		if v, err := f.policies.Approval(f.ctx, r, run.Queued); err != nil || v.Outcome != "" {
			t.Fatalf("alone, an approval policy written elsewhere was seen before any wake-up: %+v, %v", v, err)
		}
		shared = true
		if v, err := f.policies.Approval(f.ctx, r, run.Queued); err != nil || v.Outcome == "" {
			t.Fatalf("sharing the database, the approval policy written elsewhere was not seen: %+v, %v", v, err)
		}
	})
}
