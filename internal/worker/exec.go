package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/jobprocs"
	"github.com/gantry-iac/gantry/internal/redact"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/tofu"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// failure is a reason a job failed, shown in the run's log and API.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

func fail(format string, args ...any) error { return &failure{reason: fmt.Sprintf(format, args...)} }

// jobRun is one job in progress.
type jobRun struct {
	w         *Worker
	job       *workerapi.Job
	slot      int // which of the worker's concurrent loops runs it (0: the only one)
	masker    *secrets.Masker
	log       *logStream
	dir       string // job directory: src/ and tool configuration
	root      string // the project root inside src/
	bin       string
	env       []string
	stopMu    sync.Mutex
	stopped   string // why the server asked us to stop, if it did (under stopMu: the heartbeat sets it)
	stopState string // the state the run ends in after that stop, if the server said (under stopMu)
	lastError string // the first error line of the last tool command
	planSum   []byte // SHA-256 of the saved plan as OpenTofu wrote it (see checkPlan)
	ended     bool   // the server already ended the run (no Finish needed)
	handedOff bool   // the run waits for a person (after_run reports UNCONFIRMED)
	cancel    context.CancelFunc
	pending   chan error    // the phase report in flight, if any (see phase)
	procs     *jobprocs.Job // what the job's commands start

	// dotTerraform: the checkout holds a .terraform directory in the
	// project root (committed: init reads it as its own).
	dotTerraform bool
}

func (w *Worker) execute(kill context.Context, job *workerapi.Job, slot int) {
	log := w.cfg.Log.With("run_id", job.RunID, "stack_id", job.StackID, "kind", job.Kind)
	log.Info("job started")
	start := time.Now()
	if w.cfg.Running != nil {
		defer w.cfg.Running(job.RunID)()
	}
	openErr := w.openSecrets(job) // reported as the job's failure below
	if job.AccountName == "" {
		// An older server, or none with --public-url: the host the
		// worker reaches it at.
		if u, err := url.Parse(w.cfg.ServerURL); err == nil {
			job.AccountName = u.Host
		}
	}
	var masked []string
	for _, v := range job.Env {
		if v.Secret {
			masked = append(masked, secrets.VariableForms(v.Value)...)
		}
	}
	masked = append(masked, secretFileMasks(job.Files)...)
	masked = append(masked, secretFileMasks(job.CredentialFiles)...)
	masked = append(masked, job.Token, job.StateToken, job.OIDCToken)
	// The credential a repository URL may carry (git may print it).
	_, repoSecret := redact.Repository(job.Repository)
	masked = append(masked, repoSecret...)
	masker := secrets.NewMasker(masked)
	j := &jobRun{w: w, job: job, slot: slot, masker: masker, procs: jobprocs.NewJob(jobprocs.Prefix(w.cfg.WorkDir)),
		log: newLogStream(w.proto, job, masker, newLogKeeper(w.cfg.RescueDir, job.RunID, w.cfg.Name))}
	ctx, cancel := context.WithCancel(kill)
	defer cancel()
	j.cancel = cancel
	hbDone := make(chan struct{})
	go j.heartbeat(ctx, cancel, hbDone)

	err := openErr
	if err == nil {
		err = j.run(ctx)
		if perr := j.settle(); perr != nil {
			err = perr // a refused phase report stopped the job
		}
		j.afterRun(kill, err, j.handedOff)
	}
	cancel()
	<-hbDone
	// Nothing the job started outlives it, detached or not (jobprocs).
	if pids := j.procs.End(); len(pids) > 0 {
		log.Info("killed processes the job left running", "pids", pids)
	}
	if err != nil && j.stopReason() == "" && kill.Err() == nil {
		j.askStopped()
	}
	// Credentials that can be revoked (Vault tokens) end with the job.
	j.revokeCredentials()
	reason := ""
	if err != nil {
		var f *failure
		switch {
		case j.stopReason() != "":
			reason = j.stopReason()
		case errors.As(err, &f):
			reason = f.reason
		case kill.Err() != nil:
			reason = "the worker was shut down during the job"
		default:
			reason = err.Error()
		}
	}
	if rescue := j.reportRescue(log); err != nil && rescue != "" {
		// What became of the state belongs in the reason too: the log may
		// not reach the server (a full disk there), the reason is retried
		// with the end of the job.
		reason += "; " + rescue
	}
	if err != nil {
		j.log.Printf("%s", closingLine(j.stopReason() != "", j.stopEnd(), reason))
	}
	// The worker shutting down (stop or kill) waits for a server that does
	// not answer reportRetryFor at most, not the hour a running worker
	// gives the end of a job: a service manager kills it sooner.
	ending, endDone := w.shuttingDown(kill)
	defer endDone()
	if kept := j.closeLog(ending, log); kept != "" {
		// The reason says where the rest of the log is: it reaches the
		// server when the log does not.
		if reason != "" {
			reason += "; "
		}
		reason += kept
	}
	if !j.ended {
		var ferr error
		j.beating(func() {
			ferr = retryEnd(ending, reportAttempt, func(ctx context.Context) error {
				return w.proto.Finish(ctx, job, workerapi.FinishRequest{OK: err == nil, Reason: secrets.NewMasker(masked).String(reason)})
			}, func(err error) {
				log.Warn("the server does not take the end of the job; retrying", "err", err, "for", retryEndFor(ending))
			})
		})
		if ferr != nil {
			log.Warn("reporting the end of the job failed", "err", ferr)
		}
	}
	if j.dir != "" {
		if rerr := os.RemoveAll(j.dir); rerr != nil {
			log.Warn("removing the workspace failed", "err", rerr)
		}
	}
	log.Info("job ended", "ok", err == nil, "reason", j.masker.String(reason), "duration", time.Since(start))
}

