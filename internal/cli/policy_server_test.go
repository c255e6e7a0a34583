package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/policy"
)

// policyServer is the real API with policies over SQLite; it returns the
// flags that point the CLI at it.
func policyServer(t *testing.T) []string {
	t.Helper()
	ta := newTestAPI(t)
	n := notify.NewService(ta.D, ta.Box, ta.Log)
	pols := policy.NewService(ta.D, ta.Spaces, ta.Stacks, ta.Runs, n, ta.Hub, ta.Log)
	ta.Runs.Policies = pols
	ta.API.Notify, ta.API.Policies = n, pols
	return ta.serve(nil)
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantRun checks a CLI call's exit code and that stdout holds every want.
func wantRun(t *testing.T, code int, out, errOut string, wantCode int, want ...string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
}

const (
	// neverApproves rejects once a reviewer rejects, and never approves:
	// every run of its stacks waits for review.
	neverApproves = "package spacelift\n\nreject {\n\tcount(input.reviews.current.rejections) > 0\n}\n"
	// approvesAll is the edited body replay and simulate compare with.
	approvesAll = "package spacelift\n\napprove { true }\n"
)

func TestPolicyCommands(t *testing.T) {
	isolate(t)
	conn := policyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	dir := t.TempDir()
	body := writeFile(t, dir, "approval.rego", neverApproves)

	code, out, errOut := cli("policy", "create", "--id", "review", "--name", "Review", "--type", "approval",
		"--space", "root", "--body-file", body, "--label", "team")
	wantRun(t, code, out, errOut, 0, "ID:", "review", "Type:", "APPROVAL", "Engine:", "rego_v0 (detected)", "Version:", "team")

	// A syntax error is refused with its line number.
	bad := writeFile(t, dir, "bad.rego", "package spacelift\n\napprove {\n\tinput.run.state ==\n}\n")
	code, out, errOut = cli("policy", "create", "--id", "bad", "--type", "APPROVAL", "--body-file", bad)
	if code != 1 || !strings.Contains(errOut, "does not compile") || !regexp.MustCompile(`:[45]:\d+: `).MatchString(errOut) {
		t.Errorf("bad body: exit %d, stderr %q: want 1 and file:line:col of the error", code, errOut)
	}

	code, out, errOut = cli("policy", "list", "--type", "APPROVAL")
	wantRun(t, code, out, errOut, 0, "ENGINE", "review", "Review", "APPROVAL", "rego_v0")
	code, out, errOut = cli("policy", "list", "--type", "PLAN")
	if code != 0 || strings.Contains(out, "review") {
		t.Errorf("list --type PLAN: exit %d\n%s", code, out)
	}

	code, out, errOut = cli("stack", "create", "--id", "app", "--repository", "https://git.example.com/app.git")
	wantRun(t, code, out, errOut, 0)
	code, out, errOut = cli("policy", "attach", "--id", "review", "--stack", "app")
	wantRun(t, code, out, errOut, 0, `Attached policy "review" to stack "app"`)
	code, out, errOut = cli("policy", "show", "--id", "review")
	wantRun(t, code, out, errOut, 0, "Attached to:", "app (explicit)", "count(input.reviews.current.rejections)")
	if !strings.Contains(out, "\tcount(") {
		t.Errorf("show changed the body's tabs:\n%s", out)
	}
	var shown policyWithAttachments
	code, out, _ = cli("policy", "show", "--id", "review", "-o", "json")
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || shown.Body != neverApproves || len(shown.Attachments) != 1 {
		t.Errorf("show -o json: exit %d, %v, %+v", code, err, shown)
	}

	code, out, errOut = cli("policy", "update", "--id", "review", "--description", "waits for a person", "--label", "")
	wantRun(t, code, out, errOut, 0, "waits for a person", "Version:")
	code, _, errOut = cli("policy", "update", "--id", "review")
	if code != 2 || !strings.Contains(errOut, "nothing to update") {
		t.Errorf("update without flags: exit %d, %s", code, errOut)
	}

	input := writeFile(t, dir, "input.json", `{"run": {"state": "QUEUED"}, "reviews": {"current": {"approvals": [], "rejections": [{"author": "ann"}]}}}`)
	code, out, errOut = cli("policy", "simulate", "--id", "review", "--input", input)
	wantRun(t, code, out, errOut, 0, "Policy:", "review", "Outcome:", "reject")
	var sim apiv1.PolicySimulation
	code, out, _ = cli("policy", "simulate", "--id", "review", "--input", input, "--body", writeFile(t, dir, "edit.rego", approvesAll), "-o", "json")
	if err := json.Unmarshal([]byte(out), &sim); code != 0 || err != nil || !sim.Edited || sim.Decision.Outcome == "" {
		t.Errorf("simulate edited: exit %d, %v, %+v", code, err, sim)
	}
	code, _, errOut = cli("policy", "simulate", "--id", "review")
	if code != 2 || !strings.Contains(errOut, "input") {
		t.Errorf("simulate without input or sample: exit %d, %s", code, errOut)
	}

	// A body from standard input makes a new version.
	old := stdin
	stdin = strings.NewReader(approvesAll)
	code, out, errOut = cli("policy", "update", "--id", "review", "--body-file", "-", "--engine", "rego_v0")
	stdin = old
	wantRun(t, code, out, errOut, 0, "rego_v0")
	if _, out, _ = cli("policy", "show", "--id", "review"); !strings.Contains(out, "approve { true }") {
		t.Errorf("body read from stdin not saved:\n%s", out)
	}
	var upd apiv1.Policy
	if _, out, _ = cli("policy", "show", "--id", "review", "-o", "json"); json.Unmarshal([]byte(out), &upd) != nil || upd.Version != 2 || upd.EngineSet != "rego_v0" {
		t.Errorf("after the new body: %s", out)
	}

	code, out, errOut = cli("policy", "detach", "--id", "review", "--stack", "app")
	wantRun(t, code, out, errOut, 0, "Detached")
	code, out, errOut = cli("policy", "show", "--id", "review")
	wantRun(t, code, out, errOut, 0, "Attached to:")
	if strings.Contains(out, "app (explicit)") {
		t.Errorf("still attached after detach:\n%s", out)
	}

	code, out, errOut = cli("policy", "delete", "--id", "review")
	wantRun(t, code, out, errOut, 0, `Deleted policy "review"`)
	code, _, errOut = cli("policy", "show", "--id", "review")
	if code != 1 || !strings.Contains(errOut, "not_found") {
		t.Errorf("show deleted: exit %d, %s", code, errOut)
	}
}

func TestPolicyLibraryCommands(t *testing.T) {
	isolate(t)
	conn := policyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }

	var lib []apiv1.LibraryPolicy
	code, out, errOut := cli("policy", "library", "list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &lib); code != 0 || err != nil || len(lib) == 0 {
		t.Fatalf("library list: exit %d, %v, %s %s", code, err, out, errOut)
	}
	first := lib[0]
	code, out, errOut = cli("policy", "library", "list")
	wantRun(t, code, out, errOut, 0, "NAME", "TYPE", first.Name, first.Type)

	code, out, errOut = cli("policy", "library", "show", "--name", first.Name)
	wantRun(t, code, out, errOut, 0, "Name:", first.Name, "package ")
	code, _, errOut = cli("policy", "library", "show", "--name", "no-such-policy")
	if code != 1 || !strings.Contains(errOut, "no library policy") {
		t.Errorf("show unknown: exit %d, %s", code, errOut)
	}

	code, out, errOut = cli("policy", "library", "import", "--name", first.Name, "--space", "root", "--id", "imported", "--label", "x")
	wantRun(t, code, out, errOut, 0, "imported", first.Type, "Labels:", "x")
	code, out, errOut = cli("policy", "list")
	wantRun(t, code, out, errOut, 0, "imported", first.Name)
}

