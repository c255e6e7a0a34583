package cli

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

const pushSHA = "0123456789abcdef0123456789abcdef01234567"

func TestRunReviewAndReceipts(t *testing.T) {
	isolate(t)
	conn := policyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	dir := t.TempDir()

	for _, args := range [][]string{
		{"stack", "create", "--id", "app", "--repository", "https://git.example.com/app.git"},
		{"policy", "create", "--id", "review", "--type", "APPROVAL", "--body-file", writeFile(t, dir, "p.rego", neverApproves)},
		{"policy", "attach", "--id", "review", "--stack", "app"},
	} {
		code, out, errOut := cli(args...)
		wantRun(t, code, out, errOut, 0)
	}

	var created apiv1.Run
	code, out, errOut := cli("stack", "deploy", "--id", "app", "-o", "json")
	if err := json.Unmarshal([]byte(out), &created); code != 0 || err != nil || created.State != apiv1.StatePendingReview {
		t.Fatalf("deploy: exit %d, %v, state %q\n%s", code, err, created.State, errOut)
	}

	code, out, errOut = cli("run", "show", "--id", created.ID)
	wantRun(t, code, out, errOut, 0, "PENDING_REVIEW", "TRANSITION", "EVALUATED", "POLICY", "review", "APPROVAL")

	for _, bad := range [][]string{
		{"run", "review", "--id", created.ID},
		{"run", "review", "--id", created.ID, "--approve", "--reject"},
	} {
		if code, _, errOut := cli(bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", bad, code, errOut)
		}
	}

	code, out, errOut = cli("run", "review", "--id", created.ID, "--reject", "--note", "not today")
	wantRun(t, code, out, errOut, 0, created.ID, "FAILED")

	code, out, errOut = cli("run", "show", "--id", created.ID)
	wantRun(t, code, out, errOut, 0, "FAILED", "REVIEWER", "REJECT", "not today", "reject")
	var shown runWithPolicies
	code, out, _ = cli("run", "show", "--id", created.ID, "-o", "json")
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.State != apiv1.StateFailed ||
		len(shown.PolicyReceipts) < 2 || len(shown.Reviews) != 1 || len(shown.Transitions) == 0 {
		t.Errorf("run show -o json: exit %d, %v\n%s", code, err, out)
	}
	if !strings.Contains(out, `"policy_receipts"`) || !strings.Contains(out, `"reviews"`) || !strings.Contains(out, `"transitions"`) {
		t.Errorf("run show -o json lacks keys:\n%s", out)
	}

	// The evaluations left samples to inspect, simulate and replay.
	var samples []apiv1.PolicySample
	code, out, errOut = cli("policy", "samples", "--id", "review", "-o", "json")
	if err := json.Unmarshal([]byte(out), &samples); code != 0 || err != nil || len(samples) == 0 {
		t.Fatalf("samples: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	key := samples[0].Key
	code, out, errOut = cli("policy", "samples", "--id", "review")
	wantRun(t, code, out, errOut, 0, "KEY", key, created.ID)
	code, out, errOut = cli("policy", "sample", "--id", "review", "--key", key)
	wantRun(t, code, out, errOut, 0, "Key:", key, "Input:", `"reviews"`, "Result:", `"outcome"`)

	code, out, errOut = cli("policy", "simulate", "--id", "review", "--sample", key)
	wantRun(t, code, out, errOut, 0, "Outcome:", "Recorded Outcome:", "Changes:", "no change")
	code, out, errOut = cli("policy", "simulate", "--id", "review", "--sample", key, "--body", writeFile(t, dir, "a.rego", approvesAll))
	wantRun(t, code, out, errOut, 0, "edited body", "Recorded Outcome:", "Change:")

	code, out, errOut = cli("policy", "replay", "--id", "review", "--body", writeFile(t, dir, "b.rego", approvesAll), "--since", "1h")
	wantRun(t, code, out, errOut, 0, "SAMPLE", "BEFORE → AFTER", "→ approve", created.ID)
	m := regexp.MustCompile(`(\d+) samples evaluated, (\d+) would change`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("replay summary: %q", out)
	}
	code, out, errOut = cli("policy", "replay", "--id", "review", "--body", writeFile(t, dir, "c.rego", neverApproves))
	n := regexp.MustCompile(`(\d+) samples evaluated, 0 would change`).FindStringSubmatch(out)
	if code != 0 || n == nil || strings.Contains(out, "SAMPLE") {
		t.Errorf("replay unchanged body: exit %d\n%s%s", code, out, errOut)
	}
	if evaluated, _ := strconv.Atoi(m[1]); evaluated != len(samples) {
		t.Errorf("replay evaluated %d samples, the policy has %d", evaluated, len(samples))
	}
}

func TestNotifyPush(t *testing.T) {
	isolate(t)
	conn := policyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	code, out, errOut := cli("stack", "create", "--id", "web", "--repository", "https://git.example.com/web.git", "--branch", "main")
	wantRun(t, code, out, errOut, 0)
	files := writeFile(t, t.TempDir(), "files.txt", "main.tf\n\nmodules/vpc/main.tf\n")

	code, out, errOut = cli("stack", "notify-push", "--id", "web", "--sha", pushSHA, "--branch", "main",
		"--message", "add vpc", "--author", "ann", "--file", "README.md", "--files-from", files)
	wantRun(t, code, out, errOut, 0, "Action:", "track", "default rules", "Run:", "TRACKED")

	var res apiv1.PushResult
	code, out, _ = cli("stack", "notify-push", "--id", "web", "--sha", pushSHA, "--branch", "feature", "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || res.Action == "" || res.Action == "track" {
		t.Errorf("push to another branch: exit %d, %v, %+v", code, err, res)
	}

	code, out, errOut = cli("stack", "notify-push", "--id", "web", "--sha", pushSHA, "--branch", "feature",
		"--file", "main.tf", "--pull-request", "7", "--pr-action", "opened", "--pr-title", "VPC", "--pr-label", "infra", "--base-branch", "main")
	wantRun(t, code, out, errOut, 0, "Action:", "propose", "PROPOSED")

	for _, bad := range [][]string{
		{"stack", "notify-push", "--id", "web", "--sha", pushSHA},
		{"stack", "notify-push", "--id", "web", "--sha", pushSHA, "--branch", "main", "--draft"},
		{"stack", "notify-push", "--id", "web", "--branch", "main"},
	} {
		if code, _, errOut := cli(bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", bad, code, errOut)
		}
	}
}

func TestNotifyPushWait(t *testing.T) {
	isolate(t)
	pushed := apiv1.PushResult{Action: "track", Run: &apiv1.Run{ID: "run-1", Stack: "net", Type: "TRACKED", State: "QUEUED"},
		Receipts: []apiv1.PolicyReceipt{{Policy: "push", Type: "GIT_PUSH", Version: 1, Outcome: "track", Messages: []string{"main"}}}}
	tests := []struct {
		name     string
		final    apiv1.Run
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"finished", run("FINISHED"), 0, []string{"run-1 TRACKED FINISHED", "GIT_PUSH", "push"}, "run-1 FINISHED"},
		{"failed", run("FAILED"), 1, []string{"run-1 TRACKED FAILED"}, "ended FAILED"},
		{"pending review", run("PENDING_REVIEW"), 0, []string{"PENDING_REVIEW"}, "gantry run review --id run-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]route{
				"POST /api/v1/stacks/net/notify-push": status(201, pushed),
				"GET /api/v1/runs/run-1":              seq(run("PLANNING"), tt.final),
			})
			code, out, errOut := runMain("stack", "notify-push", "--id", "net", "--sha", pushSHA, "--branch", "main", "--wait", "--url", f.srv.URL)
			wantRun(t, code, out, errOut, tt.wantCode, tt.wantOut...)
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
			if reqs := f.requests(); !strings.Contains(reqs[0], `"branch":"main","sha":"`+pushSHA+`","affected_files":[]`) {
				t.Errorf("request %q", reqs[0])
			}
		})
	}
}
