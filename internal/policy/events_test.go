package policy_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// finish takes the stack's next run through a no-change plan to FINISHED.
func (f *fixture) finishNoChanges(t *testing.T, st stack.Stack) run.Run {
	t.Helper()
	_, r := f.plan(t, st, map[string]any{"format_version": "1.2", "resource_changes": []any{}})
	wantState(t, r, run.Finished)
	return r
}

// Trigger: every stack labelled depends-on:<finished stack>.
const triggerDependents = `package spacelift

trigger contains stack.id if {
	input.run.state == "FINISHED"
	some stack in input.stacks
	some label in stack.labels
	label == concat(":", ["depends-on", input.stack.id])
}
`

func TestTriggerPolicyWithLoopGuard(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		// a -> b -> a: a cycle the workflow must stop.
		a := f.stack(t, func(s *stack.Stack) { s.ID = "aaa"; s.Labels = []string{"chain", "depends-on:bbb"} })
		b := f.stack(t, func(s *stack.Stack) { s.ID = "bbb"; s.Labels = []string{"chain", "depends-on:aaa"} })
		f.policy(t, "dependents", "TRIGGER", triggerDependents, "autoattach:chain")
		first := f.create(t, a.ID, run.Tracked)
		f.finishNoChanges(t, a)
		f.processEvents(t)
		runs, _, err := f.runs.List(f.ctx, run.Filter{Stack: b.ID, Limit: 10})
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs of b = %+v, %v; want one triggered run", runs, err)
		}
		triggered := runs[0]
		if triggered.WorkflowID != first.ID || triggered.Type != run.Tracked || !strings.HasPrefix(triggered.TriggeredBy, "trigger_policy:") {
			t.Fatalf("triggered run = %+v", triggered)
		}
		f.finishNoChanges(t, b)
		f.processEvents(t)
		if runs, _, _ := f.runs.List(f.ctx, run.Filter{Stack: a.ID, Limit: 10}); len(runs) != 1 {
			t.Fatalf("the workflow triggered stack a again: %d runs", len(runs))
		}
		rcs, err := f.policies.Receipts(f.ctx, triggered.ID)
		if err != nil || len(rcs) != 1 || !strings.Contains(strings.Join(rcs[0].Messages, "\n"), "loop protection") {
			t.Fatalf("receipt of b's trigger evaluation = %+v, %v; want a loop protection note", rcs, err)
		}
		st, err := f.policies.EventStatus(f.ctx)
		if err != nil || st["PENDING"] != 0 || st["FAILED"] != 0 {
			t.Fatalf("event status = %v, %v", st, err)
		}
	})
}

const inboxOnFailure = `package spacelift

inbox contains {"title": sprintf("Run %s failed", [input.run_updated.run.id]), "body": input.run_updated.note, "severity": "ERROR"} if {
	input.run_updated.state == "FAILED"
}

webhook contains {"endpoint_id": "hook", "payload": {"run": input.run_updated.run.id, "state": input.run_updated.state}} if {
	input.run_updated.state == "FAILED"
}
`

func TestNotificationPolicyEnqueues(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "deny-public", "PLAN", denyPublic)
		f.attach(t, "deny-public", st.ID)
		f.policy(t, "on-failure", "NOTIFICATION", inboxOnFailure)
		if _, err := f.notify.CreateEndpoint(f.ctx, notify.Endpoint{ID: "hook", SpaceID: "root", Kind: notify.KindWebhook, URL: "http://127.0.0.1:1/hook", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		r := f.create(t, st.ID, run.Tracked)
		_, got := f.plan(t, st, bucketPlan("public-read"))
		wantState(t, got, run.Failed)
		f.processEvents(t)
		items, _, err := f.notify.ListInbox(f.ctx, notify.InboxFilter{RunID: r.ID})
		if err != nil || len(items) != 1 || items[0].Severity != "ERROR" || !strings.Contains(items[0].Body, "is public") {
			t.Fatalf("inbox = %+v, %v; want one ERROR item saying why", items, err)
		}
		ds, _, err := f.notify.ListDeliveries(f.ctx, notify.DeliveryFilter{RunID: r.ID})
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries = %+v, %v", ds, err)
		}
		var body map[string]any
		if err := json.Unmarshal([]byte(ds[0].Body), &body); err != nil || body["run"] != r.ID || body["state"] != "FAILED" {
			t.Fatalf("webhook body = %s (%v)", ds[0].Body, err)
		}
	})
}

