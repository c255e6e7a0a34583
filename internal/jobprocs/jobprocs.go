// Package jobprocs keeps what a job starts from outliving it.
//
// Every process a job starts carries the job's mark in its environment
// (MarkVar); when the job ends, End kills every process of this user that
// carries it. A process can drop the mark (a cleaned environment) or leave
// the tool's process group and session (setsid): on Linux the worker (or
// the server running built-in workers) is therefore a child subreaper
// (Subreap), so that such a process, once its parent is gone, becomes a
// child of ours instead of init's. Those orphans are killed at the end of
// every job and by a periodic sweep unless they carry the mark of a job
// still running (a hook's `kubectl port-forward &` lives until its job
// ends), and reaped, so that no zombies pile up.
//
// Processes the worker starts for itself (git, version probes) stay in its
// session and are never touched; the processes tofu.Run starts are
// registered (StartWaited) so that their exit status is left to the
// os/exec that waits for them. Outside Linux only the tool's process group
// is stopped, as before.
package jobprocs

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// MarkVar is the variable carrying a job's mark in the environment of
// every process the job starts. The mark only tells jobs apart: it is no
// secret (a process that changes it only chooses which job's end kills it).
const MarkVar = "GANTRY_JOB_MARK"

// CommandVar carries the mark of one tool command (tofu.Run) in the
// environment of the processes it starts: what such a command leaves
// running is killed when it exits (EndCommand), not when its job ends, so
// that nothing a provider or a local-exec of `plan` started is still
// there while the worker checks the plan and `apply` reads it. Hooks and
// tasks (tofu.RunShell) have none: what they start in the background
// lives until the job ends.
const CommandVar = "GANTRY_COMMAND_MARK"

// NewCommandMark returns a mark for one tool command.
func NewCommandMark() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// EndCommand kills what the command marked mark, whose process (pid, the
// leader of its session) exited and whose process group was killed, left
// running, and returns their pids (Linux, on a subreaper; elsewhere
// nothing).
func EndCommand(mark string, pid int) []int { return endCommand(mark, pid) }

// Job is one job's processes.
type Job struct{ mark string }

var (
	mu   sync.Mutex
	live = map[string]bool{} // the marks of the jobs running in this process
)

// NewJob starts tracking a job's processes. prefix (see Prefix) names the
// worker, so that a restarted worker can find what its killed predecessor
// left (KillPrefixed).
func NewJob(prefix string) *Job {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	j := &Job{mark: prefix + "-" + hex.EncodeToString(b)}
	mu.Lock()
	live[j.mark] = true
	mu.Unlock()
	startSubreaping()
	return j
}

var subreap struct {
	sync.Mutex
	want bool
	log  *slog.Logger
}

// Subreap asks that this process, once it runs jobs, become the subreaper
// of their processes (Linux; see the package comment); log hears of the
// orphans killed. A worker or a server with built-in workers calls it at
// start.
func Subreap(log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	subreap.Lock()
	subreap.want, subreap.log = true, log
	subreap.Unlock()
}

func subreapWanted() (bool, *slog.Logger) {
	subreap.Lock()
	defer subreap.Unlock()
	return subreap.want, subreap.log
}

// Env is the environment entry marking the job's processes; it goes last
// in a process's environment (os/exec keeps the last of duplicates).
func (j *Job) Env() string { return MarkVar + "=" + j.mark }

// End kills what the job started that still runs, and the orphans no
// running job claims, and returns their pids. The job's own commands must
// have returned.
func (j *Job) End() []int {
	mu.Lock()
	delete(live, j.mark)
	mu.Unlock()
	return endJob(j.mark)
}

// Prefix is the start of the marks of the jobs of the worker working in
// dir: a hash of the directory, with links resolved (those of its parent
// when it does not exist yet).
func Prefix(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	} else if parent, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		dir = filepath.Join(parent, filepath.Base(dir))
	}
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:6])
}

// liveMark reports whether mark is a running job's.
func liveMark(mark string) bool {
	mu.Lock()
	defer mu.Unlock()
	return live[mark]
}

// liveMarks returns the marks of the running jobs.
func liveMarks() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(live))
	for m := range live {
		out = append(out, m)
	}
	return out
}

// starting is held (shared) while tofu.Run starts a process and registers
// it, and exclusively by a sweep: a sweep never sees a process of ours
// that is not yet registered.
var (
	starting sync.RWMutex
	waited   = map[int]bool{} // pids os/exec waits for (under starting)
	waitedMu sync.Mutex
)

// StartWaited starts cmd and registers it as a process os/exec waits for:
// no sweep kills or reaps it. Call the returned function once Wait
// returned.
func StartWaited(cmd *exec.Cmd) (done func(), err error) {
	starting.RLock()
	defer starting.RUnlock()
	if err := cmd.Start(); err != nil {
		return func() {}, err
	}
	pid := cmd.Process.Pid
	waitedMu.Lock()
	waited[pid] = true
	waitedMu.Unlock()
	return func() {
		waitedMu.Lock()
		delete(waited, pid)
		waitedMu.Unlock()
	}, nil
}

func isWaited(pid int) bool {
	waitedMu.Lock()
	defer waitedMu.Unlock()
	return waited[pid]
}

// markOf returns the value of MarkVar in a NUL-separated environment.
func markOf(environ []byte) string { return valueOf(environ, MarkVar) }

// commandMarkOf returns the value of CommandVar in a NUL-separated
// environment.
func commandMarkOf(environ []byte) string { return valueOf(environ, CommandVar) }

func valueOf(environ []byte, name string) string {
	for _, kv := range strings.Split(string(environ), "\x00") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}
