package policy_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/policy"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/stack"
)

// sampleAll approves (or allows) everything and keeps every input.
const sampleAll = `package spacelift

approve := true
sample := true
`

// inputs returns the inputs policyID saw for runID, oldest first.
func (f *fixture) inputs(t *testing.T, policyID, runID string) []map[string]any {
	t.Helper()
	samples, err := f.policies.Samples(f.ctx, policyID, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for i := len(samples) - 1; i >= 0; i-- {
		if samples[i].RunID != runID {
			continue
		}
		sm, err := f.policies.Sample(f.ctx, policyID, samples[i].Key)
		if err != nil {
			t.Fatal(err)
		}
		var in map[string]any
		if err := json.Unmarshal(sm.Input, &in); err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
	if len(out) == 0 {
		t.Fatalf("policy %s has no sample of run %s", policyID, runID)
	}
	return out
}

// at follows a path of object keys in a decoded input.
func at(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// wantFields checks values of an input by path.
func wantFields(t *testing.T, what string, in map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		got := at(in, path)
		if n, ok := got.(float64); ok {
			got = int64(n)
		}
		if got != w {
			t.Errorf("%s: %s = %#v, want %#v", what, path, got, w)
		}
	}
}

// planAt takes the stack's next run through planning as a worker that
// checked out c does, with an empty plan (the run ends: nothing to do).
func (f *fixture) planAt(t *testing.T, st stack.Stack, c run.Commit) run.Run {
	t.Helper()
	cl, err := f.runs.Claim(f.ctx, st.WorkerPool, worker)
	if err != nil || cl == nil {
		t.Fatalf("claim: %v %v", cl, err)
	}
	if _, err := f.runs.PhaseCommit(f.ctx, cl.Run.ID, worker, run.Initializing, c); err != nil {
		t.Fatal(err)
	}
	if _, err := f.runs.Phase(f.ctx, cl.Run.ID, worker, run.Planning, "", ""); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"format_version": "1.2", "terraform_version": "1.10.7"})
	if err := f.runs.PutArtifact(f.ctx, cl.Run.ID, run.ArtifactPlanJSON, data); err != nil {
		t.Fatal(err)
	}
	_, r, err := f.runs.Planned(f.ctx, cl.Run.ID, worker, false, run.Delta{}, st.Autodeploy)
	if err != nil {
		t.Fatalf("planned: %v", err)
	}
	return r
}

