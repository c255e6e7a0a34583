package e2e

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// sampleInput returns the input a policy saw for a run (its newest sample).
func (s *Server) sampleInput(t *testing.T, policyID, runID string) map[string]any {
	t.Helper()
	var samples []apiv1.PolicySample
	s.MustJSON(t, &samples, "policy", "samples", "--id", policyID)
	for _, sm := range samples {
		if sm.Run != runID {
			continue
		}
		var full apiv1.PolicySample
		s.MustJSON(t, &full, "policy", "sample", "--id", policyID, "--key", sm.Key)
		var in map[string]any
		if err := json.Unmarshal(full.Input, &in); err != nil {
			t.Fatal(err)
		}
		return in
	}
	t.Fatalf("policy %s has no sample of run %s", policyID, runID)
	return nil
}

// field follows a path of object keys.
func field(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// What policies see of real runs: the commit as git has it (author,
// committer date), what the worker ran with (the hooks and plain variables
// of the stack and its context, never a secret, the tool version that
// planned), the creator, and, in the trigger input, the changes of the run
// that ended (so "trigger dependents only if something changed" fires).
func TestPolicyInputsOfRealRuns(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	committed, err := strconv.ParseInt(strings.TrimSpace(repo.git(t, "log", "-1", "--format=%ct")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "e2e-policy-input-secret"
	s.createPolicy(t, "plan-seen", "PLAN", "package spacelift\n\nsample := true\n", "--label", "autoattach:chain")
	s.createPolicy(t, "on-change", "TRIGGER", `package spacelift

trigger contains stack.id if {
	input.run.state == "FINISHED"
	count(input.run.changes) > 0
	some stack in input.stacks
	concat(":", ["depends-on", input.stack.id]) in stack.labels
}
sample := true
`, "--label", "autoattach:chain")
	s.CreateStack(t, "up", repo.URL, "--autodeploy", "--label", "chain", "--before-init", "echo stack-before-init")
	s.CreateStack(t, "down", repo.URL, "--label", "depends-on:up")
	s.MustGantry(t, "stack", "env", "set", "--id", "up", "REGION", "eu-west-1")
	s.MustGantry(t, "stack", "env", "set", "--id", "up", "DB_PASSWORD", secret, "--secret")
	s.MustGantry(t, "context", "create", "--id", "shared", "--space", "root")
	s.MustGantry(t, "context", "env", "set", "--id", "shared", "TEAM", "infra")
	s.MustGantry(t, "context", "hook", "add", "--id", "shared", "--phase", "after_plan", "--command", "echo context-after-plan")
	s.MustGantry(t, "context", "attach", "--id", "shared", "--stack", "up")

	up := s.WaitRun(t, s.Deploy(t, "up").ID, apiv1.StateFinished)
	plan := s.sampleInput(t, "plan-seen", up.ID)
	for path, want := range map[string]any{
		"spacelift.commit.hash":                            repo.Head(t),
		"spacelift.commit.author":                          "Gantry E2E",
		"spacelift.commit.created_at":                      float64(committed * 1e9),
		"spacelift.commit.branch":                          "main",
		"spacelift.commit.exist_on_tracked_branch":         true,
		"spacelift.run.runtime_config.terraform_version":   "1.10.7",
		"spacelift.run.runtime_config.environment.REGION":  "eu-west-1",
		"spacelift.run.runtime_config.environment.TEAM":    "infra",
		"spacelift.run.creator_session.admin":              true,
		"spacelift.stack.tracked_commit.author":            "Gantry E2E",
		"spacelift.run.runtime_config.environment.MISSING": nil,
	} {
		if got := field(plan, path); got != want {
			t.Errorf("plan input: %s = %#v, want %#v", path, got, want)
		}
	}
	hooks, _ := json.Marshal([]any{field(plan, "spacelift.run.runtime_config.before_init"), field(plan, "spacelift.run.runtime_config.after_plan")})
	if string(hooks) != `[["echo stack-before-init"],["echo context-after-plan"]]` {
		t.Errorf("plan input: before_init and after_plan = %s", hooks)
	}
	if ctxs, _ := json.Marshal(field(plan, "spacelift.stack.contexts")); string(ctxs) != `["shared"]` {
		t.Errorf("plan input: stack.contexts = %s, want [\"shared\"]", ctxs)
	}
	if ip := field(plan, "spacelift.run.creator_session.creator_ip"); ip != "127.0.0.1" {
		t.Errorf("plan input: creator_session.creator_ip = %#v, want the CLI's address", ip)
	}
	// As Spacelift's: the address that created the run, no previous_run on
	// the stack's first run, no tool version before anything applied.
	if ip := field(plan, "spacelift.request.remote_ip"); ip != "127.0.0.1" {
		t.Errorf("plan input: request.remote_ip = %#v, want the CLI's address", ip)
	}
	if prev, ok := field(plan, "spacelift").(map[string]any)["previous_run"]; ok {
		t.Errorf("plan input of the stack's first run: previous_run = %#v, want it missing", prev)
	}
	if v := field(plan, "spacelift.stack.terraform_version"); v != nil {
		t.Errorf("plan input before any apply: stack.terraform_version = %#v, want null", v)
	}
	if env, _ := json.Marshal(field(plan, "spacelift.run.runtime_config.environment")); strings.Contains(string(env), "DB_PASSWORD") || strings.Contains(string(env), secret) {
		t.Errorf("plan input: the environment holds the secret: %s", env)
	}

	var runs []apiv1.Run
	waitFor(t, "a run of down triggered by up's", func() bool {
		s.MustJSON(t, &runs, "run", "list", "--stack", "down")
		return len(runs) == 1
	})
	trigger := s.sampleInput(t, "on-change", up.ID)
	changes, _ := field(trigger, "run.changes").([]any)
	var addresses []string
	for _, c := range changes {
		addresses = append(addresses, field(c, "action").(string)+" "+field(c, "entity.address").(string))
	}
	if !slices.Equal(addresses, []string{"added terraform_data.thing"}) {
		t.Errorf("trigger input: run.changes = %v, want the plan's one creation", addresses)
	}
	if got := field(trigger, "stack.terraform_version"); got != "1.10.7" {
		t.Errorf("trigger input: stack.terraform_version = %#v, want the version that applied", got)
	}
	if got, _ := field(trigger, "run.changes").([]any); len(got) == 0 || field(got[0], "entity.entity_vendor") != "terraform" {
		t.Errorf("trigger input: run.changes = %v, want entity_vendor terraform", got)
	}
	if got := field(trigger, "run.runtime_config.environment.TEAM"); got != "infra" {
		t.Errorf("trigger input: runtime_config.environment.TEAM = %#v", got)
	}
	if raw, _ := json.Marshal(trigger); strings.Contains(string(raw), secret) {
		t.Error("the trigger input holds the secret")
	}
}