// reportRescue keeps what OpenTofu wrote when it could not save the state
// (see rescueState) and says in the run's log and the worker's what was
// kept, and what was not. It returns that in short, for the run's reason
// ("": OpenTofu saved its state). When the state kept is larger than the
// server's state size limit (which is then why it could not be saved),
// both say so, and that the limit must be raised before the state is
// pushed: the server would refuse it again.
func (j *jobRun) reportRescue(log *slog.Logger) string {
	path, unusable, err := j.rescueState()
	switch {
	case err != nil:
		log.Error("OpenTofu could not save the state and keeping its errored.tfstate failed: the workspace is left in place",
			"workspace", j.dir, "err", err)
		j.log.Printf("OpenTofu could not save the state; keeping its errored.tfstate failed (%v): it stays in %s on the worker", err, j.root)
		j.dir = "" // do not remove the only copy of the state
		return fmt.Sprintf("OpenTofu could not save the state, and keeping its errored.tfstate failed: it stays in %s on worker %s", j.root, j.w.cfg.Name)
	case unusable != "":
		kept := "Nothing was kept."
		if path != "" {
			kept = fmt.Sprintf("What it holds is kept on worker %s at %s, for reference: it cannot be pushed as is.", j.w.cfg.Name, path)
		}
		log.Error("OpenTofu could not save the state, nor write it whole to errored.tfstate: the new state was not kept",
			"problem", unusable, "path", path)
		j.log.Printf("OpenTofu could not save the state, and could not write it to errored.tfstate either (%s; a full disk?): "+
			"the state this apply produced could not be kept. %s See OpenTofu's errors above: when it cannot write that file, "+
			"it prints the state's JSON in this log instead (secret values masked here), which can be completed and pushed with `tofu state push`. "+
			"Otherwise the resources this apply made are in no state: import them into the stack's state, or delete them, before the next run.",
			unusable, kept)
		return fmt.Sprintf("OpenTofu could not save the state, nor write it whole to errored.tfstate (%s): the state this apply produced was not kept; see the run's log", unusable)
	case path != "":
		size := fileSize(path)
		if limit := j.job.MaxStateSize; limit > 0 && size > limit {
			log.Error("OpenTofu could not save the state, which is larger than the server's state size limit: its errored.tfstate is kept",
				"path", path, "size", size, "limit", limit)
			j.log.Printf("%s", stateTooLargeAdvice(j.w.cfg.Name, path, size, limit))
			return fmt.Sprintf("OpenTofu could not save the state: it is kept on worker %s at %s; the state (%s) is larger than the server's state size limit (%s, --max-state-size): raise the limit, then push it to the stack's state",
				j.w.cfg.Name, path, bytesize.Format(size), bytesize.Format(limit))
		}
		log.Error("OpenTofu could not save the state: its errored.tfstate is kept; push it to the stack's state", "path", path)
		j.log.Printf("OpenTofu could not save the state: the new state is kept on worker %s at %s. "+
			"Push it to the stack's state with `tofu state push` against the stack's backend (see docs/state.md), "+
			"or the next run will not know the resources this one made.", j.w.cfg.Name, path)
		return fmt.Sprintf("OpenTofu could not save the state: it is kept on worker %s at %s; push it to the stack's state", j.w.cfg.Name, path)
	}
	return ""
}