func TestPolicyTestCommand(t *testing.T) {
	isolate(t) // no server, no login: `policy test` runs locally
	pass := t.TempDir()
	writeFile(t, pass, "policy.rego", "package spacelift\n\ndeny[msg] {\n\tinput.x > 1\n\tmsg := \"too big\"\n}\n")
	writeFile(t, pass, "policy_test.rego", "package spacelift\n\ntest_small {\n\tcount(deny) == 0 with input as {\"x\": 1}\n}\n\n"+
		"test_big {\n\tdeny[\"too big\"] with input as {\"x\": 2}\n}\n")
	// One summary, opa test's.
	oneSummary := func(out string) {
		t.Helper()
		if n := strings.Count(out, "PASS:") + strings.Count(out, "FAIL:"); n != 1 || strings.Contains(out, ", FAIL:") {
			t.Errorf("want opa test's summary alone, got:\n%s", out)
		}
	}
	code, out, errOut := runMain("policy", "test", pass)
	wantRun(t, code, out, errOut, 0, "PASS: 2/2")
	oneSummary(out)

	code, out, errOut = runMain("policy", "test", "-v", pass)
	wantRun(t, code, out, errOut, 0, "test_small", "test_big", "PASS: 2/2")

	fail := t.TempDir()
	writeFile(t, fail, "policy.rego", "package spacelift\n\ndeny[msg] {\n\tinput.x > 1\n\tmsg := \"too big\"\n}\n")
	writeFile(t, fail, "policy_test.rego", "package spacelift\n\ntest_wrong {\n\tcount(deny) == 1 with input as {\"x\": 1}\n}\n")
	code, out, errOut = runMain("policy", "test", fail)
	wantRun(t, code, out, errOut, 1, "test_wrong", "FAIL: 1/1")
	oneSummary(out)
	if !strings.Contains(errOut, "1 of 1 policy tests failed") {
		t.Errorf("stderr: %s", errOut)
	}

	var sum map[string]int
	code, out, _ = runMain("policy", "test", fail, "-o", "json")
	if err := json.Unmarshal([]byte(out), &sum); code != 1 || err != nil || sum["failed"] != 1 {
		t.Errorf("-o json: exit %d, %v, %q", code, err, out)
	}

	broken := t.TempDir()
	writeFile(t, broken, "policy.rego", "package spacelift\n\ndeny[msg] {\n")
	code, _, errOut = runMain("policy", "test", broken)
	if code != 1 || !strings.Contains(errOut, "policy.rego:") {
		t.Errorf("broken policy: exit %d, %s", code, errOut)
	}
	code, _, _ = runMain("policy", "test")
	if code != 2 {
		t.Errorf("policy test without DIR: exit %d, want 2", code)
	}
}

