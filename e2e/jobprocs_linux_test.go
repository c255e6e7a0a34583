//go:build linux

package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// daemon is a shell command starting a detached (setsid), signal-ignoring
// loop that writes its pid to file; with clean, from an empty environment
// (without the job's mark).
func daemon(file string, clean bool) string {
	env := ""
	if clean {
		env = "env -i "
	}
	// The subshell waits for the pid: the daemon is an orphan only then.
	return `(setsid ` + env + `/bin/sh -c 'trap "" INT TERM HUP; echo $$ > ` + file + `; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 & ` +
		`while [ ! -s ` + file + ` ]; do sleep 0.1; done)`
}

// pidIn reads the pid a daemon wrote.
func pidIn(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, "a pid in "+file, func() bool {
		b, err := os.ReadFile(file)
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	t.Cleanup(func() { killPID(pid) })
	return pid
}

// waitReaped waits until pid is gone from the process table: dead, and
// reaped (no zombie left behind).
func waitReaped(t *testing.T, what string, pid int) {
	t.Helper()
	if !poll(15*time.Second, 100*time.Millisecond, func() bool {
		_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
		return err != nil
	}) {
		state := "alive"
		if !alive(pid) {
			state = "a zombie nobody reaps"
		}
		t.Errorf("%s (pid %d) is %s after its job ended", what, pid, state)
	}
}

// Nothing a job starts outlives it, on the built-in workers and on a
// private worker, both running two jobs at once: detached (setsid),
// signal-ignoring daemons a task leaves, with the job's mark or without
// (a cleaned environment), are dead and reaped once the run is FINISHED,
// and once it is STOPPED; a background process a before_init hook starts
// is alive during the plan and dead after the job; a job's end does not
// kill the processes of a job running beside it.
func TestJobProcessesDieWithTheJob(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	for _, kind := range []string{"built-in", "private"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var s *Server
			if kind == "built-in" {
				s = StartServer(t, ServerConfig{Workers: 2})
			} else {
				s = StartServer(t, ServerConfig{Args: []string{"--builtin-workers", "0"}})
				var pool poolCreated
				s.MustJSON(t, &pool, "workerpool", "create", "--id", "priv", "--space", "root")
				s.StartWorker(t, "w1", pool.Token, "--concurrency", "2")
			}
			testJobProcesses(t, s, kind == "private")
		})
	}
}

func testJobProcesses(t *testing.T, s *Server, private bool) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("procs")})
	extra := []string{}
	if private {
		extra = []string{"--worker-pool", "priv"}
	}
	bgCheck := `read -r _ _ st _ < /proc/$(cat ` + f("bg") + `)/stat && [ "$st" != Z ] && echo bg-alive-during-plan`
	s.CreateStack(t, "a", repo.URL, extra...)
	s.CreateStack(t, "b", repo.URL, append(extra, "--before-init", "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "+f("bg"), "--before-plan", bgCheck)...)

	// A task's daemons, marked and not, die when it ends.
	var task apiv1.Run
	if res := s.GantryJSON(t, &task, "stack", "task", "--id", "a", "--wait", "--",
		daemon(f("marked"), false)+"; "+daemon(f("clean"), true)+"; echo daemons-started"); res.Code != 0 || task.State != apiv1.StateFinished {
		t.Fatalf("task: exit %d, %+v\n%s", res.Code, task, res.Stderr)
	}
	waitReaped(t, "a finished task's detached daemon", pidIn(t, f("marked")))
	waitReaped(t, "a finished task's detached daemon without the job's mark", pidIn(t, f("clean")))

	// A stopped task's daemon dies too.
	stopping := s.StartRun(t, "task", "a", "--", `trap "" INT TERM; `+daemon(f("stopped"), false)+`; while :; do sleep 1; echo tick; done`)
	stoppedDaemon := pidIn(t, f("stopped"))
	s.MustGantry(t, "run", "stop", "--id", stopping.ID)
	s.WaitRun(t, stopping.ID, apiv1.StateStopped)
	waitReaped(t, "a stopped task's detached daemon", stoppedDaemon)

	// A before_init hook's background process serves the plan, then dies.
	preview := s.WaitRun(t, s.StartRun(t, "preview", "b").ID, apiv1.StateFinished)
	if log := s.Logs(t, "b", preview.ID); !strings.Contains(log, "bg-alive-during-plan") {
		t.Errorf("the before_init hook's background process was not alive during the plan:\n%s", log)
	}
	waitReaped(t, "a before_init hook's background process", pidIn(t, f("bg")))

	// One job's end leaves the job beside it alone.
	long := s.StartRun(t, "task", "a", "--", daemon(f("long"), false)+"; while [ ! -e "+f("release")+" ]; do sleep 0.2; done")
	longDaemon := pidIn(t, f("long"))
	if res := s.GantryJSON(t, &task, "stack", "task", "--id", "b", "--wait", "--", daemon(f("short"), false)); res.Code != 0 || task.State != apiv1.StateFinished {
		t.Fatalf("task beside another: exit %d, %+v\n%s", res.Code, task, res.Stderr)
	}
	waitReaped(t, "the short task's daemon", pidIn(t, f("short")))
	time.Sleep(3 * time.Second) // a sweep or more (every 2 s) while the long task runs
	if !alive(longDaemon) {
		t.Errorf("the daemon of a task still running was killed when the task beside it ended")
	}
	if err := os.WriteFile(f("release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s.WaitRun(t, long.ID, apiv1.StateFinished)
	waitReaped(t, "the long task's daemon", longDaemon)
}
