//go:build unix

package tofu

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// realBinary finds an installed tool: on PATH, or for OpenTofu also in the
// cache scripts/ensure-tofu.sh builds into.
func realBinary(tool Tool) (string, bool) {
	if p, err := exec.LookPath(tool.Binary()); err == nil {
		return p, true
	}
	if tool != OpenTofu {
		return "", false
	}
	var roots []string
	if dir := os.Getenv("GANTRY_TOOLS_CACHE"); dir != "" {
		roots = append(roots, dir)
	}
	if home, err := os.UserHomeDir(); err == nil {
		roots = append(roots, filepath.Join(home, ".cache", "gantry", "tools"))
	}
	for _, root := range roots {
		if _, p, ok := (&Resolver{ToolsDir: root}).newestInstalled(tool); ok {
			return p, true
		}
	}
	return "", false
}

const realConfig = `
resource "terraform_data" "example" {
  input = "hello"
}

output "greeting" {
  value = terraform_data.example.output
}
`

// TestRealTool runs the real OpenTofu (and Terraform, when installed) on a
// tiny configuration and checks that the parsers understand what it writes.
func TestRealTool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real tool; skipped with -short")
	}
	for _, tool := range []Tool{OpenTofu, Terraform} {
		t.Run(string(tool), func(t *testing.T) {
			bin, ok := realBinary(tool)
			if !ok {
				t.Skipf("no %s binary on PATH or in the tools cache (run scripts/ensure-tofu.sh to build OpenTofu)", tool.Binary())
			}
			t.Logf("using %s", bin)
			testRealTool(t, bin)
		})
	}
}

func testRealTool(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if v, err := binaryVersion(ctx, bin); err != nil || !ValidVersion(v) {
		t.Fatalf("version -json: %q, %v", v, err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(realConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	cliConfig := filepath.Join(t.TempDir(), "cli.tfrc")
	if err := os.WriteFile(cliConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"TF_CLI_CONFIG_FILE="+cliConfig,
		"TF_IN_AUTOMATION=1",
		"TF_INPUT=0",
		"CHECKPOINT_DISABLE=1",
		"TF_DATA_DIR="+filepath.Join(dir, ".terraform"),
	)
	run := func(args ...string) []byte {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code, err := RunSplit(ctx, bin, dir, env, &stdout, &stderr, args...)
		if err != nil || code != 0 {
			t.Fatalf("%v: exit %d, %v\nstdout:\n%s\nstderr:\n%s", args, code, err, stdout.String(), stderr.String())
		}
		return stdout.Bytes()
	}

	run("init", "-input=false", "-no-color")
	run("plan", "-input=false", "-no-color", "-out=tfplan")
	delta, changes, err := ParsePlan(run("show", "-json", "tfplan"))
	if err != nil {
		t.Fatalf("ParsePlan: %v", err)
	}
	if delta != (Delta{Add: 1}) || !changes {
		t.Errorf("ParsePlan = %+v, %v; want add=1 and changes", delta, changes)
	}

	run("apply", "-input=false", "-no-color", "-auto-approve", "tfplan")
	state, err := os.ReadFile(filepath.Join(dir, "terraform.tfstate"))
	if err != nil {
		t.Fatal(err)
	}
	serial, lineage, version, err := ParseStateHeader(state)
	if err != nil || serial < 1 || lineage == "" || version != 4 {
		t.Errorf("ParseStateHeader = %d, %q, %d, %v", serial, lineage, version, err)
	}
	outs, err := ParseOutputs(state)
	if err != nil || len(outs) != 1 || outs[0].Name != "greeting" || outs[0].Value != "hello" || outs[0].Type != "string" {
		t.Errorf("ParseOutputs = %+v, %v; want greeting = hello", outs, err)
	}

	// Nothing left to do: a fresh plan has no changes.
	run("plan", "-input=false", "-no-color", "-out=tfplan2")
	delta, changes, err = ParsePlan(run("show", "-json", "tfplan2"))
	if err != nil || delta != (Delta{}) || changes {
		t.Errorf("second ParsePlan = %+v, %v, %v; want no changes", delta, changes, err)
	}
}
