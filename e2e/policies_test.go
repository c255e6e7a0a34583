package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// writePolicy writes a Rego file for `gantry policy create --body-file`.
func writePolicy(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// createPolicy creates a policy with the CLI and returns it.
func (s *Server) createPolicy(t *testing.T, id, typ, body string, extra ...string) apiv1.Policy {
	t.Helper()
	var p apiv1.Policy
	args := append([]string{"policy", "create", "--id", id, "--name", id, "--type", typ, "--space", "root",
		"--body-file", writePolicy(t, id+".rego", body)}, extra...)
	s.MustJSON(t, &p, args...)
	if p.ID != id {
		t.Fatalf("policy create printed %+v", p)
	}
	return p
}

func (s *Server) receipts(t *testing.T, runID string) []apiv1.PolicyReceipt {
	t.Helper()
	var out apiv1.List[apiv1.PolicyReceipt]
	s.getJSON(t, "/api/v1/runs/"+runID+"/policy-receipts", &out)
	return out.Items
}

// getJSON reads an API path with the admin token.
func (s *Server) getJSON(t *testing.T, path string, out any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// waitFor polls cond until it holds, or fails t after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll(waitTimeout, 200*time.Millisecond, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Plan policy written in v0 syntax (detected), denying by resource type.
const denyThingV0 = `package spacelift

deny[sprintf("%s may not be created here", [r.address])] {
	r := input.terraform.resource_changes[_]
	r.type == "terraform_data"
	r.change.actions[_] == "create"
}
`

// Plan policy in v1 syntax, warning on every change; reads Gantry's
// normalized view too.
const warnChangesV1 = `package gantry

warn contains sprintf("%d resources change (%d normalized)", [count(input.terraform.resource_changes), count(input.gantry.resources)]) if {
	count(input.terraform.resource_changes) > 0
}
`

// A plan policy denies: the run fails with the message in its reason, its
// receipt and its log; a plan policy warns on an autodeploy stack: the run
// stops at UNCONFIRMED instead of applying.
func TestPlanPolicies(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
		p := s.createPolicy(t, "deny-thing", "PLAN", denyThingV0, "--label", "autoattach:guarded")
		if p.Engine != "rego_v0" || p.Version != 1 {
			t.Fatalf("v0 policy saved as %+v", p)
		}
		s.CreateStack(t, "guarded", repo.URL, "--label", "guarded", "--autodeploy")
		r := s.Deploy(t, "guarded")
		r = s.WaitRun(t, r.ID, "FAILED")
		if !strings.Contains(r.Reason, "terraform_data.thing may not be created here") {
			t.Fatalf("reason = %q, want the deny message\n%s", r.Reason, s.Describe(t, r))
		}
		if log := s.Logs(t, "guarded", r.ID); !strings.Contains(log, "Plan policies denied this run") || !strings.Contains(log, "terraform_data.thing may not be created here") {
			t.Fatalf("the log does not tell the deny:\n%s", log)
		}
		rcs := s.receipts(t, r.ID)
		if len(rcs) != 1 || rcs[0].Policy != "deny-thing" || rcs[0].Outcome != "deny" || rcs[0].Type != "PLAN" {
			t.Fatalf("receipts = %+v", rcs)
		}
		if out := s.MustGantry(t, "run", "show", "--id", r.ID); !strings.Contains(out, "deny-thing") {
			t.Fatalf("run show does not list the receipt:\n%s", out)
		}

		s.createPolicy(t, "warn-changes", "PLAN", warnChangesV1, "--engine", "rego_v1")
		s.CreateStack(t, "warned", repo.URL, "--autodeploy")
		s.MustGantry(t, "policy", "attach", "--id", "warn-changes", "--stack", "warned")
		w := s.WaitRun(t, s.Deploy(t, "warned").ID, "UNCONFIRMED")
		if rcs := s.receipts(t, w.ID); len(rcs) != 1 || rcs[0].Outcome != "warn" || !strings.Contains(rcs[0].Messages[0], "1 resources change (1 normalized)") {
			t.Fatalf("warn receipts = %+v", rcs)
		}
		s.MustGantry(t, "stack", "confirm", "--id", "warned", "--run", w.ID)
		s.WaitRun(t, w.ID, "FINISHED")
	})
}

