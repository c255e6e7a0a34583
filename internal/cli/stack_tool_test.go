package cli

import (
	"context"
	"strings"
	"testing"

	stackpkg "github.com/gantry-iac/gantry/internal/stack"
)

// `stack update --tool` that switches tools warns what that means, and
// says the other tool's version was cleared; the same tool again, or
// other flags, print no warning.
func TestStackUpdateToolSwitchWarns(t *testing.T) {
	isolate(t)
	ta := newTestAPI(t)
	if _, err := ta.Stacks.Create(context.Background(), stackpkg.Stack{ID: "net", Repository: "https://example.com/r.git", ToolVersion: "1.10.7"}); err != nil {
		t.Fatal(err)
	}
	flags := ta.serve(nil)
	run := func(args ...string) (string, string) {
		t.Helper()
		code, out, errOut := runMain(append(append([]string{"stack", "update", "--id", "net"}, args...), flags...)...)
		if code != 0 {
			t.Fatalf("stack update %v: exit %d: %s", args, code, errOut)
		}
		return out, errOut
	}
	if _, errOut := run("--tool", "opentofu"); strings.Contains(errOut, "Warning") {
		t.Errorf("same tool: %s", errOut)
	}
	out, errOut := run("--tool", "terraform")
	for _, want := range []string{"Warning: stack net switched from opentofu to terraform",
		"version: cleared (1.10.7 was opentofu's)", "Terraform ignores .tofu files", "Switching between OpenTofu and Terraform"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("warning lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(out, "1.10.7") {
		t.Errorf("the stack still shows the other tool's version:\n%s", out)
	}
	if _, errOut := run("--description", "d"); strings.Contains(errOut, "Warning") {
		t.Errorf("no tool flag: %s", errOut)
	}
	if _, errOut := run("--tool", "opentofu", "--tool-version", "1.10.6"); !strings.Contains(errOut, "switched from terraform to opentofu (version: 1.10.6)") {
		t.Errorf("switch back with a version: %s", errOut)
	}
}
