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

// approveAt evaluates the stack's approval policies on r as if it waited
// in stage, and records what they left (receipts, flags).
func (f *fixture) approveAt(t *testing.T, r run.Run, stage string) run.Run {
	t.Helper()
	r.State = stage
	v, err := f.policies.Approval(f.ctx, r, stage)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Record(f.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	return f.get(t, r.ID)
}

// TestFlagResetNeedsEveryOwner: as Spacelift's policy flag reset, the
// policies that set a flag own it, a policy that does not own it cannot
// reset it, and it goes only once every owner reset it.
func TestFlagResetNeedsEveryOwner(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "owner-1", "APPROVAL", `package spacelift

approve := true
flag contains "s3-review" if input.run.state == "QUEUED"
reset_flag contains "s3-review" if input.run.state in {"UNCONFIRMED", "FINISHED"}
`)
		f.policy(t, "owner-2", "APPROVAL", `package spacelift

approve := true
flag contains "s3-review" if input.run.state == "QUEUED"
reset_flag contains "s3-review" if input.run.state == "FINISHED"
`)
		f.policy(t, "intruder", "APPROVAL", "package spacelift\n\napprove := true\nreset_flag contains \"s3-review\"\n")
		for _, p := range []string{"owner-1", "owner-2", "intruder"} {
			f.attach(t, p, st.ID)
		}
		r := f.create(t, st.ID, run.Tracked)
		if !slices.Equal(r.Flags, []string{"s3-review"}) {
			t.Fatalf("flags = %v: the intruder, which never set it, reset it", r.Flags)
		}
		if got := f.approveAt(t, r, run.Unconfirmed); !slices.Equal(got.Flags, []string{"s3-review"}) {
			t.Fatalf("flags = %v after one of two owners reset it, want it kept", got.Flags)
		}
		if got := f.approveAt(t, r, run.Finished); len(got.Flags) != 0 {
			t.Fatalf("flags = %v after both owners reset it, want none", got.Flags)
		}
		// Set again, it is owned again.
		if got := f.approveAt(t, r, run.Queued); !slices.Equal(got.Flags, []string{"s3-review"}) {
			t.Fatalf("flags = %v, want s3-review set again", got.Flags)
		}
	})
}

// TestFlagOwnersCarriedOver: a run a trigger policy starts carries the
// flags of the run that ended with their owners, and a push policy owns
// the flags it sets on the run it starts.
func TestFlagOwnersCarriedOver(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		up := f.stack(t, func(s *stack.Stack) { s.ID = "up"; s.Labels = []string{"chain"} })
		down := f.stack(t, func(s *stack.Stack) { s.ID = "down"; s.Labels = []string{"chain"} })
		f.policy(t, "pusher", "GIT_PUSH", "package spacelift\n\ntrack := true\nflag contains \"pushed\"\n")
		f.attach(t, "pusher", up.ID)
		f.policy(t, "next", "TRIGGER", "package spacelift\n\ntrigger contains \"down\" if input.stack.id == \"up\"\n", "autoattach:chain")
		f.policy(t, "reset-pushed", "APPROVAL", "package spacelift\n\napprove := true\nreset_flag contains \"pushed\"\n", "autoattach:chain")
		res, err := f.policies.NotifyPush(f.ctx, up.ID, policy.Push{Branch: "main", SHA: strings.Repeat("a", 40), AffectedFiles: []string{"main.tf"}},
			policy.Actor{Name: "api_key::ci"})
		if err != nil || res.Run == nil {
			t.Fatalf("push = %+v, %v", res, err)
		}
		if got := f.get(t, res.Run.ID); !slices.Equal(got.Flags, []string{"pushed"}) {
			t.Fatalf("pushed run's flags = %v: an approval policy that never set it reset it", got.Flags)
		}
		if _, err := f.runs.Cancel(f.ctx, res.Run.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		f.processEvents(t)
		runs, _, err := f.runs.List(f.ctx, run.Filter{Stack: down.ID, Limit: 10})
		if err != nil || len(runs) != 1 {
			t.Fatalf("down's runs = %d, %v", len(runs), err)
		}
		owners, err := f.policies.FlagOwners(f.ctx, runs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(runs[0].Flags, []string{"pushed"}) || !slices.Equal(owners["pushed"], []string{"pusher"}) {
			t.Fatalf("triggered run: flags %v owners %v, want [pushed] owned by pusher", runs[0].Flags, owners)
		}
	})
}