// teamsAndEmailOnFailure routes a failed run to a Teams endpoint and to an
// email endpoint (with its own recipients), and a rule with recipients
// that are no addresses.
const teamsAndEmailOnFailure = `package spacelift

teams contains {"channel_id": e.id, "title": sprintf("Run %s failed", [input.run_updated.run.id]), "message": input.run_updated.note} if {
	input.run_updated.state == "FAILED"
	some e in input.webhook_endpoints
	e.kind == "teams"
}

email contains {"endpoint_id": "ops-mail", "subject": sprintf("[gantry] %s failed", [input.run_updated.stack.id]), "body": input.run_updated.urls.run, "to": ["oncall@example.com"]} if {
	input.run_updated.state == "FAILED"
}

email contains {"endpoint_id": "ops-mail", "subject": "bad", "to": [1]} if {
	input.run_updated.state == "FAILED"
}
`

func TestNotificationPolicyTeamsAndEmail(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policies.PublicURL = "https://gantry.example.com/"
		st := f.stack(t, nil)
		f.policy(t, "deny-public", "PLAN", denyPublic)
		f.attach(t, "deny-public", st.ID)
		f.policy(t, "on-failure", "NOTIFICATION", teamsAndEmailOnFailure)
		for _, e := range []notify.Endpoint{
			{ID: "ops-teams", Kind: notify.KindTeams, URL: "http://127.0.0.1:1/webhookb2/x", Enabled: true},
			{ID: "ops-mail", Kind: notify.KindEmail, Enabled: true, Email: notify.EmailSettings{Host: "127.0.0.1", Port: 1, TLS: notify.TLSNone,
				From: "gantry@example.com", To: []string{"ops@example.com"}}},
		} {
			if _, err := f.notify.CreateEndpoint(f.ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		r := f.create(t, st.ID, run.Tracked)
		_, got := f.plan(t, st, bucketPlan("public-read"))
		wantState(t, got, run.Failed)
		f.processEvents(t)
		ds, _, err := f.notify.ListDeliveries(f.ctx, notify.DeliveryFilter{RunID: r.ID})
		if err != nil || len(ds) != 3 {
			t.Fatalf("deliveries = %+v, %v", ds, err)
		}
		runURL := "https://gantry.example.com/api/v1/runs/" + r.ID
		var sawTeams, sawEmail, sawBad bool
		for _, dl := range ds {
			switch {
			case dl.Kind == notify.KindTeams:
				sawTeams = true
				if !strings.Contains(dl.Body, `"text":"Run `+r.ID+` failed","weight":"Bolder"`) || !strings.Contains(dl.Body, "is public") ||
					!strings.Contains(dl.Body, `{"type":"Action.OpenUrl","title":"Open run","url":"`+runURL+`"}`) || dl.Status == notify.StatusFailed && len(dl.Attempts) == 0 {
					t.Errorf("teams delivery %+v", dl)
				}
			case dl.Kind == notify.KindEmail && dl.Method == "SMTP" && strings.Contains(dl.Body, "oncall@example.com"):
				sawEmail = true
				var doc map[string]any
				if err := json.Unmarshal([]byte(dl.Body), &doc); err != nil || doc["subject"] != "[gantry] "+st.ID+" failed" || doc["body"] != runURL {
					t.Errorf("email delivery %+v (%v)", dl, err)
				}
			case dl.Kind == notify.KindEmail:
				sawBad = true
				if dl.Status != notify.StatusFailed || !strings.Contains(dl.Error, `the to address "1" is not an email address`) {
					t.Errorf("email with a bad recipient: %+v", dl)
				}
			}
		}
		if !sawTeams || !sawEmail || !sawBad {
			t.Errorf("deliveries %+v", ds)
		}
	})
}