// TestCommitFieldsInInputs: the commit object holds the branch the run was
// asked on (a pull request's head is not the tracked branch), its author
// (a push's, else git's), its committer date (once a worker checked it
// out; before, 0 and not the run's creation), the pull request; the stack
// object carries its tracked commit and previous_run its branch.
func TestCommitFieldsInInputs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policy(t, "seen", "APPROVAL", sampleAll, "autoattach:*")
		f.policy(t, "plan-seen", "PLAN", "package spacelift\n\nsample := true\n", "autoattach:*")

		// A pull request's head branch.
		st := f.stack(t, nil)
		head := strings.Repeat("c", 40)
		res, err := f.policies.NotifyPush(f.ctx, st.ID, policy.Push{Branch: "feature/x", SHA: head, Message: "try it", Author: "ada",
			AffectedFiles: []string{"main.tf"}, PullRequest: &policy.PullRequest{ID: 42, Action: "opened", BaseBranch: "main"}}, policy.Actor{Name: "api_key::ci"})
		if err != nil || res.Run == nil {
			t.Fatalf("push = %+v, %v", res, err)
		}
		queued := f.inputs(t, "seen", res.Run.ID)[0]
		wantFields(t, "pull request run", queued, map[string]any{
			"run.branch":                         "feature/x",
			"run.commit.branch":                  "feature/x",
			"run.commit.exist_on_tracked_branch": false,
			"run.commit.author":                  "ada",
			"run.commit.hash":                    head,
			"run.commit.pull_request_id":         int64(42),
			"run.commit.created_at":              int64(0),
			"stack.tracked_commit":               nil,
		})

		// Tracked runs: a push to the tracked branch, then one started by
		// hand whose commit the worker finds.
		st = f.stack(t, nil)
		first := strings.Repeat("1", 40)
		res, err = f.policies.NotifyPush(f.ctx, st.ID, policy.Push{Branch: "main", SHA: first, Message: "ship", Author: "bob",
			AffectedFiles: []string{"main.tf"}}, policy.Actor{Name: "api_key::ci"})
		if err != nil || res.Run == nil {
			t.Fatalf("push = %+v, %v", res, err)
		}
		firstAt := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
		ended := f.planAt(t, st, run.Commit{SHA: first, Message: "ship", Author: "Bob Git", At: firstAt})
		wantState(t, ended, run.Finished)
		planned := f.inputs(t, "plan-seen", ended.ID)[0]
		wantFields(t, "tracked run's plan", planned, map[string]any{
			"spacelift.run.branch":                     "main",
			"spacelift.commit.branch":                  "main",
			"spacelift.commit.exist_on_tracked_branch": true,
			"spacelift.commit.author":                  "bob",
			"spacelift.commit.created_at":              firstAt.UnixNano(),
			"spacelift.run.commit.created_at":          firstAt.UnixNano(),
			"spacelift.stack.tracked_commit.hash":      first,
		})

		second := f.create(t, st.ID, run.Tracked)
		queued = f.inputs(t, "seen", second.ID)[0]
		wantFields(t, "manual run, queued", queued, map[string]any{
			"run.branch":                         "main",
			"run.commit.hash":                    "",
			"run.commit.author":                  "",
			"run.commit.created_at":              int64(0),
			"run.commit.exist_on_tracked_branch": true,
			"stack.tracked_commit.hash":          first,
			"stack.tracked_commit.author":        "bob",
			"stack.tracked_commit.branch":        "main",
			"stack.tracked_commit.created_at":    firstAt.UnixNano(),
		})
		secondSHA := strings.Repeat("2", 40)
		secondAt := time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)
		f.planAt(t, st, run.Commit{SHA: secondSHA, Message: "more", Author: "Carol", At: secondAt})
		planned = f.inputs(t, "plan-seen", second.ID)[0]
		wantFields(t, "manual run's plan", planned, map[string]any{
			"spacelift.commit.author":                               "Carol",
			"spacelift.commit.created_at":                           secondAt.UnixNano(),
			"spacelift.previous_run.id":                             ended.ID,
			"spacelift.previous_run.branch":                         "main",
			"spacelift.previous_run.commit.branch":                  "main",
			"spacelift.previous_run.commit.hash":                    first,
			"spacelift.previous_run.commit.author":                  "bob",
			"spacelift.previous_run.commit.exist_on_tracked_branch": true,
			"spacelift.stack.tracked_commit.hash":                   secondSHA,
		})
	})
}