// policy show lists an explicit attachment that a space turning inherit
// off cut off from its stack as not applied, with why: runs skip it.
func TestPolicyShowNotAppliedAttachment(t *testing.T) {
	isolate(t)
	conn := policyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	body := writeFile(t, t.TempDir(), "plan.rego", "package spacelift\n\ndeny contains \"no\" if false\n")
	for _, args := range [][]string{
		{"space", "create", "--id", "team", "--name", "team", "--inherit"},
		{"space", "create", "--id", "app", "--name", "app", "--parent", "team", "--inherit"},
		{"stack", "create", "--id", "web", "--space", "app", "--repository", "https://git.example.com/web.git"},
		{"policy", "create", "--id", "guard", "--type", "PLAN", "--space", "root", "--body-file", body},
		{"policy", "attach", "--id", "guard", "--stack", "web"},
	} {
		code, out, errOut := cli(args...)
		wantRun(t, code, out, errOut, 0)
	}
	code, out, errOut := cli("policy", "show", "--id", "guard")
	wantRun(t, code, out, errOut, 0, "web (explicit)")
	code, out, errOut = cli("space", "update", "--id", "team", "--inherit=false")
	wantRun(t, code, out, errOut, 0)
	code, out, errOut = cli("policy", "show", "--id", "guard")
	wantRun(t, code, out, errOut, 0, `web (explicit; not applied: space "team" does not inherit from its parent "root", so stack "web" (space "app") does not see the policies of space "root")`)
	var shown policyWithAttachments
	code, out, _ = cli("policy", "show", "--id", "guard", "-o", "json")
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || len(shown.Attachments) != 1 ||
		shown.Attachments[0].Applied || !strings.Contains(shown.Attachments[0].NotApplied, `space "team" does not inherit`) {
		t.Errorf("show -o json: exit %d, %v, %+v", code, err, shown.Attachments)
	}
}