func TestPushPolicies(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, func(s *stack.Stack) { s.ProjectRoot = "infra/prod" })
		sha := strings.Repeat("a", 40)
		for _, tc := range []struct {
			name string
			push policy.Push
			want string
			typ  string
		}{
			{"tracked branch in root", policy.Push{Branch: "main", SHA: sha, AffectedFiles: []string{"infra/prod/main.tf"}}, "track", run.Tracked},
			{"outside root", policy.Push{Branch: "main", SHA: sha, AffectedFiles: []string{"docs/readme.md", "infra/production/x.tf"}}, "ignore", ""},
			{"other branch", policy.Push{Branch: "feature", SHA: sha, AffectedFiles: []string{"infra/prod/x.tf"}}, "propose", run.Proposed},
			{"tag", policy.Push{Tag: "v1.0.0", SHA: sha, AffectedFiles: []string{"infra/prod/x.tf"}}, "ignore", ""},
		} {
			res, err := f.policies.NotifyPush(f.ctx, st.ID, tc.push, policy.Actor{Name: "tester"})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if res.Action != tc.want || !res.Default || (res.Run == nil) != (tc.typ == "") || res.Run != nil && res.Run.Type != tc.typ {
				t.Errorf("%s: result = %+v, want %s", tc.name, res, tc.want)
			}
		}
		// A push policy: only pushes whose message says "deploy" track;
		// everything else is ignored with a message.
		f.policy(t, "deploy-word", "GIT_PUSH", `package spacelift

track if contains(input.push.message, "deploy")
ignore if not track
message := "say deploy to deploy" if not track
`)
		f.attach(t, "deploy-word", st.ID)
		res, err := f.policies.NotifyPush(f.ctx, st.ID, policy.Push{Branch: "main", SHA: sha, Message: "fix typo", AffectedFiles: []string{"infra/prod/main.tf"}}, policy.Actor{Name: "tester"})
		if err != nil || res.Action != "ignore" || res.Default || res.Message != "say deploy to deploy" || res.Run != nil {
			t.Fatalf("ignored push = %+v, %v", res, err)
		}
		res, err = f.policies.NotifyPush(f.ctx, st.ID, policy.Push{Branch: "main", SHA: sha, Message: "deploy it", AffectedFiles: []string{"README"}}, policy.Actor{Name: "tester"})
		if err != nil || res.Action != "track" || res.Run == nil || res.Run.CommitSHA != sha || len(res.Receipts) != 1 {
			t.Fatalf("tracked push = %+v, %v", res, err)
		}
	})
}