// TestSpaceliftRunFields: triggered_by is null for a run a push started
// (its record keeps who notified it), previous_run is missing on a
// stack's first run, request.remote_ip is the address that created the
// run, changes name their entity_vendor and data, and the stack's
// terraform_version is the version that last applied (null before).
func TestSpaceliftRunFields(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policy(t, "seen", "APPROVAL", sampleAll, "autoattach:*")
		f.policy(t, "plan-seen", "PLAN", "package spacelift\n\nsample := true\n", "autoattach:*")
		st := f.stack(t, func(s *stack.Stack) { s.Autodeploy = true })

		res, err := f.policies.NotifyPush(f.ctx, st.ID, policy.Push{Branch: "main", SHA: strings.Repeat("a", 40), AffectedFiles: []string{"main.tf"}},
			policy.Actor{Name: "api_key::ci", IP: "198.51.100.9"})
		if err != nil || res.Run == nil {
			t.Fatalf("push = %+v, %v", res, err)
		}
		if got := f.get(t, res.Run.ID).TriggeredBy; got != "push:api_key::ci" {
			t.Errorf("the pushed run's record: triggered_by = %q, want push:api_key::ci", got)
		}
		queued := f.inputs(t, "seen", res.Run.ID)[0]
		if v, ok := at(queued, "run").(map[string]any)["triggered_by"]; !ok || v != nil {
			t.Errorf("pushed run: triggered_by = %#v (present %v), want null", v, ok)
		}
		if v := at(queued, "stack.terraform_version"); v != nil {
			t.Errorf("before any apply: stack.terraform_version = %#v, want null", v)
		}
		next, first := f.plan(t, st, bucketPlan("private"))
		if next != run.NextApply {
			t.Fatalf("next = %s, want apply", next)
		}
		planned := f.inputs(t, "plan-seen", first.ID)[0]
		if _, ok := planned["spacelift"].(map[string]any)["previous_run"]; ok {
			t.Errorf("a stack's first run: previous_run present (%#v), want it missing", at(planned, "spacelift.previous_run"))
		}
		wantFields(t, "first plan", planned, map[string]any{"spacelift.request.remote_ip": "198.51.100.9", "spacelift.run.triggered_by": nil})
		changes, _ := at(planned, "spacelift.run.changes").([]any)
		if len(changes) != 1 {
			t.Fatalf("changes = %v", changes)
		}
		wantFields(t, "plan change", changes[0].(map[string]any), map[string]any{"entity.entity_vendor": "terraform", "entity.entity_type": "resource",
			"entity.data.provider_name": "registry.opentofu.org/hashicorp/aws", "entity.data.mode": "managed"})
		if _, err := f.runs.Finish(f.ctx, first.ID, worker, true, ""); err != nil {
			t.Fatal(err)
		}

		// A run made by hand, from another address: its plan sees the
		// first as previous_run (whose changes read the plan on their own
		// path), its own creator's address, and the version that applied.
		second, err := f.runs.Create(f.ctx, run.New{StackID: st.ID, Type: run.Tracked, TriggeredBy: "user::alice", Creator: run.Creator{IP: "203.0.113.7"}})
		if err != nil {
			t.Fatal(err)
		}
		wantFields(t, "manual run", f.inputs(t, "seen", second.ID)[0], map[string]any{"run.triggered_by": "user::alice", "stack.terraform_version": "1.10.7"})
		f.plan(t, st, bucketPlan("private"))
		planned = f.inputs(t, "plan-seen", second.ID)[0]
		wantFields(t, "second plan", planned, map[string]any{"spacelift.request.remote_ip": "203.0.113.7", "spacelift.previous_run.id": first.ID,
			"spacelift.stack.terraform_version": "1.10.7"})
		prev, _ := at(planned, "spacelift.previous_run.changes").([]any)
		if len(prev) != 1 {
			t.Fatalf("previous_run.changes = %v", prev)
		}
		wantFields(t, "previous run's change", prev[0].(map[string]any), map[string]any{"entity.entity_vendor": "terraform",
			"entity.data.provider_name": "registry.opentofu.org/hashicorp/aws"})
	})
}