// shuttingDown returns a context that ends when the worker starts shutting
// down: Run's stop (the first signal) or kill.
func (w *Worker) shuttingDown(kill context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	undo := []func() bool{context.AfterFunc(kill, cancel)}
	if w.stopping != nil {
		undo = append(undo, context.AfterFunc(w.stopping, cancel))
	}
	return ctx, func() {
		for _, u := range undo {
			u()
		}
		cancel()
	}
}

// askStopped asks the server once more, after the job failed, whether it
// asked the job to stop since the last heartbeat: a job that fails in the
// moments after someone stopped the run (the tool killed by a hook, a
// crash) ends it STOPPED, and its log's closing line must say so, not
// "Run failed".
func (j *jobRun) askStopped() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if resp, err := j.w.proto.Heartbeat(ctx, j.job); err == nil && resp.Stop {
		j.setStopped(resp.Reason, resp.State)
	}
}

func (j *jobRun) heartbeat(ctx context.Context, cancel context.CancelFunc, done chan struct{}) {
	defer close(done)
	j.beat(ctx, func(resp workerapi.HeartbeatResponse, err error) bool {
		switch {
		case err == nil && resp.Stop:
			j.setStopped(resp.Reason, resp.State)
			j.log.Printf("Stopping: %s", resp.Reason)
			cancel()
			return false
		case err != nil && workerapi.Permanent(err):
			j.setStopped("the server no longer accepts this job: "+err.Error(), "")
			cancel()
			return false
		}
		return true
	})
}

// beat sends the job's heartbeat every HeartbeatEvery until ctx ends or
// answer, given each answer, returns false.
func (j *jobRun) beat(ctx context.Context, answer func(workerapi.HeartbeatResponse, error) bool) {
	t := time.NewTicker(j.w.cfg.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := j.w.proto.Heartbeat(hctx, j.job)
		hcancel()
		if !answer(resp, err) {
			return
		}
	}
}

// phase reports that the job entered a new phase without waiting for the
// answer: the tool starts while the server records the transition. The next
// report waits for it (settle); a refusal cancels the job. Network errors
// and 5xx are retried as the job's other reports are: the server answers a
// phase it recorded already again (the answer was lost), so a lost answer
// does not fail the run.
func (j *jobRun) phase(ctx context.Context, state string, c git.Commit) error {
	if err := j.settle(); err != nil {
		return err
	}
	done := make(chan error, 1)
	j.pending = done
	// Where the phase begins in the log: everything written so far
	// belongs to the phases before.
	at, known := j.log.boundary()
	go func() {
		req := workerapi.PhaseRequest{State: state, CommitSHA: c.SHA, CommitMessage: c.Message, CommitAuthor: c.Author}
		if known {
			req.LogOffset = &at
		}
		if !c.At.IsZero() {
			req.CommitAt = c.At.UnixNano()
		}
		err := retryReport(ctx, reportAttempt, func(ctx context.Context) error { return j.w.proto.Phase(ctx, j.job, req) })
		if err != nil && j.cancel != nil {
			j.cancel()
		}
		done <- err
	}()
	return nil
}

