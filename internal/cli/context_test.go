package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/contexts"
)

func contextServer(t *testing.T) []string {
	t.Helper()
	ta := newTestAPI(t)
	ta.API.Contexts = contexts.NewService(ta.D, ta.Box, ta.Spaces, ta.Stacks)
	return ta.serve(nil)
}

func TestContextCommands(t *testing.T) {
	isolate(t)
	conn := contextServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(args...)
		if code != 0 {
			t.Fatalf("gantry %s = %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	const secret = "cli-secret-value-777"
	keyFile := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(keyFile, []byte(`{"key": "file-secret-content"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	must("stack", "create", "--id", "web", "--repository", "https://example.com/x.git", "--label", "eu")
	must("context", "create", "--id", "aws", "--name", "AWS", "--space", "root")
	must("context", "create", "--id", "shared", "--label", "autoattach:eu")
	if out := must("context", "env", "set", "--id", "aws", "AWS_SECRET", secret, "--secret"); strings.Contains(out, secret) || !strings.Contains(out, "*****") {
		t.Errorf("env set printed:\n%s", out)
	}
	must("context", "env", "set", "--id", "aws", "REGION", "eu-west-1")
	must("context", "env", "set", "--id", "shared", "REGION", "us-east-1")
	must("context", "env", "set", "--id", "shared", "ro_TOKEN", "read")
	must("context", "file", "set", "--id", "aws", "creds/key.json", "--from-file", keyFile, "--secret")
	must("context", "hook", "add", "--id", "aws", "--phase", "before_plan", "--command", "echo hi")
	if code, _, errOut := cli("context", "hook", "add", "--id", "aws", "--phase", "whenever", "--command", "x"); code != 1 || !strings.Contains(errOut, "unknown hook phase") {
		t.Errorf("bad phase: %d %s", code, errOut)
	}
	if out := must("context", "attach", "--id", "aws", "--stack", "web", "--priority", "3"); !strings.Contains(out, "priority 3") {
		t.Errorf("attach printed %q", out)
	}

	show := must("context", "show", "--id", "aws")
	for _, want := range []string{"AWS", "Hook before_plan:", "echo hi", "web (priority 3)", "Env AWS_SECRET:", "*****", "File creds/key.json:", "secret"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	// A hook can be removed again.
	must("context", "hook", "add", "--id", "aws", "--phase", "before_plan", "--command", "tflint")
	must("context", "hook", "delete", "--id", "aws", "--phase", "before_plan", "--command", "tflint")
	if show := must("context", "show", "--id", "aws"); strings.Contains(show, "tflint") || !strings.Contains(show, "echo hi") {
		t.Errorf("after hook delete:\n%s", show)
	}
	if code, _, _ := cli("context", "hook", "delete", "--id", "aws", "--phase", "before_plan", "--command", "nope"); code == 0 {
		t.Error("deleting a hook that does not exist succeeded")
	}
	env := must("stack", "env", "list", "--id", "web")
	for _, want := range []string{"AWS_SECRET", "context:aws", contexts.Checksum([]byte(secret)), "ro_TOKEN", "context:shared",
		"creds/key.json", "CONTEXT", "autoattach:eu"} {
		if !strings.Contains(env, want) {
			t.Errorf("stack env list lacks %q:\n%s", want, env)
		}
	}
	var vars []apiv1.EffectiveEnvVar
	if err := json.Unmarshal([]byte(must("stack", "env", "list", "--id", "web", "-o", "json")), &vars); err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if v.Name == "REGION" && (v.Context != "aws" || v.Value != "eu-west-1") {
			t.Errorf("REGION = %+v, want the attached context's over the auto-attached one's", v)
		}
	}
	for _, out := range []string{show, env, must("context", "show", "--id", "aws", "-o", "json"), must("context", "env", "list", "--id", "aws")} {
		if strings.Contains(out, secret) || strings.Contains(out, "file-secret-content") {
			t.Errorf("a secret was printed:\n%s", out)
		}
	}
	if out := must("context", "list"); !strings.Contains(out, "aws") || !strings.Contains(out, "shared") {
		t.Errorf("list:\n%s", out)
	}
	must("context", "detach", "--id", "aws", "--stack", "web")
	must("context", "file", "delete", "--id", "aws", "creds/key.json")
	must("context", "env", "delete", "--id", "aws", "REGION")
	must("context", "delete", "--id", "aws")
	if code, _, errOut := cli("context", "show", "--id", "aws"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("show deleted: %d %s", code, errOut)
	}
}

// context show lists an explicit attachment that a space turning inherit
// off cut off from its stack as not applied, with why: runs skip it.
func TestContextShowNotAppliedAttachment(t *testing.T) {
	isolate(t)
	conn := contextServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	for _, args := range [][]string{
		{"space", "create", "--id", "team", "--name", "team", "--inherit"},
		{"space", "create", "--id", "app", "--name", "app", "--parent", "team", "--inherit"},
		{"stack", "create", "--id", "web", "--space", "app", "--repository", "https://git.example.com/web.git"},
		{"context", "create", "--id", "aws", "--space", "root"},
		{"context", "env", "set", "--id", "aws", "REGION", "eu-west-1"},
		{"context", "attach", "--id", "aws", "--stack", "web", "--priority", "2"},
	} {
		code, out, errOut := cli(args...)
		wantRun(t, code, out, errOut, 0)
	}
	code, out, errOut := cli("context", "show", "--id", "aws")
	wantRun(t, code, out, errOut, 0, "web (priority 2)")
	code, out, errOut = cli("stack", "env", "list", "--id", "web")
	wantRun(t, code, out, errOut, 0, "context:aws")
	code, out, errOut = cli("space", "update", "--id", "team", "--inherit=false")
	wantRun(t, code, out, errOut, 0)
	code, out, errOut = cli("context", "show", "--id", "aws")
	wantRun(t, code, out, errOut, 0, `web (explicit, priority 2; not applied: space "team" does not inherit from its parent "root", so stack "web" (space "app") does not see the contexts of space "root")`)
	var shown contextDetails
	code, out, _ = cli("context", "show", "--id", "aws", "-o", "json")
	if err := json.Unmarshal([]byte(out), &shown); code != 0 || err != nil || len(shown.Attachments) != 1 ||
		shown.Attachments[0].Applied || !strings.Contains(shown.Attachments[0].NotApplied, `space "team" does not inherit`) {
		t.Errorf("show -o json: exit %d, %v, %+v", code, err, shown.Attachments)
	}
	// Runs agree: the stack's effective environment has no context.
	code, out, errOut = cli("stack", "env", "list", "--id", "web", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	if strings.Contains(out, "context:aws") {
		t.Errorf("stack env list uses the cut-off context:\n%s", out)
	}
}