// TestRuntimeConfigInInputs: run.runtime_config holds the stack's project
// root, tool version (the plan's when the stack sets none), hooks and
// plain variables; secrets are left out. A run a worker took shows what it
// ran with, even after the stack changed; one no worker took yet, what it
// would run with now.
func TestRuntimeConfigInInputs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policy(t, "seen", "APPROVAL", sampleAll, "autoattach:*")
		f.policy(t, "plan-seen", "PLAN", "package spacelift\n\nsample := true\n", "autoattach:*")
		st := f.stack(t, func(s *stack.Stack) {
			s.ProjectRoot = "infra/prod"
			s.Hooks = stack.Hooks{BeforeInit: []string{"tflint --init"}, AfterPlan: []string{"infracost breakdown", "echo done"}}
		})
		for _, v := range []stack.EnvVar{{Name: "AWS_REGION", Value: "eu-west-1"}, {Name: "TF_VAR_token", Value: "s3cr3t", Secret: true}} {
			if _, err := f.stacks.SetEnv(f.ctx, st.ID, v); err != nil {
				t.Fatal(err)
			}
		}
		wantConfig := func(what string, in map[string]any, prefix string, want map[string]any) {
			t.Helper()
			rc, _ := at(in, prefix).(map[string]any)
			for k, w := range want {
				got, _ := json.Marshal(rc[k])
				if wj, _ := json.Marshal(w); string(got) != string(wj) {
					t.Errorf("%s: %s.%s = %s, want %s", what, prefix, k, got, wj)
				}
			}
		}
		r := f.create(t, st.ID, run.Tracked)
		wantConfig("queued", f.inputs(t, "seen", r.ID)[0], "run.runtime_config", map[string]any{
			"project_root": "infra/prod", "terraform_version": "",
			"before_init": []string{"tflint --init"}, "after_plan": []string{"infracost breakdown", "echo done"},
			"before_apply": []string{}, "after_run": []string{},
			"environment":  map[string]string{"AWS_REGION": "eu-west-1"},
			"runner_image": "", "git_sparse_checkout_paths": []string{},
		})

		// The worker takes it (and records what its job runs with), then
		// the stack changes: the run's plan still shows what it ran with,
		// with the tool version of its plan.
		ran := run.RuntimeConfig{ProjectRoot: "infra/prod"}
		ran.SetHooks("before_init", []string{"tflint --init"})
		ran.AddEnv("AWS_REGION", "eu-west-1", false)
		if err := f.runs.SetRuntimeConfig(f.ctx, r.ID, ran, "opentofu"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.stacks.Update(f.ctx, st.ID, func(s *stack.Stack) error {
			s.ProjectRoot, s.ToolVersion = "infra/staging", "1.9.0"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		wantState(t, f.planAt(t, st, run.Commit{SHA: strings.Repeat("3", 40)}), run.Finished)
		wantConfig("planned", f.inputs(t, "plan-seen", r.ID)[0], "spacelift.run.runtime_config", map[string]any{
			"project_root": "infra/prod", "terraform_version": "1.10.7",
			"before_init": []string{"tflint --init"}, "after_plan": []string{},
			"environment": map[string]string{"AWS_REGION": "eu-west-1"},
		})

		// The next run: queued, it shows the stack as it is now; its plan
		// shows the previous run's as that one ran.
		next := f.create(t, st.ID, run.Tracked)
		wantConfig("next, queued", f.inputs(t, "seen", next.ID)[0], "run.runtime_config", map[string]any{
			"project_root": "infra/staging", "terraform_version": "1.9.0",
		})
		f.planAt(t, st, run.Commit{SHA: strings.Repeat("4", 40)})
		wantConfig("next's plan", f.inputs(t, "plan-seen", next.ID)[0], "spacelift.previous_run.runtime_config", map[string]any{
			"project_root": "infra/prod", "before_init": []string{"tflint --init"},
		})
	})
}