// settle waits for the phase report in flight and returns its error.
func (j *jobRun) settle() error {
	if j.pending == nil {
		return nil
	}
	err := <-j.pending
	j.pending = nil
	if err != nil {
		return fmt.Errorf("reporting the phase: %w", err)
	}
	return nil
}

func (j *jobRun) run(ctx context.Context) error {
	dir, err := os.MkdirTemp(j.w.cfg.WorkDir, "gantry-job-")
	if err != nil {
		return fail("creating the workspace: %v", err)
	}
	j.dir = dir
	switch j.job.Kind {
	case "apply":
		return j.runApply(ctx)
	case "plan", "task":
		return j.runPlan(ctx)
	}
	return fail("unknown job kind %q: upgrade the worker", j.job.Kind)
}

func (j *jobRun) runPlan(ctx context.Context) error {
	commit, err := j.prepare(ctx)
	if err != nil {
		return err
	}
	if err := j.phase(ctx, "INITIALIZING", commit); err != nil {
		return err
	}
	if err := j.init(ctx); err != nil {
		return err
	}
	if j.job.Kind == "task" {
		if err := j.phase(ctx, "PERFORMING", git.Commit{}); err != nil {
			return err
		}
		return j.around(ctx, "perform", j.job.Hooks.BeforePerform, j.job.Hooks.AfterPerform, func() error {
			j.log.Printf("Running task: %s", j.job.Command)
			code, err := tofu.RunShell(ctx, j.root, j.env, j.log, j.job.Command)
			if err != nil {
				return err
			}
			if code != 0 {
				return fail("task command exited with code %d", code)
			}
			return nil
		})
	}
	if err := j.phase(ctx, "PLANNING", git.Commit{}); err != nil {
		return err
	}
	if err := j.hooks(ctx, "before_plan", j.job.Hooks.BeforePlan); err != nil {
		return err
	}
	args := []string{"plan", "-input=false", "-no-color", "-out=" + planFile, "-detailed-exitcode"}
	if j.job.RunType == "PROPOSED" {
		// A proposed run never writes state: it must not wait for, or
		// block, the stack's tracked run.
		args = append(args, "-lock=false")
	} else {
		args = append(args, "-lock-timeout=10s")
	}
	if j.job.RunType == "DESTROY" {
		args = append(args, "-destroy")
	}
	for _, t := range j.job.Targets {
		args = append(args, "-target="+t)
	}
	if len(j.job.Targets) > 0 {
		j.log.Printf("Planning only for: %s", strings.Join(j.job.Targets, ", "))
	}
	code, err := j.tool(ctx, args...)
	if err != nil {
		return err
	}
	if code != 0 && code != 2 {
		return j.toolFailed("plan", code)
	}
	if err := j.recordPlan(); err != nil {
		return err
	}
	afterPlanDone := false
	if code == 2 && j.job.Autodeploy && (j.job.RunType == "TRACKED" || j.job.RunType == "DESTROY") {
		// Changes on an autodeploy stack: ask whether anything needs the
		// plan JSON before applying; if not, make it while applying.
		if err := j.hooks(ctx, "after_plan", j.job.Hooks.AfterPlan); err != nil {
			return err
		}
		afterPlanDone = true
		j.log.Sync()
		if err := j.settle(); err != nil {
			return err
		}
		var resp workerapi.PlannedResponse
		err := retryReport(ctx, reportAttempt, func(ctx context.Context) (err error) {
			resp, err = j.w.proto.Planned(ctx, j.job, workerapi.PlannedRequest{HasChanges: true, PlanPending: true})
			return err
		})
		if err != nil {
			return fmt.Errorf("reporting the plan: %w", err)
		}
		switch resp.Next {
		case "apply":
			if err := j.applyCredentials(ctx, resp); err != nil {
				return err
			}
			return j.applyWhileShowing(ctx)
		case "done":
			for _, line := range resp.Log {
				j.log.Printf("%s", line)
			}
			j.ended = true
			return nil
		case "plan":
		default:
			return fail("the server asked for %q after planning: upgrade the worker", resp.Next)
		}
	}
	planJSON, err := j.showPlan(ctx, j.env)
	if err != nil {
		return err
	}
	defer planJSON.Close()
	if err := j.settle(); err != nil {
		return err
	}
	if err := j.putFile(ctx, "plan.json", planJSON); err != nil {
		return fmt.Errorf("uploading the plan: %w", err)
	}
	delta, hasChanges, err := parsePlanFile(planJSON)
	if err != nil {
		return fail("reading the plan: %v", err)
	}
	hasChanges = hasChanges || code == 2
	j.log.Printf("Plan: %d to add, %d to change, %d to destroy", delta.Add, delta.Change, delta.Destroy)
	if !afterPlanDone {
		if err := j.hooks(ctx, "after_plan", j.job.Hooks.AfterPlan); err != nil {
			return err
		}
	}
	// After the after_plan hooks, which may write the files (Infracost).
	if err := j.uploadMetadata(ctx); err != nil {
		return err
	}
	if !hasChanges {
		j.log.Printf("No changes.")
	}
	j.log.Sync() // the run may end with this report: send its log first
	if err := j.settle(); err != nil {
		return err
	}
	var resp workerapi.PlannedResponse
	err = retryReport(ctx, j.policyReportAttempt(), func(ctx context.Context) (err error) {
		resp, err = j.w.proto.Planned(ctx, j.job, workerapi.PlannedRequest{HasChanges: hasChanges, Add: delta.Add, Change: delta.Change, Destroy: delta.Destroy})
		return err
	})
	if err != nil {
		return fmt.Errorf("reporting the plan: %w", err)
	}
	for _, line := range resp.Log {
		j.log.Printf("%s", line)
	}
	switch resp.Next {
	case "done":
		j.ended = true
		return nil
	case "apply":
		if err := j.applyCredentials(ctx, resp); err != nil {
			return err
		}
		return j.apply(ctx)
	case "save":
		return j.save(ctx)
	}
	return fail("the server asked for %q after planning: upgrade the worker", resp.Next)
}

