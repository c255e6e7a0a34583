package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/redact"
	"github.com/gantry-iac/gantry/internal/runenv"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/tofu"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// What contexts bring to a job: mounted files, per-stage variables
// (Spacelift's ro_ and wo_ prefixes), Spacelift's TF_VAR_spacelift_*
// names, and the hooks of the destroy, perform and after_run phases.

// Stage prefixes: ro_X reaches the read stages (everything but applying)
// as X; wo_X reaches only the write stage (applying) as X.
const (
	readOnlyPrefix  = "ro_"
	writeOnlyPrefix = "wo_"
)

// stageVar is a variable as one stage gets it.
type stageVar struct {
	name, value string
	rank        int
	secret      bool
}

// stageVars returns the job's variables as KEY=VALUE for one stage. For
// each name X the value comes from the highest-precedence source (lowest
// Rank: the stack, then contexts in order) that sets X or the stage's form
// of it (ro_X for the read stages, wo_X for applying); within one source
// the stage form wins. The other stage's forms are left out.
func stageVars(vars []workerapi.EnvVar, write bool) []string {
	picked := pickStageVars(vars, write)
	out := make([]string, 0, len(picked))
	for _, v := range picked {
		out = append(out, v.name+"="+v.value)
	}
	return out
}

// pickStageVars is stageVars with where each value comes from.
func pickStageVars(vars []workerapi.EnvVar, write bool) []stageVar {
	type pick struct {
		stageVar
		staged bool
	}
	best := map[string]pick{}
	var order []string
	for _, v := range vars {
		name, staged := v.Name, false
		if ro, ok := strings.CutPrefix(v.Name, readOnlyPrefix); ok {
			if write {
				continue
			}
			name, staged = ro, true
		} else if wo, ok := strings.CutPrefix(v.Name, writeOnlyPrefix); ok {
			if !write {
				continue
			}
			name, staged = wo, true
		}
		if name == "" || runenv.Reserved(name) != "" {
			continue // names Gantry sets itself (a variable stored before a name was reserved does not override it)
		}
		cur, seen := best[name]
		if !seen {
			order = append(order, name)
		}
		if !seen || v.Rank < cur.rank || (v.Rank == cur.rank && staged && !cur.staged) {
			best[name] = pick{stageVar: stageVar{name: name, value: v.Value, rank: v.Rank, secret: v.Secret}, staged: staged}
		}
	}
	out := make([]stageVar, 0, len(order))
	for _, name := range order {
		out = append(out, best[name].stageVar)
	}
	return out
}

// runVars are the facts about the run every job gets as input variables,
// under Gantry's names (TF_VAR_gantry_<name>) and Spacelift's
// (TF_VAR_spacelift_<name>), so that configurations written for Spacelift
// run unchanged.
func runVars(job *workerapi.Job, workspace string) map[string]string {
	lbls, _ := json.Marshal(orNoLabels(job.StackLabels))
	repo, _ := redact.Repository(job.Repository) // as the stack shows it, without a credential
	return map[string]string{
		"run_id":            job.RunID,
		"stack_id":          job.StackID,
		"space_id":          job.SpaceID,
		"run_type":          job.RunType,
		"commit_sha":        job.CommitSHA,
		"commit_branch":     job.Branch,
		"stack_branch":      job.Branch,
		"repository":        repo,
		"project_root":      job.ProjectRoot,
		"stack_labels":      strings.Join(job.StackLabels, ","),
		"stack_labels_list": string(lbls),
		"workspace_root":    workspace,
		"account_name":      job.AccountName,
		"run_trigger":       job.RunTrigger,
		"run_state":         job.RunState,
		// Gantry has no local preview (runs of uncommitted code).
		"local_preview": "false",
	}
}

