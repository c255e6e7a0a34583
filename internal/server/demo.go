package server

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/examples"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/schedule"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
)

// demo pushes the embedded demo configuration into a local git repository,
// creates the demo space and stack, and deploys it.
func (s *Server) demo(ctx context.Context) error {
	repo := filepath.Join(s.cfg.DataDir, "demo-repo")
	if _, err := os.Stat(filepath.Join(repo, ".git")); os.IsNotExist(err) {
		if err := writeDemoRepo(ctx, repo); err != nil {
			return err
		}
	}
	if _, err := s.spaces.Create(ctx, space.Space{ID: "demo", Description: "The demo space."}); err != nil && !errs.Is(err, errs.Conflict) {
		return err
	}
	_, err := s.stacks.Create(ctx, stack.Stack{ID: "demo", Name: "Demo stack", Space: "demo", Repository: repo, Branch: "main",
		Autodeploy: true, ManagedState: true, Labels: []string{"demo"}, Description: "terraform_data and local-exec: no cloud needed."})
	if errs.Is(err, errs.Conflict) {
		fmt.Fprintf(s.out, "Demo: stack \"demo\" exists already (in %s); Gantry is at %s.\n", s.cfg.DataDir, s.url)
		s.demoHints("")
		return nil
	}
	if err != nil {
		return err
	}
	// Drift detection every 5 minutes, once the deploy finished.
	if _, err := s.schedules.SetDrift(ctx, "demo", "gantry::demo", schedule.DriftSettings{Crons: []string{"*/5 * * * *"}}); err != nil {
		return err
	}
	r, err := s.runs.Create(ctx, run.New{StackID: "demo", Type: run.Tracked, TriggeredBy: "gantry::demo"})
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "Demo: stack \"demo\" in space \"demo\", tracked run %s queued.\n", r.ID)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		r, err = s.runs.Get(ctx, r.ID)
		if err != nil {
			return err
		}
		if run.Terminal(r.State) {
			break
		}
	}
	fmt.Fprintf(s.out, "Demo run %s ended %s %s\n", r.ID, r.State, r.Reason)
	s.demoHints(r.ID)
	return nil
}

// demoHints prints what to paste in another shell to try the CLI on the
// demo: this binary on the PATH, the server's URL and the admin token
// file, by absolute paths (the new shell may be anywhere).
func (s *Server) demoHints(runID string) {
	token := "<your admin API token>"
	if p, err := filepath.Abs(filepath.Join(s.cfg.DataDir, "admin-token")); err == nil {
		if _, err := os.Stat(p); err == nil {
			token = "$(cat " + p + ")"
		}
	}
	var b strings.Builder
	b.WriteString("Try the CLI (in another shell):\n")
	if exe, err := os.Executable(); err == nil {
		fmt.Fprintf(&b, "  export PATH=%s:$PATH\n", filepath.Dir(exe))
	}
	fmt.Fprintf(&b, "  export GANTRY_URL=%s GANTRY_TOKEN=%s\n  gantry stack list\n", s.url, token)
	if runID != "" {
		fmt.Fprintf(&b, "  gantry run show --id %s\n  gantry stack logs --id demo --run %s\n", runID, runID)
	} else {
		b.WriteString("  gantry run list --stack demo\n")
	}
	b.WriteString(`  gantry stack outputs --id demo
  gantry stack deploy --id demo --wait
  gantry stack drift-detection show --id demo   # checked for drift every 5 minutes
  gantry drift list
`)
	_, _ = io.WriteString(s.out, b.String())
}

func writeDemoRepo(ctx context.Context, repo string) error {
	err := fs.WalkDir(examples.Demo, "demo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := examples.Demo.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("demo", p)
		dst := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "--quiet", "-b", "main"},
		{"add", "."},
		{"-c", "user.name=Gantry", "-c", "user.email=demo@gantry.invalid", "commit", "--quiet", "-m", "Demo stack"},
	} {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v: %s", args[0], err, out)
		}
	}
	return nil
}
