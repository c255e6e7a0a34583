package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// docBlock returns the first ```sh block of a docs page after the line
// holding marker.
func docBlock(t *testing.T, page, marker string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleDir, "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), marker)
	if !ok {
		t.Fatalf("docs/%s has no %q", page, marker)
	}
	_, rest, ok = strings.Cut(rest, "```sh\n")
	block, _, ok2 := strings.Cut(rest, "```\n")
	if !ok || !ok2 {
		t.Fatalf("docs/%s: no sh block after %q", page, marker)
	}
	return block
}

// runDoc runs a block of shell commands as a reader would paste them, with
// the CLI on PATH and pointed at s, in a directory of its own; any failing
// command fails the test.
func (s *Server) runDoc(t *testing.T, block string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", block)
	cmd.Dir = t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GANTRY_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+cliHome, "PATH="+filepath.Dir(gantryBin)+":"+os.Getenv("PATH"),
		"GANTRY_URL="+s.URL, "GANTRY_TOKEN="+s.Token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the block failed (%v):\n%s\noutput:\n%s", err, block, out.String())
	}
	return out.String()
}

// docs/contexts.md's walkthrough runs as written after the README's
// first CLI block (space platform, inheriting, and its stack network).
func TestContextsWalkthroughRunsAsWritten(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Workers: 1})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("docs")})
	s.MustGantry(t, "space", "create", "--id", "platform", "--inherit")
	s.CreateStack(t, "network", repo.URL, "--space", "platform")
	out := s.runDoc(t, docBlock(t, "contexts.md", "The walkthrough below runs as it is"))
	for _, want := range []string{`Attached context "aws-prod" to stack "network"`, "context:aws-prod", `Deleted context "aws-prod"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the walkthrough's output lacks %q:\n%s", want, out)
		}
	}
}