// TestRuntimeConfigChanged: an approval policy can hold runs whose runtime
// configuration differs from what the stack's last run ran with.
func TestRuntimeConfigChanged(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.policy(t, "same-config", "APPROVAL", `package spacelift

approve if not input.run.repository_runtime_config_changed
sample := true
`, "autoattach:*")
		st := f.stack(t, func(s *stack.Stack) { s.Hooks = stack.Hooks{BeforeInit: []string{"tflint --init"}} })
		if _, err := f.stacks.SetEnv(f.ctx, st.ID, stack.EnvVar{Name: "AWS_REGION", Value: "eu-west-1"}); err != nil {
			t.Fatal(err)
		}
		ran := run.RuntimeConfig{}
		ran.SetHooks("before_init", []string{"tflint --init"})
		ran.AddEnv("AWS_REGION", "eu-west-1", false)
		// Each run as a worker runs it: the job records what it runs with.
		runIt := func() {
			t.Helper()
			cl, err := f.runs.Claim(f.ctx, st.WorkerPool, worker)
			if err != nil || cl == nil {
				t.Fatalf("claim: %v %v", cl, err)
			}
			if err := f.runs.SetRuntimeConfig(f.ctx, cl.Run.ID, ran, "opentofu"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.runs.Finish(f.ctx, cl.Run.ID, worker, false, "ended by the test"); err != nil {
				t.Fatal(err)
			}
		}
		changed := func(runID string) any {
			t.Helper()
			in := f.inputs(t, "same-config", runID)
			return at(in[len(in)-1], "run.repository_runtime_config_changed")
		}

		first := f.create(t, st.ID, run.Tracked)
		if wantState(t, first, run.Ready); changed(first.ID) != false {
			t.Errorf("first run: changed = %v, want false (nothing ran before)", changed(first.ID))
		}
		runIt()
		second := f.create(t, st.ID, run.Tracked)
		if wantState(t, second, run.Ready); changed(second.ID) != false {
			t.Errorf("same configuration: changed = %v, want false", changed(second.ID))
		}
		runIt()
		if _, err := f.stacks.Update(f.ctx, st.ID, func(s *stack.Stack) error {
			s.Hooks.AfterPlan = []string{"curl -d @plan.json https://example.com"}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		third := f.create(t, st.ID, run.Tracked)
		wantState(t, third, run.PendingReview)
		if changed(third.ID) != true {
			t.Errorf("a new after_plan hook: changed = %v, want true", changed(third.ID))
		}
	})
}

// TestChangesInTriggerInput: a trigger policy sees the changes of the run
// that ended (the common "trigger dependents only if something changed"
// fires), and a plan policy those of the previous run; both as the run's
// own plan input lists them.
func TestChangesInTriggerInput(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		up := f.stack(t, func(s *stack.Stack) { s.ID = "up"; s.Autodeploy = true; s.Labels = []string{"chained"} })
		down := f.stack(t, func(s *stack.Stack) { s.ID = "down"; s.Labels = []string{"depends-on:up"} })
		f.policy(t, "on-change", "TRIGGER", `package spacelift

trigger contains stack.id if {
	input.run.state == "FINISHED"
	count(input.run.changes) > 0
	some stack in input.stacks
	"depends-on:up" in stack.labels
}
sample := true
`, "autoattach:chained")
		f.policy(t, "plan-seen", "PLAN", "package spacelift\n\nsample := true\n", "autoattach:chained")
		downRuns := func() int {
			t.Helper()
			runs, _, err := f.runs.List(f.ctx, run.Filter{Stack: down.ID, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return len(runs)
		}

		// Nothing changed: nothing triggered.
		f.create(t, up.ID, run.Tracked)
		quiet := f.finishNoChanges(t, up)
		f.processEvents(t)
		if n := downRuns(); n != 0 {
			t.Fatalf("a run without changes triggered %d runs", n)
		}
		if got := at(f.inputs(t, "on-change", quiet.ID)[0], "run.changes"); got == nil || len(got.([]any)) != 0 {
			t.Errorf("changes of a run without changes = %v, want []", got)
		}

		// Two buckets created, one moved: triggered.
		plan := bucketPlan("private", "private")
		plan["resource_changes"].([]any)[1].(map[string]any)["previous_address"] = "aws_s3_bucket.old"
		f.create(t, up.ID, run.Tracked)
		next, changed := f.plan(t, up, plan)
		if next != run.NextApply {
			t.Fatalf("next = %s, want apply", next)
		}
		if _, err := f.runs.Finish(f.ctx, changed.ID, worker, true, ""); err != nil {
			t.Fatal(err)
		}
		f.processEvents(t)
		if n := downRuns(); n != 1 {
			t.Fatalf("a run with changes triggered %d runs, want 1", n)
		}
		own, _ := json.Marshal(at(f.inputs(t, "plan-seen", changed.ID)[0], "spacelift.run.changes"))
		seen, _ := json.Marshal(at(f.inputs(t, "on-change", changed.ID)[0], "run.changes"))
		if string(seen) != string(own) || !strings.Contains(string(seen), `"moved":true`) || strings.Count(string(seen), `"added"`) != 2 {
			t.Errorf("trigger input changes = %s, want the plan input's %s (two added, one moved)", seen, own)
		}

		// The next plan sees them as previous_run's.
		f.create(t, up.ID, run.Tracked)
		third := f.finishNoChanges(t, up)
		prev, _ := json.Marshal(at(f.inputs(t, "plan-seen", third.ID)[0], "spacelift.previous_run.changes"))
		if string(prev) != string(own) {
			t.Errorf("previous_run.changes = %s, want %s", prev, own)
		}
	})
}
