package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/bytesize"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// Reports that end a job (planned, handoff, finish) and the log flush
// before them are retried on transient errors (network errors, 5xx) for
// about as long as the server waits before it takes a silent worker for
// lost: a server restarting meanwhile must not turn the job's real outcome
// into "worker lost". A 4xx answer is permanent and stops the retries.
//
// The last of them, the end of the log and finish, are retried longer,
// up to endRetryFor, with the job's heartbeats going on meanwhile (see
// jobRun.beating): a server down for a maintenance window still learns
// how the job ended when it is back. A worker shutting down waits
// reportRetryFor at most.
var (
	reportRetryFor   = 60 * time.Second
	endRetryFor      = time.Hour
	reportBackoff    = 250 * time.Millisecond
	reportBackoffMax = 5 * time.Second
)

// reportAttempt bounds one attempt of a report that evaluates no policy.
var reportAttempt = 30 * time.Second

// retryReport calls fn until it succeeds, fails permanently, ctx ends or
// reportRetryFor passes; each attempt gets its own timeout, attempt.
func retryReport(ctx context.Context, attempt time.Duration, fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(reportRetryFor)
	wait := reportBackoff
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil || workerapi.Permanent(err) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, reportBackoffMax)
	}
}

// retryEnd calls fn, the job's last report, until it succeeds, fails
// permanently or endRetryFor passes; once shutdown ends (the worker
// shutting down), reportRetryFor after that at most. Each attempt gets its
// own timeout, attempt. warn is told the first failure that is retried,
// so that a slot kept busy by a server away says why.
func retryEnd(shutdown context.Context, attempt time.Duration, fn func(ctx context.Context) error, warn func(error)) error {
	deadline := time.Now().Add(endRetryFor)
	stopping := false
	wait := reportBackoff
	for first := true; ; first = false {
		actx, cancel := context.WithTimeout(context.Background(), attempt)
		err := fn(actx)
		cancel()
		if err == nil || workerapi.Permanent(err) {
			return err
		}
		if !stopping && shutdown.Err() != nil {
			stopping = true
			if d := time.Now().Add(reportRetryFor); d.Before(deadline) {
				deadline = d
			}
		}
		if time.Now().Add(wait).After(deadline) {
			return err
		}
		if first && warn != nil {
			warn(err)
		}
		time.Sleep(wait)
		wait = min(wait*2, reportBackoffMax)
	}
}

// retryEndFor says how long retryEnd tries at most, given shutdown.
func retryEndFor(shutdown context.Context) time.Duration {
	if shutdown.Err() != nil {
		return reportRetryFor
	}
	return endRetryFor
}

// policyReportAttempt bounds one attempt of planned and handoff, which the
// server answers after evaluating policies: as long as the server says it
// may take (their timeouts are the server's, scaled by
// --policy-timeout-scale), and never less than another report. An older
// server says nothing: its default timeouts (plan 45 s, approval 5 s) then.
func (j *jobRun) policyReportAttempt() time.Duration {
	if j.job.ReportTimeoutMS <= 0 {
		return reportAttempt + 50*time.Second
	}
	return max(reportAttempt, time.Duration(j.job.ReportTimeoutMS)*time.Millisecond)
}

// rescueState keeps the errored.tfstate OpenTofu writes when it cannot save
// the state (the only copy of what an apply made) before the job directory
// is removed: it is copied to <rescue-dir>/<run-id>.tfstate and the
// run's log says where and how to push it. It returns the copy's path ("":
// nothing to rescue).
//
// OpenTofu may fail to write that file too (a full disk): unusable then
// says why the file is no state that can be pushed. An empty file is not
// copied; one cut short is kept as <run-id>.tfstate.incomplete, for what it
// shows of the apply.
func (j *jobRun) rescueState() (path, unusable string, err error) {
	if j.root == "" {
		return "", "", nil
	}
	src, err := os.Open(filepath.Join(j.root, "errored.tfstate"))
	if os.IsNotExist(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return "", "", err
	}
	if fi.Size() == 0 {
		return "", "it is empty", nil
	}
	if !isState(src) {
		unusable = fmt.Sprintf("it is not a complete state (%d bytes, cut short)", fi.Size())
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return "", "", err
	}
	dir := j.w.cfg.RescueDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	ext := ".tfstate"
	if unusable != "" {
		ext += ".incomplete"
	}
	dst := filepath.Join(dir, j.job.RunID+ext)
	if _, err := os.Stat(dst); err == nil {
		// The same run rescued before (an apply retried): keep both.
		dst = filepath.Join(dir, fmt.Sprintf("%s-%d%s", j.job.RunID, time.Now().UnixNano(), ext))
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", "", err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		os.Remove(dst)
		return "", "", err
	}
	if err := out.Close(); err != nil {
		os.Remove(dst)
		return "", "", err
	}
	return dst, unusable, nil
}

// isState reports whether r holds a whole JSON state: one JSON object with
// a version.
func isState(r io.Reader) bool {
	var st struct {
		Version *int `json:"version"`
	}
	return json.NewDecoder(r).Decode(&st) == nil && st.Version != nil
}

// stateTooLargeAdvice says what to do with a state kept at path on worker
// that the server refused as larger than its limit: raise the limit (to a
// size that takes it), then push it; or, past the most a server accepts,
// keep it and shrink the stack's state.
func stateTooLargeAdvice(worker, path string, size, limit int64) string {
	sized := bytesize.Format(size)
	if size >= 1024 {
		sized += fmt.Sprintf(" (%d bytes)", size)
	}
	head := fmt.Sprintf("OpenTofu could not save the state: the server refused it, as it is %s, larger than the server's state size limit of %s. "+
		"The new state is kept on worker %s at %s.", sized, bytesize.Format(limit), worker, path)
	if size > maxStateSizeLimit {
		return head + fmt.Sprintf(" It is larger than any Gantry server accepts (%s), so it cannot be pushed to the stack's managed state: "+
			"keep that file safe, push it to a backend of your own (turn managed state off and add a backend to the stack's code), "+
			"or make the state smaller (split the stack, move large values out of resource attributes), "+
			"or the next run will not know the resources this one made.", bytesize.Format(maxStateSizeLimit))
	}
	return head + fmt.Sprintf(" Pushing it as it is would be refused the same way: first raise the limit on the server "+
		"(`gantry server --max-state-size %s`, or GANTRY_MAX_STATE_SIZE=%s, on every server), then push it to the stack's state "+
		"with `tofu state push` against the stack's backend (see docs/state.md); until then the next run will not know the resources this one made.",
		suggestedLimit(size), suggestedLimit(size))
}

// maxStateSizeLimit is the most --max-state-size may be (state.MaxSizeLimit,
// which a test keeps it equal to).
const maxStateSizeLimit = 1000 << 20

// suggestedLimit is a --max-state-size that takes a state of size bytes:
// the next power of two in MiB, at most the largest accepted.
func suggestedLimit(size int64) string {
	n := int64(1 << 20)
	for n < size {
		n *= 2
	}
	n = min(n, maxStateSizeLimit)
	return strings.ReplaceAll(bytesize.Format(n), " ", "")
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return -1
	}
	return fi.Size()
}