// Saving refuses a policy that does not compile, names a disabled
// built-in, or gives a rule the wrong shape, with file and line.
func TestPolicySaveRefusesBadRego(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	for name, tc := range map[string]struct{ body, want string }{
		"syntax":    {"package spacelift\n\ndeny contains msg if {\n  msg := \n}\n", "bad.rego:"},
		"http":      {"package spacelift\n\ndeny contains \"x\" if {\n  http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1:1\"})\n}\n", "http.send"},
		"time":      {"package spacelift\n\ndeny contains \"x\" if { time.now_ns() > 0 }\n", "time.now_ns"},
		"bool deny": {"package spacelift\n\ndeny := true\n", "deny"},
	} {
		res := s.Gantry(t, "policy", "create", "--id", "bad", "--type", "PLAN", "--space", "root", "--body-file", writePolicy(t, "bad.rego", tc.body))
		if res.Code == 0 || !strings.Contains(res.Stderr, tc.want) {
			t.Errorf("%s: %s\nwant a failure mentioning %q", name, res, tc.want)
		}
	}
	var list []apiv1.Policy
	s.MustJSON(t, &list, "policy", "list")
	if len(list) != 0 {
		t.Fatalf("refused policies were saved: %+v", list)
	}
}

// An approval policy needing two approvals holds a run in PENDING_REVIEW
// until two people approved; a rejection fails a run.
func TestApprovalPolicyAndReviews(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.createPolicy(t, "two-approvals", "APPROVAL", `package spacelift

approve if count(input.reviews.current.approvals) >= 2
reject if count(input.reviews.current.rejections) > 0
`, "--label", "autoattach:*")
	var bob struct {
		Token string `json:"token"`
	}
	s.MustJSON(t, &bob, "apikey", "create", "--name", "bob")
	s.CreateStack(t, "reviewed", repo.URL, "--autodeploy")
	var r apiv1.Run
	res := s.GantryJSON(t, &r, "stack", "deploy", "--id", "reviewed", "--wait")
	if r.State != "PENDING_REVIEW" || !strings.Contains(res.Stderr, "waits for review") {
		t.Fatalf("deploy --wait: %s", res)
	}
	var reviewed apiv1.Run
	s.MustJSON(t, &reviewed, "run", "review", "--id", r.ID, "--approve", "--note", "looks fine")
	// The same reviewer again: only the newest review of each person counts.
	s.MustJSON(t, &reviewed, "run", "review", "--id", r.ID, "--approve")
	if got := s.GetRun(t, r.ID); got.State != "PENDING_REVIEW" {
		t.Fatalf("one reviewer's two approvals moved the run to %s", got.State)
	}
	// A key without a role may not review (it holds nothing: the run is
	// answered as not found); bound space-writer, bob may.
	if res := s.Gantry(t, "--token", bob.Token, "run", "review", "--id", r.ID, "--approve"); res.Code == 0 || !strings.Contains(res.Stderr, "not found") {
		t.Fatalf("a key without a role reviewed: %s", res)
	}
	var binding apiv1.RoleBinding
	s.MustJSON(t, &binding, "role", "bind", "--role", "space-writer", "--apikey", "bob")
	s.MustJSON(t, &reviewed, "--token", bob.Token, "run", "review", "--id", r.ID, "--approve")
	s.WaitRun(t, r.ID, "FINISHED")
	var reviews []apiv1.Review
	s.getJSON(t, "/api/v1/runs/"+r.ID+"/reviews", &struct{ Items *[]apiv1.Review }{&reviews})
	if len(reviews) != 3 || reviews[2].Author != "api_key::bob" {
		t.Fatalf("reviews = %+v", reviews)
	}

	second := s.Deploy(t, "reviewed")
	s.WaitRun(t, second.ID, "PENDING_REVIEW")
	s.MustJSON(t, &reviewed, "run", "review", "--id", second.ID, "--reject", "--note", "not today")
	got := s.WaitRun(t, second.ID, "FAILED")
	if !strings.Contains(got.Reason, "rejected") {
		t.Fatalf("reason = %q", got.Reason)
	}
}