// TestReviewAuthor: a review's author is the reviewer's login, and
// author_roles its roles in the run's space when it reviewed.
func TestReviewAuthor(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "admins", "APPROVAL", `package spacelift

approve if {
	some approval in input.reviews.current.approvals
	approval.author == "alice"
	some role in approval.author_roles
	role.slug == "space-admin"
}
sample := true
`)
		f.attach(t, "admins", st.ID)
		r := f.create(t, st.ID, run.Tracked)
		wantState(t, r, run.PendingReview)
		got, err := f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "user::bob", Roles: []policy.Role{{Slug: "space-writer", Name: "Space writer"}}}, "approve", "", "")
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.PendingReview)
		got, err = f.policies.AddReview(f.ctx, r.ID, policy.Actor{Name: "user::alice", Roles: []policy.Role{{Slug: "space-admin", Name: "Space admin"}}}, "approve", "", "")
		if err != nil {
			t.Fatal(err)
		}
		wantState(t, got, run.Ready)
		ins := f.inputs(t, "admins", r.ID)
		approvals, _ := at(ins[len(ins)-1], "reviews.current").(map[string]any)["approvals"].([]any)
		if len(approvals) != 2 {
			t.Fatalf("approvals = %v", approvals)
		}
		wantFields(t, "bob's review", approvals[0].(map[string]any), map[string]any{"author": "bob", "session.login": "bob"})
		roles, _ := approvals[0].(map[string]any)["author_roles"].([]any)
		if len(roles) != 1 || roles[0].(map[string]any)["slug"] != "space-writer" || roles[0].(map[string]any)["name"] != "Space writer" {
			t.Errorf("bob's author_roles = %v", roles)
		}
	})
}

// TestTriggerReceiptsNameTheirOwnRuns: each trigger policy's receipt tells
// only of the stacks it named.
func TestTriggerReceiptsNameTheirOwnRuns(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		up := f.stack(t, func(s *stack.Stack) { s.ID = "up"; s.Labels = []string{"chain"} })
		f.stack(t, func(s *stack.Stack) { s.ID = "db" })
		f.policy(t, "trig", "TRIGGER", "package spacelift\n\ntrigger contains \"db\" if input.run.state == \"FINISHED\"\n", "autoattach:chain")
		f.policy(t, "retry", "TRIGGER", `package spacelift

trigger contains input.stack.id if {
	input.run.state == "FAILED"
	is_null(input.run.triggered_by)
}
`, "autoattach:chain")
		f.policy(t, "nowhere", "TRIGGER", "package spacelift\n\ntrigger contains \"no-such-stack\"\n", "autoattach:chain")
		f.create(t, up.ID, run.Tracked)
		ended := f.finishNoChanges(t, up)
		f.processEvents(t)
		rcs, err := f.policies.Receipts(f.ctx, ended.ID)
		if err != nil {
			t.Fatal(err)
		}
		msgs := map[string]string{}
		for _, rc := range rcs {
			if rc.Type == "TRIGGER" {
				msgs[rc.PolicyID] = strings.Join(rc.Messages, "; ")
			}
		}
		if !strings.Contains(msgs["trig"], "triggered run") || strings.Contains(msgs["trig"], "no-such-stack") {
			t.Errorf("trig's receipt: %q, want only the run it triggered", msgs["trig"])
		}
		if msgs["retry"] != "" {
			t.Errorf("retry's receipt: %q, want nothing (it triggered nothing)", msgs["retry"])
		}
		if !strings.Contains(msgs["nowhere"], "no-such-stack not triggered") || strings.Contains(msgs["nowhere"], "triggered run") {
			t.Errorf("nowhere's receipt: %q, want only why no-such-stack was not triggered", msgs["nowhere"])
		}
	})
}

// TestDiscardWhilePendingReview: as in Spacelift, a run waiting for a
// review before it is confirmed can be discarded (and frees its stack); a
// run waiting for one before it started cannot (it is canceled).
func TestDiscardWhilePendingReview(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "gate", "APPROVAL", `package spacelift

approve if input.run.state == "QUEUED"
approve if count(input.reviews.current.approvals) > 1
`)
		f.attach(t, "gate", st.ID)
		r := f.create(t, st.ID, run.Tracked)
		if next, _ := f.plan(t, st, bucketPlan("private")); next != run.NextSave {
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
		waiting := f.create(t, st.ID, run.Tracked)
		wantState(t, waiting, run.Queued)
		if got, err = f.runs.Discard(f.ctx, r.ID, "user::carol"); err != nil {
			t.Fatalf("discarding a run pending review at UNCONFIRMED: %v", err)
		}
		wantState(t, got, run.Discarded)
		wantState(t, f.get(t, waiting.ID), run.Ready)

		other := f.stack(t, nil)
		f.policy(t, "hold", "APPROVAL", twoApprovals)
		f.attach(t, "hold", other.ID)
		held := f.create(t, other.ID, run.Tracked)
		wantState(t, held, run.PendingReview)
		_, err = f.runs.Discard(f.ctx, held.ID, "user::carol")
		wantKind(t, err, errs.Conflict)
		if !strings.Contains(err.Error(), "cancel") {
			t.Errorf("error = %v, want it to point to cancel", err)
		}
	})
}
