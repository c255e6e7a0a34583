package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/redact"
	"github.com/gantry-iac/gantry/internal/tofu"
)

// prepare checks out the code and sets up tool, backend and environment.
func (j *jobRun) prepare(ctx context.Context) (commit git.Commit, err error) {
	src := filepath.Join(j.dir, "src")
	shown, _ := redact.Repository(j.job.Repository)
	j.log.Printf("Cloning %s (branch %s) at %s", shown, j.job.Branch, orHead(j.job.CommitSHA))
	if commit, err = j.checkout(ctx, src); err != nil {
		return git.Commit{}, err
	}
	j.log.Printf("Checked out commit %s: %s", commit.SHA, firstLine(commit.Message))
	if j.job.CommitSHA == "" {
		j.job.CommitSHA = commit.SHA // for TF_VAR_gantry_commit_sha and TF_VAR_spacelift_commit_sha
	}
	if err := j.mountFiles(); err != nil {
		return git.Commit{}, err
	}
	if err := j.setup(ctx, src); err != nil {
		return git.Commit{}, err
	}
	if fi, err := os.Lstat(filepath.Join(j.root, ".terraform")); err == nil && fi.IsDir() {
		j.dotTerraform = true
		j.log.Printf("The repository holds a .terraform directory in the project root: init takes it for its own working data (%s); remove it from the repository and add .terraform/ to .gitignore", dotTerraformHint)
	}
	if j.job.ManagedState {
		if err := checkNoBackend(j.root); err != nil {
			return git.Commit{}, err
		}
		if err := writeBackendOverride(j.root); err != nil {
			return git.Commit{}, fail("writing the backend configuration: %v", err)
		}
	}
	return commit, nil
}

// checkout writes the job's commit into src, within the worker's
// CheckoutTimeout.
func (j *jobRun) checkout(ctx context.Context, src string) (git.Commit, error) {
	timeout := j.w.cfg.CheckoutTimeout
	if timeout <= 0 {
		timeout = DefaultCheckoutTimeout
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var commit git.Commit
	var err error
	if cache := j.w.gitCache(j.slot); cache != nil {
		log := j.w.cfg.Log.With("run_id", j.job.RunID, "stack_id", j.job.StackID)
		cache.Warn = func(msg string) {
			log.Warn(msg)
			j.log.Printf("Warning: %s", msg)
		}
		commit, err = cache.Checkout(tctx, j.job.Repository, j.job.Branch, j.job.CommitSHA, src)
	} else {
		commit, err = git.Checkout(tctx, j.job.Repository, j.job.Branch, j.job.CommitSHA, src)
	}
	switch {
	case err != nil && tctx.Err() != nil && ctx.Err() == nil:
		return git.Commit{}, fail("checking out the code: timed out after %v", timeout)
	case err != nil:
		return git.Commit{}, fail("checking out the code: %v", err)
	}
	return commit, nil
}

// setup finds the project root, the tool and builds the environment.
func (j *jobRun) setup(ctx context.Context, src string) error {
	root, err := resolveProjectRoot(src, j.job.ProjectRoot)
	if err != nil {
		return err
	}
	j.root = root
	bin, err := j.w.cfg.Resolver.Resolve(ctx, tofu.Tool(j.job.Tool), j.job.ToolVersion, ownLines{j.log})
	if err != nil {
		return fail("finding %s %s: %v", j.job.Tool, orAny(j.job.ToolVersion), err)
	}
	j.bin = bin
	cliConfig := filepath.Join(j.dir, "cli.tfrc")
	if err := os.WriteFile(cliConfig, nil, 0o600); err != nil {
		return fail("writing the CLI configuration: %v", err)
	}
	if err := j.writeOIDCToken(); err != nil {
		return err
	}
	scope := "read"
	if j.job.Kind != "plan" {
		scope = "write"
	}
	if err := j.mintDelegated(ctx, j.job.Delegated, scope); err != nil {
		return err
	}
	if err := j.writeCredentialFiles(); err != nil {
		return err
	}
	if err := checkEnvNUL(j.job); err != nil {
		return err
	}
	j.env = j.envFor(cliConfig, filepath.Dir(bin), false)
	for _, name := range ignoredStateVars(j.job) {
		j.log.Printf("The variable %s is ignored: this stack's state is managed by Gantry, which sets it (turn managed state off to use your own)", name)
	}
	return checkBackendArgs(j.job)
}

// ownLines writes what it is given to the run's log as Gantry's own lines
// ("[gantry] Using OpenTofu 1.10.7 (...)"): the tool resolver's messages,
// which output of the run cannot then pass for (see lineMarker).
type ownLines struct{ l *logStream }

func (w ownLines) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.l.Printf("%s", line)
	}
	return len(p), nil
}