// A trigger policy runs the dependent stack when its dependency finished;
// the workflow's loop guard stops the cycle back.
func TestTriggerPolicyWorkflow(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.createPolicy(t, "dependents", "TRIGGER", `package spacelift

trigger contains stack.id if {
	input.run.state == "FINISHED"
	some stack in input.stacks
	concat(":", ["depends-on", input.stack.id]) in stack.labels
}
`, "--label", "autoattach:chain")
	s.CreateStack(t, "network", repo.URL, "--autodeploy", "--label", "chain", "--label", "depends-on:app")
	s.CreateStack(t, "app", repo.URL, "--autodeploy", "--label", "chain", "--label", "depends-on:network")
	first := s.WaitRun(t, s.Deploy(t, "network").ID, "FINISHED")
	var runs []apiv1.Run
	waitFor(t, "a run of app triggered by network's", func() bool {
		s.MustJSON(t, &runs, "run", "list", "--stack", "app")
		return len(runs) == 1
	})
	app := s.WaitRun(t, runs[0].ID, "FINISHED")
	if app.Workflow != first.ID || !strings.HasPrefix(app.TriggeredBy, "trigger_policy:") {
		t.Fatalf("triggered run = %+v", app)
	}
	waitFor(t, "the loop guard's note", func() bool {
		rcs := s.receipts(t, app.ID)
		return len(rcs) == 1 && strings.Contains(strings.Join(rcs[0].Messages, " "), "loop protection")
	})
	s.MustJSON(t, &runs, "run", "list", "--stack", "network")
	if len(runs) != 1 {
		t.Fatalf("the cycle ran network again: %+v", runs)
	}
}