func TestSimulateAndReplay(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "deny-public", "PLAN", denyPublic)
		f.attach(t, "deny-public", st.ID)
		f.create(t, st.ID, run.Tracked)
		f.plan(t, st, bucketPlan("public-read"))
		f.create(t, st.ID, run.Tracked)
		f.plan(t, st, bucketPlan("private"))
		samples, err := f.policies.Samples(f.ctx, "deny-public", "", 10)
		if err != nil || len(samples) != 2 {
			t.Fatalf("samples = %+v, %v", samples, err)
		}
		denied := samples[1] // newest first
		if denied.Outcome != "deny" {
			t.Fatalf("older sample outcome = %s", denied.Outcome)
		}
		// The stored body on its own sample: no change.
		sim, err := f.policies.Simulate(f.ctx, "deny-public", nil, denied.Key, "")
		if err != nil || sim.Decision.Outcome != "deny" || len(sim.Changes) != 0 {
			t.Fatalf("simulate stored body = %+v, %v", sim, err)
		}
		// An edited body that allows public-read: the decision changes.
		edited := strings.Replace(denyPublic, `"public-read"`, `"public-read-write"`, 1)
		sim, err = f.policies.Simulate(f.ctx, "deny-public", nil, denied.Key, edited)
		if err != nil || sim.Decision.Outcome != "allow" || !sim.Edited || len(sim.Changes) == 0 || !strings.Contains(sim.Changes[0], "outcome: deny -> allow") {
			t.Fatalf("simulate edited body = %+v, %v", sim, err)
		}
		items, n, err := f.policies.Replay(f.ctx, "deny-public", edited, time.Now().Add(-time.Hour))
		if err != nil || n != 2 || len(items) != 1 || items[0].SampleKey != denied.Key || items[0].Before != "deny" || items[0].After != "allow" {
			t.Fatalf("replay = %+v (%d evaluated), %v", items, n, err)
		}
		// Simulate on a hand-written input.
		sim, err = f.policies.Simulate(f.ctx, "deny-public", []byte(`{"terraform": {"resource_changes": [{"address": "x", "change": {"after": {"acl": "public-read"}}}]}}`), "", "")
		if err != nil || sim.Decision.Outcome != "deny" || sim.Recorded != nil {
			t.Fatalf("simulate input = %+v, %v", sim, err)
		}
		if _, err := f.policies.Simulate(f.ctx, "deny-public", []byte(`{not json`), "", ""); err == nil {
			t.Fatal("simulate accepted malformed JSON")
		}
	})
}

func TestSampleRule(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policies.SampleLast = 0 // keep only what policies ask for
		f.policy(t, "sampler", "PLAN", `package spacelift

warn contains "public" if {
	some r in input.terraform.resource_changes
	r.change.after.acl == "public-read"
}

sample if count(warn) > 0
`, "autoattach:*")
		quiet, loud := f.stack(t, nil), f.stack(t, nil)
		f.create(t, quiet.ID, run.Proposed)
		f.plan(t, quiet, bucketPlan("private"))
		if got, _ := f.policies.Samples(f.ctx, "sampler", "", 10); len(got) != 0 {
			t.Fatalf("a policy that did not ask was sampled: %+v", got)
		}
		r := f.create(t, loud.ID, run.Proposed)
		f.plan(t, loud, bucketPlan("public-read"))
		got, err := f.policies.Samples(f.ctx, "sampler", "", 10)
		if err != nil || len(got) != 1 || !got[0].Explicit || got[0].RunID != r.ID || got[0].Outcome != "warn" {
			t.Fatalf("samples = %+v, %v; want the evaluation that said sample", got, err)
		}
		sm, err := f.policies.Sample(f.ctx, "sampler", got[0].Key)
		if err != nil || !strings.Contains(string(sm.Input), "public-read") || !strings.Contains(string(sm.Result), `"sample":true`) {
			t.Fatalf("sample = %s / %s, %v", sm.Input, sm.Result, err)
		}
	})
}