// applyWhileShowing applies the saved plan and, at the same time, makes its
// JSON, then sends the JSON and the counts. A failure to make or send the
// JSON is logged; it does not fail a run whose apply succeeded.
func (j *jobRun) applyWhileShowing(ctx context.Context) error {
	// The JSON is usually made before the apply ends: it is sent, and the
	// counts with it, while the apply runs; the log says so after the
	// apply's output, so as not to cut into it.
	type shownPlan struct {
		notes []string // what to log once the apply is done
		delta tofu.Delta
		ok    bool
	}
	shown := make(chan shownPlan, 1)
	readEnv := j.env // apply switches j.env to the write stage's
	rctx := context.WithoutCancel(ctx)
	go func() {
		var out shownPlan
		defer func() { shown <- out }()
		planJSON, err := j.showPlan(ctx, readEnv)
		if err != nil {
			out.notes = append(out.notes, fmt.Sprintf("Making the plan JSON failed: %v", err))
			return
		}
		defer planJSON.Close()
		if err := j.putFile(rctx, "plan.json", planJSON); err != nil {
			out.notes = append(out.notes, fmt.Sprintf("Uploading the plan JSON failed: %v", err))
		}
		delta, _, err := parsePlanFile(planJSON)
		if err != nil {
			out.notes = append(out.notes, fmt.Sprintf("Reading the plan JSON failed: %v", err))
			return
		}
		out.delta, out.ok = delta, true
		if err := j.w.proto.RecordDelta(rctx, j.job, workerapi.DeltaRequest{Add: delta.Add, Change: delta.Change, Destroy: delta.Destroy}); err != nil {
			out.notes = append(out.notes, fmt.Sprintf("Reporting the plan's counts failed: %v", err))
		}
	}()
	applyErr := j.apply(ctx)
	res := <-shown
	if res.ok {
		j.log.Printf("Plan: %d to add, %d to change, %d to destroy", res.delta.Add, res.delta.Change, res.delta.Destroy)
	}
	for _, note := range res.notes {
		j.log.Printf("%s", note)
	}
	return applyErr
}