// A runaway policy ends with a clear timeout error, and fails closed: the
// approval evaluation that timed out rejects the run.
func TestRunawayPolicyTimesOut(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	// Timeouts a tenth of the defaults: approval 0.5 s instead of 5 s.
	s := StartServer(t, ServerConfig{Args: []string{"--policy-timeout-scale", "0.1"}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.createPolicy(t, "runaway", "APPROVAL", `package spacelift

xs := numbers.range(1, 100000)

approve if {
	count([x | some x in xs; some y in xs; x * y < 0]) > 0
}
`, "--label", "autoattach:*")
	s.CreateStack(t, "slow", repo.URL)
	r := s.WaitRun(t, s.Deploy(t, "slow").ID, "FAILED")
	if !strings.Contains(r.Reason, "timed out") {
		t.Fatalf("reason = %q, want a timeout", r.Reason)
	}
	rcs := s.receipts(t, r.ID)
	if len(rcs) != 1 || rcs[0].Outcome != "error" || !strings.Contains(rcs[0].Error, "timed out") {
		t.Fatalf("receipts = %+v", rcs)
	}
}

// A PLAN policy slower than a worker used to wait for a report (30 s) ends
// as the documented policy timeout, whatever --policy-timeout-scale: the
// run fails closed with the timeout as its reason, a receipt and the log
// line, and the policy is evaluated once (the worker waits as long as the
// server says, instead of giving up and retrying).
func TestSlowPlanPolicyTimesOut(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	// PLAN: 45 s × 0.7 = 31.5 s.
	s := StartServer(t, ServerConfig{Args: []string{"--policy-timeout-scale", "0.7"}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.createPolicy(t, "slow-plan", "PLAN", `package spacelift

xs := numbers.range(1, 100000)

deny contains "never" if {
	count([x | some x in xs; some y in xs; x * y < 0]) > 0
}
`, "--label", "autoattach:*")
	s.CreateStack(t, "slowplan", repo.URL)
	r := s.waitRun(t, s.Deploy(t, "slowplan").ID, 2*time.Minute, "FAILED")
	if !strings.Contains(r.Reason, "denied by plan policy: policy slow-plan: policy slow-plan.rego: policy evaluation timed out after 31.5s") {
		t.Fatalf("reason = %q, want the plan policy's timeout", r.Reason)
	}
	rcs := s.receipts(t, r.ID)
	if len(rcs) != 1 || rcs[0].Type != "PLAN" || rcs[0].Outcome != "error" || !strings.Contains(rcs[0].Error, "timed out after 31.5s") {
		t.Fatalf("receipts = %+v", rcs)
	}
	if log := s.WaitLog(t, "slowplan", r.ID, "Plan policies denied this run:"); !strings.Contains(log, "timed out after 31.5s") ||
		strings.Contains(log, "reporting the plan") {
		t.Fatalf("log:\n%s", log)
	}
	var samples []apiv1.PolicySample
	s.MustJSON(t, &samples, "policy", "samples", "--id", "slow-plan")
	if len(samples) != 1 {
		t.Fatalf("the policy was evaluated %d times: %+v", len(samples), samples)
	}
}

// Simulate an edited body against a stored sample, replay it against every
// sample, and run Rego unit tests with `gantry policy test`.
func TestPolicySimulateReplayAndTest(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.createPolicy(t, "deny-thing", "PLAN", denyThingV0, "--label", "autoattach:*")
	s.CreateStack(t, "sampled", repo.URL)
	denied := s.WaitRun(t, s.Deploy(t, "sampled").ID, "FAILED")
	var samples struct{ Items []apiv1.PolicySample }
	s.MustJSON(t, &samples.Items, "policy", "samples", "--id", "deny-thing")
	if len(samples.Items) != 1 || samples.Items[0].Run != denied.ID || samples.Items[0].Outcome != "deny" {
		t.Fatalf("samples = %+v", samples.Items)
	}
	key := samples.Items[0].Key
	edited := writePolicy(t, "edited.rego", strings.Replace(denyThingV0, `"terraform_data"`, `"aws_instance"`, 1))
	var sim apiv1.PolicySimulation
	s.MustJSON(t, &sim, "policy", "simulate", "--id", "deny-thing", "--sample", key, "--body", edited)
	if sim.Decision.Outcome != "allow" || sim.Recorded == nil || sim.Recorded.Outcome != "deny" || len(sim.Changes) == 0 {
		t.Fatalf("simulate = %+v", sim)
	}
	out := s.MustGantry(t, "policy", "replay", "--id", "deny-thing", "--body", edited, "--since", "1d")
	if !strings.Contains(out, key) || !strings.Contains(out, "deny") || !strings.Contains(out, "allow") {
		t.Fatalf("replay output does not show the changed decision:\n%s", out)
	}

	dir := t.TempDir()
	for name, body := range map[string]string{
		"policy.rego": denyThingV0,
		"policy_test.rego": `package spacelift

test_denies_thing if {
	count(deny) == 1 with input as {"terraform": {"resource_changes": [{"address": "a", "type": "terraform_data", "change": {"actions": ["create"]}}]}}
}

test_sanitized_builtin if {
	sanitized("secret") == sanitized("secret")
}
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if res := s.Gantry(t, "policy", "test", dir); res.Code != 0 || !strings.Contains(res.Stdout, "PASS") {
		t.Fatalf("policy test: %s", res)
	}
	if err := os.WriteFile(filepath.Join(dir, "fail_test.rego"), []byte("package spacelift\n\ntest_fails if { count(deny) == 7 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := s.Gantry(t, "policy", "test", dir); res.Code == 0 || !strings.Contains(res.Stdout+res.Stderr, "test_fails") {
		t.Fatalf("a failing policy test passed: %s", res)
	}
}

// A notification policy sends a signed webhook when a run finishes.
func TestNotificationWebhook(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	got := make(chan *http.Request, 10)
	bodies := make(chan []byte, 10)
	slackBodies := make(chan []byte, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slack" {
			slackBodies <- b
			return
		}
		got <- r
		bodies <- b
	}))
	defer recv.Close()
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.MustGantry(t, "webhook", "create", "--id", "ops", "--webhook-url", recv.URL+"/hook", "--secret", "s3cret-e2e")
	// Spacelift's basic Slack rule: an upper-case channel id, no message.
	s.MustGantry(t, "webhook", "create", "--id", "c0000000000", "--slack", "--webhook-url", recv.URL+"/slack")
	s.createPolicy(t, "on-finish", "NOTIFICATION", `package spacelift

webhook contains {"endpoint_id": "ops", "payload": {"run": input.run_updated.run.id, "stack": input.run_updated.stack.id}} if {
	input.run_updated.state == "FINISHED"
}

slack contains {"channel_id": "C0000000000"} if {
	input.run_updated != null
	input.run_updated.run.state == "FINISHED"
}
`)
	s.CreateStack(t, "notified", repo.URL, "--autodeploy")
	r := s.WaitRun(t, s.Deploy(t, "notified").ID, "FINISHED")
	select {
	case body := <-slackBodies:
		var msg struct{ Text string }
		if err := json.Unmarshal(body, &msg); err != nil || !strings.Contains(msg.Text, "*notified* (notified): tracked run ") ||
			!strings.Contains(msg.Text, r.ID) || !strings.Contains(msg.Text, "is *FINISHED*") {
			t.Errorf("default slack message = %s (%v)", body, err)
		}
	case <-time.After(waitTimeout):
		t.Error("no slack message arrived")
	}
	select {
	case req := <-got:
		body := <-bodies
		mac := hmac.New(sha256.New, []byte("s3cret-e2e"))
		mac.Write(body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); req.Header.Get("X-Signature-256") != want {
			t.Fatalf("signature %q, want %q", req.Header.Get("X-Signature-256"), want)
		}
		mac1 := hmac.New(sha1.New, []byte("s3cret-e2e"))
		mac1.Write(body)
		if want := "sha1=" + hex.EncodeToString(mac1.Sum(nil)); req.Header.Get("X-Signature") != want {
			t.Fatalf("SHA-1 signature %q, want %q", req.Header.Get("X-Signature"), want)
		}
		var payload map[string]string
		if err := json.Unmarshal(body, &payload); err != nil || payload["run"] != r.ID || payload["stack"] != "notified" {
			t.Fatalf("payload = %s (%v)", body, err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no webhook arrived")
	}
}

// sensitiveConfig plans a resource whose input OpenTofu marks sensitive.
const sensitiveConfig = `
variable "password" {
  type      = string
  sensitive = true
  default   = "topsecret-e2e"
}

resource "terraform_data" "secret" {
  input = var.password
}
`

// Sensitive values reach plan policies sanitized, unless the stack turns
// that off; either way the policy can recognise the value.
func TestPlanPolicySanitization(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": sensitiveConfig})
	s.createPolicy(t, "what-it-sees", "PLAN", `package spacelift

deny contains "sanitized" if {
	some r in input.terraform.resource_changes
	r.change.after.input == sanitized("topsecret-e2e")
}

deny contains "raw" if {
	some r in input.terraform.resource_changes
	r.change.after.input == "topsecret-e2e"
}
`, "--label", "autoattach:*")
	s.CreateStack(t, "default", repo.URL)
	s.CreateStack(t, "raw", repo.URL, "--raw-policy-input")
	for stack, want := range map[string]string{"default": "sanitized", "raw": "raw"} {
		r := s.WaitRun(t, s.Deploy(t, stack).ID, "FAILED")
		rcs := s.receipts(t, r.ID)
		if len(rcs) != 1 || len(rcs[0].Messages) != 1 || rcs[0].Messages[0] != want {
			t.Errorf("stack %s: the policy saw %+v, want only %q", stack, rcs, want)
		}
		if log := s.Logs(t, stack, r.ID); strings.Contains(log, "topsecret-e2e") {
			t.Errorf("stack %s: the secret is in the run log", stack)
		}
		if stack != "default" {
			continue
		}
		// The stored sample holds the input as the policy saw it: the
		// secret appears nowhere in it (variables, planned values...).
		var samples []apiv1.PolicySample
		s.MustJSON(t, &samples, "policy", "samples", "--id", "what-it-sees")
		found := false
		for _, sm := range samples {
			if sm.Run != r.ID {
				continue
			}
			found = true
			var full apiv1.PolicySample
			s.MustJSON(t, &full, "policy", "sample", "--id", "what-it-sees", "--key", sm.Key)
			if len(full.Input) == 0 || strings.Contains(string(full.Input), "topsecret-e2e") {
				t.Errorf("the sample of a sanitized stack holds the secret (or nothing): %.300s", full.Input)
			}
		}
		if !found {
			t.Errorf("no sample of run %s", r.ID)
		}
	}
}

// Autoattach labels and space inheritance pick exactly the policies a
// stack may use.
func TestPolicyAutoattachAndSpaces(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.MustGantry(t, "space", "create", "--id", "prod", "--inherit")
	s.MustGantry(t, "space", "create", "--id", "sandbox")
	warn := func(msg string) string {
		return "package spacelift\n\nwarn contains \"" + msg + "\" if { true }\n"
	}
	s.createPolicy(t, "root-all", "PLAN", warn("root-all"), "--label", "autoattach:*")
	s.createPolicy(t, "root-db", "PLAN", warn("root-db"), "--label", "autoattach:db")
	var p apiv1.Policy
	s.MustJSON(t, &p, "policy", "create", "--id", "prod-all", "--type", "PLAN", "--space", "prod",
		"--body-file", writePolicy(t, "prod.rego", warn("prod-all")), "--label", "autoattach:*")
	s.MustJSON(t, &p, "policy", "create", "--id", "sandbox-all", "--type", "PLAN", "--space", "sandbox",
		"--body-file", writePolicy(t, "sandbox.rego", warn("sandbox-all")), "--label", "autoattach:*")
	s.CreateStack(t, "prod-db", repo.URL, "--space", "prod", "--label", "db")
	s.CreateStack(t, "sandbox-db", repo.URL, "--space", "sandbox", "--label", "db")
	if res := s.Gantry(t, "policy", "attach", "--id", "prod-all", "--stack", "sandbox-db"); res.Code == 0 || !strings.Contains(res.Stderr, "inherit") {
		t.Fatalf("attaching across spaces: %s", res)
	}
	for stack, want := range map[string][]string{
		"prod-db":    {"prod-all", "root-all", "root-db"},
		"sandbox-db": {"sandbox-all"},
	} {
		r := s.WaitRun(t, s.Deploy(t, stack).ID, "UNCONFIRMED")
		var got []string
		for _, rc := range s.receipts(t, r.ID) {
			got = append(got, rc.Policy)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("stack %s was judged by %v, want %v", stack, got, want)
		}
	}
}

// A push event starts the run Spacelift's default push rules (or a push
// policy) ask for, at the pushed commit; custom metadata files at the
// project root reach plan policies.
func TestNotifyPushAndCustomMetadata(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"infra/main.tf": staticConfig("v1")})
	// Infracost-style: an after_plan hook writes the metadata file.
	s.CreateStack(t, "pushed", repo.URL, "--project-root", "infra",
		"--after-plan", `echo '{"monthly_cost": 1234}' > infracost.custom.spacelift.json`)
	s.createPolicy(t, "cost-cap", "PLAN", `package spacelift

deny contains sprintf("monthly cost %d is over budget", [input.third_party_metadata.custom.infracost.monthly_cost]) if {
	input.third_party_metadata.custom.infracost.monthly_cost > 1000
}
`)
	s.MustGantry(t, "policy", "attach", "--id", "cost-cap", "--stack", "pushed")
	sha := repo.Commit(t, "touch docs", map[string]string{"docs/readme.md": "hi\n"})
	var res apiv1.PushResult
	s.MustJSON(t, &res, "stack", "notify-push", "--id", "pushed", "--sha", sha, "--branch", "main", "--file", "docs/readme.md")
	if res.Action != "ignore" || !res.Default || res.Run != nil {
		t.Fatalf("a push outside the project root: %+v", res)
	}
	sha = repo.Commit(t, "change infra", map[string]string{"infra/main.tf": staticConfig("v2")})
	s.MustJSON(t, &res, "stack", "notify-push", "--id", "pushed", "--sha", sha, "--branch", "main", "--file", "infra/main.tf")
	if res.Action != "track" || res.Run == nil || res.Run.Type != "TRACKED" || res.Run.CommitSHA != sha {
		t.Fatalf("a push to the tracked branch: %+v", res)
	}
	r := s.WaitRun(t, res.Run.ID, "FAILED")
	if !strings.Contains(r.Reason, "monthly cost 1234 is over budget") || r.CommitSHA != sha {
		t.Fatalf("run = %s", s.Describe(t, r))
	}
	s.MustJSON(t, &res, "stack", "notify-push", "--id", "pushed", "--sha", sha, "--branch", "feature", "--file", "infra/main.tf")
	if res.Action != "propose" || res.Run == nil || res.Run.Type != "PROPOSED" {
		t.Fatalf("a push to another branch: %+v", res)
	}
}

// A secret variable passed as TF_VAR_ never shows in the stored plan JSON
// (GET /runs/{id}/plan) nor in policy samples, even when the configuration
// does not declare the variable sensitive.
func TestSecretTFVarNotInPlanJSON(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	const secret = "tfvar-s3cr3t-e2e"
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": `
variable "db_password" {
  type = string
}

resource "terraform_data" "db" {
  input = "postgres://app:${var.db_password}@db/app"
}
`})
	s.CreateStack(t, "tfvar", repo.URL)
	s.MustGantry(t, "stack", "env", "set", "--id", "tfvar", "TF_VAR_db_password", secret, "--secret")
	s.createPolicy(t, "sees-all", "PLAN", "package spacelift\n\nwarn contains \"look\" if { true }\n", "--label", "autoattach:*")
	r := s.WaitRun(t, s.StartRun(t, "preview", "tfvar").ID, "FINISHED")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/api/v1/runs/"+r.ID+"/plan", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !json.Valid(plan) || strings.Contains(string(plan), secret) || !strings.Contains(string(plan), "postgres://app:") {
		t.Fatalf("plan JSON (%d): %.400s", resp.StatusCode, plan)
	}
	var samples []apiv1.PolicySample
	s.MustJSON(t, &samples, "policy", "samples", "--id", "sees-all")
	for _, sm := range samples {
		var full apiv1.PolicySample
		s.MustJSON(t, &full, "policy", "sample", "--id", "sees-all", "--key", sm.Key)
		if strings.Contains(string(full.Input), secret) {
			t.Fatal("the secret is in a policy sample")
		}
	}
}