// A trigger policy may only start stacks that could use it, and sees only
// those; a push policy may only cancel its own stack's runs.
func TestTriggerAndCancelScope(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for _, sp := range []space.Space{{ID: "team-a", Parent: space.Root}, {ID: "prod", Parent: space.Root}} {
			if _, err := f.spaces.Create(f.ctx, sp); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.policies.Create(f.ctx, policy.Policy{ID: "reach", Space: "team-a", Type: "TRIGGER", Labels: []string{"autoattach:*"}, Body: `package spacelift

trigger contains "prod-db"
trigger contains "no-such-stack"
trigger contains "team-b"

seen contains s.id if some s in input.stacks
`}); err != nil {
			t.Fatal(err)
		}
		a := f.stack(t, func(s *stack.Stack) { s.ID, s.Space = "team-a1", "team-a" })
		f.stack(t, func(s *stack.Stack) { s.ID, s.Space = "team-b", "team-a" })
		f.stack(t, func(s *stack.Stack) { s.ID, s.Space = "prod-db", "prod" })
		r := f.create(t, a.ID, run.Tracked)
		f.finishNoChanges(t, a)
		f.processEvents(t)
		if runs, _, _ := f.runs.List(f.ctx, run.Filter{Stack: "prod-db", Limit: 5}); len(runs) != 0 {
			t.Fatalf("a policy of team-a triggered a stack of prod: %+v", runs)
		}
		if runs, _, _ := f.runs.List(f.ctx, run.Filter{Stack: "team-b", Limit: 5}); len(runs) != 1 {
			t.Fatalf("team-b runs = %d, want 1", len(runs))
		}
		rcs, _ := f.policies.Receipts(f.ctx, r.ID)
		if len(rcs) != 1 || !strings.Contains(strings.Join(rcs[0].Messages, "\n"), "stack prod-db not triggered") {
			t.Fatalf("receipts = %+v", rcs)
		}
		// A stack the policy's space does not see reads as one that does
		// not exist: the receipt names no space and tells them apart.
		notes := strings.Join(rcs[0].Messages, "\n")
		hidden, missing := "", ""
		for _, m := range rcs[0].Messages {
			if rest, ok := strings.CutPrefix(m, "stack prod-db not triggered: "); ok {
				hidden = rest
			}
			if rest, ok := strings.CutPrefix(m, "stack no-such-stack not triggered: "); ok {
				missing = rest
			}
		}
		if hidden == "" || hidden != missing || strings.Contains(notes, "prod\n") || strings.Contains(notes, "space prod") {
			t.Fatalf("a hidden stack and a missing one read differently: %q", notes)
		}
		sm, _ := f.policies.Samples(f.ctx, "reach", "", 1)
		full, _ := f.policies.Sample(f.ctx, "reach", sm[0].Key)
		if strings.Contains(string(full.Result), `"seen":["prod-db"`) || !strings.Contains(string(full.Result), `"seen":["team-a1","team-b"]`) {
			t.Fatalf("input.stacks shows a stack of another space: %s", full.Result)
		}

		// Push cancel: only this stack's runs that have not started.
		other := f.stack(t, nil)
		victim := f.create(t, other.ID, run.Proposed)
		st := f.stack(t, nil)
		mine := f.create(t, st.ID, run.Proposed)
		f.policy(t, "canceller", "GIT_PUSH", `package spacelift

cancel contains run.id if some run in input.in_progress
cancel contains "`+victim.ID+`"
ignore := true
`)
		f.attach(t, "canceller", st.ID)
		res, err := f.policies.NotifyPush(f.ctx, st.ID, policy.Push{Branch: "main", SHA: strings.Repeat("b", 40)}, policy.Actor{Name: "tester"})
		if err != nil || len(res.Canceled) != 1 || res.Canceled[0] != mine.ID {
			t.Fatalf("canceled %v, %v; want only %s", res.Canceled, err, mine.ID)
		}
		wantState(t, f.get(t, victim.ID), run.Ready)
	})
}

const badRuleValues = `package spacelift

inbox contains {"title": "critical", "severity": "CRITICAL"} if input.run_updated.state == "FAILED"

inbox contains {"title": "numbered", "severity": 3} if input.run_updated.state == "FAILED"

inbox contains {"title": "fine", "severity": "warning"} if input.run_updated.state == "FAILED"

webhook contains {"endpoint_id": "hook", "headers": {"X-Num": 5, "X-Ok": "yes"}} if input.run_updated.state == "FAILED"

webhook contains {"endpoint_id": "hook", "method": 7} if input.run_updated.state == "FAILED"
`