func (j *jobRun) init(ctx context.Context) error {
	if err := j.hooks(ctx, "before_init", j.job.Hooks.BeforeInit); err != nil {
		return err
	}
	code, err := j.tool(ctx, "init", "-input=false", "-no-color")
	if err != nil {
		return err
	}
	if code != 0 {
		err := j.toolFailed("init", code)
		var f *failure
		if j.dotTerraform && errors.As(err, &f) {
			f.reason += "; the repository holds a .terraform directory in the project root: remove it from the repository (" + dotTerraformHint + ")"
		}
		return err
	}
	return j.hooks(ctx, "after_init", j.job.Hooks.AfterInit)
}

func (j *jobRun) apply(ctx context.Context) error {
	j.env = j.stageEnv(true) // applying is the write stage: wo_ variables, not ro_ ones
	step := func() error {
		// The plan applied is the one planned, shown and reviewed (hooks
		// ran since: before_apply, and on an apply job the init ones).
		if err := j.checkPlan("applying"); err != nil {
			return err
		}
		code, err := j.tool(ctx, "apply", "-input=false", "-no-color", "-lock-timeout=10s", planFile)
		if err != nil {
			return err
		}
		if code != 0 {
			return j.toolFailed("apply", code)
		}
		return nil
	}
	if j.job.RunType == "DESTROY" {
		// A DESTROY run's apply is the destroying phase: its hooks run
		// inside the apply hooks.
		destroy := step
		step = func() error {
			return j.around(ctx, "destroy", j.job.Hooks.BeforeDestroy, j.job.Hooks.AfterDestroy, destroy)
		}
	}
	return j.around(ctx, "apply", j.job.Hooks.BeforeApply, j.job.Hooks.AfterApply, step)
}

// save hands the workspace (code, .terraform and the plan) to the server so
// that any worker can apply it once a person confirms.
func (j *jobRun) save(ctx context.Context) error {
	j.unmountFiles()
	if err := j.putWorkspace(ctx); err != nil {
		return err
	}
	j.log.Printf("Plan saved; waiting for confirmation.")
	j.log.Sync()
	attempts := 0
	err := retryReport(ctx, j.policyReportAttempt(), func(ctx context.Context) error {
		attempts++
		return j.w.proto.HandOff(ctx, j.job)
	})
	var se *workerapi.StatusError
	if err != nil && attempts > 1 && errors.As(err, &se) && se.Status == http.StatusUnauthorized {
		// A hand-off kills the job token: a retry refused for its token
		// follows an attempt the server took whose answer was lost (or the
		// run ended meanwhile). The job is over either way, and the server
		// would take nothing more of it.
		j.w.cfg.Log.Info("the server no longer accepts the job's token after a retried hand-off: an earlier attempt was taken (its answer lost), or the run ended",
			"run_id", j.job.RunID, "answer", err)
		err = nil
	}
	if err != nil {
		return fmt.Errorf("handing off: %w", err)
	}
	j.ended, j.handedOff = true, true
	return nil
}