func orNoLabels(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// addRunVars sets the run facts in set under both prefixes.
func addRunVars(set map[string]string, job *workerapi.Job, workspace string) {
	for k, v := range runVars(job, workspace) {
		set["TF_VAR_gantry_"+k] = v
		set["TF_VAR_spacelift_"+k] = v
	}
	set["GANTRY_WORKSPACE_ROOT"] = workspace
}

// stageEnv is the run's environment for the read (write false) or write
// stage.
func (j *jobRun) stageEnv(write bool) []string {
	return j.envFor(filepath.Join(j.dir, "cli.tfrc"), filepath.Dir(j.bin), write)
}

// envFor is the run's environment for a stage. The values interpolation
// made with a secret are masked in the log from then on, whole: those of
// secret variables, and those that took a secret in.
func (j *jobRun) envFor(cliConfig, toolDir string, write bool) []string {
	env, changed := stageEnvironment(j.job, cliConfig, toolDir, j.stateAddress(), write)
	for _, v := range changed {
		if v.secret || j.masker.In([]byte(v.value)) {
			j.masker.Add(secrets.VariableForms(v.value)...)
		}
	}
	return j.marked(env)
}

// marked adds the job's mark to env, last: it wins over a variable of the
// same name (see package jobprocs).
func (j *jobRun) marked(env []string) []string {
	if j.procs == nil {
		return env
	}
	return append(env, j.procs.Env())
}

// secretFileMasks are the values to mask for the job's secret files
// (secrets.FileForms of each).
func secretFileMasks(files []workerapi.File) []string {
	var out []string
	for _, f := range files {
		if f.Secret {
			out = append(out, secrets.FileForms(f.Content)...)
		}
	}
	return out
}

// mountFiles writes the job's files under the workspace root (the job
// directory, which holds the repository in src/). A path that would leave
// the workspace, or pass through a symbolic link, is refused; a symbolic
// link at the file's own place is replaced.
func (j *jobRun) mountFiles() error {
	for _, f := range j.job.Files {
		if err := writeMounted(j.dir, f); err != nil {
			return fail("mounting the file %s: %v", f.Path, err)
		}
		what := "file"
		if f.Secret {
			what = "secret file"
		}
		j.log.Printf("Mounted %s %s (%d bytes)", what, f.Path, len(f.Content))
	}
	return nil
}

// mountedTarget returns where a mounted file goes, or an error if the path
// would leave root.
func mountedTarget(root, p string) (string, error) {
	name := filepath.FromSlash(p)
	if p == "" || filepath.IsAbs(name) || strings.ContainsRune(p, '\\') || !filepath.IsLocal(name) {
		return "", errors.New("the path is outside the workspace")
	}
	for _, part := range strings.Split(filepath.ToSlash(filepath.Clean(name)), "/") {
		if part == ".git" {
			return "", errors.New("the path is inside a .git directory")
		}
	}
	return filepath.Join(root, name), nil
}

func writeMounted(root string, f workerapi.File) error {
	root = filepath.Clean(root)
	target, err := mountedTarget(root, f.Path)
	if err != nil {
		return err
	}
	if err := noSymlinkBetween(root, filepath.Dir(target)); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	if fi, err := os.Lstat(target); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if err := os.Remove(target); err != nil {
				return err
			}
		case fi.IsDir():
			return errors.New("a directory is in the way")
		}
	}
	return os.WriteFile(target, f.Content, 0o600)
}

// unmountFiles removes the mounted files from the repository checkout
// before it is saved for the apply job, which mounts them again: secret
// files never travel in a saved workspace.
func (j *jobRun) unmountFiles() {
	for _, f := range j.job.Files {
		if target, err := mountedTarget(filepath.Clean(j.dir), f.Path); err == nil {
			_ = os.Remove(target)
		}
	}
}

// around runs a step between the before_ and after_ hooks of its phase.
func (j *jobRun) around(ctx context.Context, phase string, before, after []string, step func() error) error {
	if err := j.hooks(ctx, "before_"+phase, before); err != nil {
		return err
	}
	if err := step(); err != nil {
		return err
	}
	return j.hooks(ctx, "after_"+phase, after)
}

// afterRun runs the after_run hooks once the job's work is over, whatever
// its outcome, with TF_VAR_spacelift_final_run_state (and Gantry's name
// for it) set to the state the run ends in as the worker sees it:
// FINISHED, FAILED or STOPPED. They do not run if the workspace was never
// set up, nor when the run waits for a person after planning: its apply
// job runs them once the run is over (and the log of a waiting run
// belongs to that job).
func (j *jobRun) afterRun(kill context.Context, runErr error, handedOff bool) {
	if len(j.job.Hooks.AfterRun) == 0 || j.env == nil || j.root == "" || (handedOff && runErr == nil) {
		return
	}
	state := "FINISHED"
	switch {
	case j.stopEnd() != "":
		state = j.stopEnd() // as the server said: a run failed meanwhile stays FAILED
	case j.stopReason() != "":
		state = "STOPPED"
	case runErr != nil:
		state = "FAILED"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(kill), 10*time.Minute)
	defer cancel()
	go func() {
		select {
		case <-kill.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	env := append(append([]string{}, j.env...), "TF_VAR_spacelift_final_run_state="+state, "TF_VAR_gantry_final_run_state="+state)
	for _, c := range j.job.Hooks.AfterRun {
		j.log.Printf("Hook after_run: %s", c)
		code, err := tofu.RunShell(ctx, j.root, env, j.log, c)
		if err != nil || code != 0 {
			// The run's outcome is decided: a failing after_run hook is
			// reported in the log only.
			j.log.Printf("after_run hook failed: %s", hookFailure(code, err))
			return
		}
	}
}

func hookFailure(code int, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("exited with code %d", code)
}