// A rule value of the wrong kind is not read as empty or as a default: the
// message is recorded as a FAILED delivery that says why.
func TestNotificationRuleValuesRefused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "deny-public", "PLAN", denyPublic)
		f.attach(t, "deny-public", st.ID)
		f.policy(t, "bad-values", "NOTIFICATION", badRuleValues)
		if _, err := f.notify.CreateEndpoint(f.ctx, notify.Endpoint{ID: "hook", SpaceID: "root", Kind: notify.KindWebhook, URL: "http://127.0.0.1:1/hook", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		r := f.create(t, st.ID, run.Tracked)
		_, got := f.plan(t, st, bucketPlan("public-read"))
		wantState(t, got, run.Failed)
		f.processEvents(t)
		items, _, err := f.notify.ListInbox(f.ctx, notify.InboxFilter{RunID: r.ID})
		if err != nil || len(items) != 1 || items[0].Title != "fine" || items[0].Severity != notify.SeverityWarning {
			t.Fatalf("inbox = %+v, %v; want only the item with a known severity", items, err)
		}
		ds, _, err := f.notify.ListDeliveries(f.ctx, notify.DeliveryFilter{RunID: r.ID})
		if err != nil {
			t.Fatal(err)
		}
		var reasons []string
		for _, dl := range ds {
			if dl.Status != notify.StatusFailed {
				t.Errorf("delivery %s (%s) is %s, want FAILED: %s", dl.ID, dl.Kind, dl.Status, dl.Error)
			}
			reasons = append(reasons, dl.Kind+": "+dl.Error)
		}
		slices.Sort(reasons)
		want := []string{
			`inbox: inbox severity "CRITICAL" is not one of INFO, WARNING, ERROR (the inbox item was not stored)`,
			`inbox: the inbox rule's severity must be a string, got 3 (the inbox item was not stored)`,
			`webhook: the webhook rule's header "X-Num" must be a string, got 5`,
			`webhook: the webhook rule's method must be a string, got 7`,
		}
		if !slices.Equal(reasons, want) {
			t.Errorf("deliveries:\n%s\nwant:\n%s", strings.Join(reasons, "\n"), strings.Join(want, "\n"))
		}
	})
}

// Every run update carries its change's number in the run's timeline
// (run_updated.sequence), so that receivers can order a run's messages;
// the history given is the run's up to that change, even for changes made
// at the same instant.
func TestNotificationSequence(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		st := f.stack(t, nil)
		f.policy(t, "deny-public", "PLAN", denyPublic)
		f.attach(t, "deny-public", st.ID)
		f.policy(t, "every-change", "NOTIFICATION", `package spacelift

webhook contains {"endpoint_id": "hook", "payload": input.run_updated} if true
`)
		if _, err := f.notify.CreateEndpoint(f.ctx, notify.Endpoint{ID: "hook", SpaceID: "root", Kind: notify.KindWebhook, URL: "http://127.0.0.1:1/hook", Enabled: true}); err != nil {
			t.Fatal(err)
		}
		r := f.create(t, st.ID, run.Tracked)
		_, got := f.plan(t, st, bucketPlan("public-read"))
		wantState(t, got, run.Failed)
		f.processEvents(t)
		ts, err := f.runs.Transitions(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		ds, _, err := f.notify.ListDeliveries(f.ctx, notify.DeliveryFilter{RunID: r.ID})
		if err != nil || len(ds) != len(ts) {
			t.Fatalf("%d deliveries (%v) for %d changes", len(ds), err, len(ts))
		}
		seen := map[int]bool{}
		for _, dl := range ds {
			var body struct {
				State    string `json:"state"`
				Sequence int    `json:"sequence"`
				Run      struct {
					History []struct{ State string } `json:"states_history"`
				} `json:"run"`
			}
			if err := json.Unmarshal([]byte(dl.Body), &body); err != nil {
				t.Fatal(err)
			}
			if body.Sequence < 1 || body.Sequence > len(ts) || seen[body.Sequence] {
				t.Fatalf("sequence %d (state %s): want each of 1..%d once", body.Sequence, body.State, len(ts))
			}
			seen[body.Sequence] = true
			tr := ts[body.Sequence-1]
			if tr.Seq != body.Sequence || tr.To != body.State || len(body.Run.History) != body.Sequence ||
				body.Run.History[len(body.Run.History)-1].State != body.State {
				t.Errorf("message %d is %s with %d history entries; the change %d is to %s", body.Sequence, body.State,
					len(body.Run.History), tr.Seq, tr.To)
			}
		}
	})
}