func (j *jobRun) runApply(ctx context.Context) error {
	data, err := j.w.proto.GetArtifact(ctx, j.job, "workspace")
	if err != nil {
		return fail("fetching the saved workspace: %v", err)
	}
	if data, err = j.openWorkspace(data); err != nil {
		return err
	}
	src := filepath.Join(j.dir, "src")
	sums, err := unpackWorkspace(data, src)
	if err != nil {
		return fail("restoring the saved workspace: %v", err)
	}
	j.log.Printf("Restored the workspace planned by this run")
	if err := j.mountFiles(); err != nil {
		return err
	}
	if err := j.setup(ctx, src); err != nil {
		return err
	}
	// The saved plan as the planning worker packed it (it checked it
	// against what OpenTofu wrote), not as the file reads now.
	if j.planSum = sums[j.planRel()]; j.planSum == nil {
		return fail("restoring the saved workspace: it has no saved plan %s", j.planRel())
	}
	j.env = j.stageEnv(true) // the apply job is the write stage throughout
	if j.job.ManagedState {
		// Workspaces saved before the addresses moved to the environment
		// name the server that planned in their override.
		if err := writeBackendOverride(j.root); err != nil {
			return fail("writing the backend configuration: %v", err)
		}
	}
	// The init hooks run around this init too, as in every phase on
	// Spacelift (they often fetch credentials the tool needs).
	if err := j.hooks(ctx, "before_init", j.job.Hooks.BeforeInit); err != nil {
		return err
	}
	code, err := j.tool(ctx, "init", "-input=false", "-no-color", "-reconfigure")
	if err != nil {
		return err
	}
	if code != 0 {
		return j.toolFailed("init", code)
	}
	if err := j.hooks(ctx, "after_init", j.job.Hooks.AfterInit); err != nil {
		return err
	}
	return j.apply(ctx)
}

// stateAddress is the address of the stack's state at the server this
// worker reaches.
func (j *jobRun) stateAddress() string { return j.w.cfg.ServerURL + j.job.StatePath }

func (j *jobRun) tool(ctx context.Context, args ...string) (int, error) {
	j.log.Printf("$ %s %s", filepath.Base(j.bin), strings.Join(args, " "))
	ec := &errorCatcher{dst: j.log}
	code, err := tofu.Run(ctx, j.bin, j.root, j.env, ec, args...)
	j.lastError = ec.First()
	return code, err
}

// toolFailed is the reason a tool command failed, with its first error.
// dotTerraformHint says what a committed .terraform directory does.
const dotTerraformHint = "its backend configuration, modules and providers are from another machine, for example \"Backend configuration changed\""

func (j *jobRun) toolFailed(what string, code int) error {
	reason := fmt.Sprintf("%s failed: %s exited with code %d", what, filepath.Base(j.bin), code)
	if j.lastError != "" {
		reason += ": " + j.lastError
	}
	return fail("%s", reason)
}

func (j *jobRun) hooks(ctx context.Context, name string, cmds []string) error {
	for _, c := range cmds {
		j.log.Printf("Hook %s: %s", name, c)
		code, err := tofu.RunShell(ctx, j.root, j.env, j.log, c)
		if err != nil {
			return err
		}
		if code != 0 {
			return fail("%s hook failed: `%s` exited with code %d", name, c, code)
		}
	}
	return nil
}

func orHead(sha string) string {
	if sha == "" {
		return "its head"
	}
	return sha
}

func orAny(v string) string {
	if v == "" {
		return "(any version)"
	}
	return v
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func (j *jobRun) setStopped(why, state string) {
	j.stopMu.Lock()
	j.stopped, j.stopState = why, state
	j.stopMu.Unlock()
}

// stopEnd is the state the server said the run ends in after it asked
// the job to stop ("" if it did not ask, or did not say).
func (j *jobRun) stopEnd() string {
	j.stopMu.Lock()
	defer j.stopMu.Unlock()
	return j.stopState
}

// closingLine is the last line of the log of a job that did not succeed,
// naming the state the run ends in: "Run stopped: stop requested by ..."
// for a stop, "Run failed: ..." when the job failed. When the server
// stopped the job without saying how the run ends (it is gone, or another
// worker holds it), the line does not guess.
func closingLine(stopped bool, state, reason string) string {
	switch {
	case state != "":
		return fmt.Sprintf("Run %s: %s", strings.ToLower(state), reason)
	case stopped:
		return "Job stopped: " + reason
	}
	return "Run failed: " + reason
}

func (j *jobRun) stopReason() string {
	j.stopMu.Lock()
	defer j.stopMu.Unlock()
	return j.stopped
}
