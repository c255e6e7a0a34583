//go:build linux

package jobprocs_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/jobprocs"
	"github.com/gantry-iac/gantry/internal/tofu"
)

func TestMain(m *testing.M) {
	jobprocs.SweepEvery = 50 * time.Millisecond
	jobprocs.Subreap(nil)
	os.Exit(m.Run())
}

// start runs script as a job's command (tofu.Run, the job's mark in its
// environment) and returns the pid the script writes to $PIDFILE once it
// has returned.
func start(t *testing.T, job *jobprocs.Job, script string) int {
	t.Helper()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	env := append(os.Environ(), "PIDFILE="+pidFile, job.Env())
	code, err := tofu.RunShell(context.Background(), dir, env, nil, script)
	if err != nil || code != 0 {
		t.Fatalf("running %q: code %d, %v", script, code, err)
	}
	return readPid(t, pidFile)
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
			t.Cleanup(func() { killIfAlive(pid) })
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid written to %s", file)
	return 0
}

func killIfAlive(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
		_ = p.Release()
	}
}

// state is the process's state letter ("" when it is gone).
func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[0]
}

func running(pid int) bool { s := state(pid); return s != "" && s != "Z" && s != "X" }

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A daemon a job's command detaches (setsid, ignoring signals) runs on
// until its job ends, then is killed; another job's is not; a process of
// ours outside any job is left alone.
func TestEndKillsWhatTheJobStarted(t *testing.T) {
	const daemon = `setsid /bin/sh -c 'trap "" INT TERM HUP; echo $$ > "$PIDFILE"; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &`
	a, b := jobprocs.NewJob("test"), jobprocs.NewJob("test")
	defer b.End()
	pa, pb := start(t, a, daemon), start(t, b, daemon)
	ours := exec.Command("sleep", "60")
	if err := ours.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ours.Process.Kill(); _ = ours.Wait() }()

	time.Sleep(3 * jobprocs.SweepEvery) // sweeps while both jobs run
	if !running(pa) || !running(pb) {
		t.Fatalf("a running job's daemon was killed: %d %s, %d %s", pa, state(pa), pb, state(pb))
	}
	killed := a.End()
	if !slices.Contains(killed, pa) || slices.Contains(killed, pb) {
		t.Errorf("End killed %v: want %d (its job's), not %d (another job's)", killed, pa, pb)
	}
	waitFor(t, "the ended job's daemon to die", func() bool { return !running(pa) })
	time.Sleep(3 * jobprocs.SweepEvery)
	if !running(pb) {
		t.Errorf("the other job's daemon %d died with the first job (%s)", pb, state(pb))
	}
	if !running(ours.Process.Pid) {
		t.Errorf("a process of ours outside any job was killed")
	}
	waitFor(t, "the killed daemon to be reaped", func() bool { return state(pa) == "" })
}

// A process that drops the mark from its environment and detaches is
// adopted by the subreaper and killed by the end of its job, or by the
// periodic sweep; its zombie is reaped.
func TestOrphansWithoutMark(t *testing.T) {
	// The subshell waits for the pid: its child is an orphan only then.
	const unmarked = `(setsid env -i PIDFILE="$PIDFILE" /bin/sh -c 'trap "" INT TERM HUP; echo $$ > "$PIDFILE"; exec /bin/sleep 300' </dev/null >/dev/null 2>&1 & ` +
		`while [ ! -s "$PIDFILE" ]; do sleep 0.01; done)`
	job := jobprocs.NewJob("test")
	pid := start(t, job, unmarked)
	if env, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); strings.Contains(string(env), jobprocs.MarkVar) {
		t.Fatalf("the process carries the mark: %q", env)
	}
	job.End()
	waitFor(t, "the unmarked orphan to die and be reaped", func() bool { return state(pid) == "" })

	// An orphan no job claims that shows up while no job ends: the
	// periodic sweep kills it.
	dir := t.TempDir()
	cmd := exec.Command("/bin/sh", "-c", unmarked)
	cmd.Env = append(os.Environ(), "PIDFILE="+filepath.Join(dir, "pid"))
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid = readPid(t, filepath.Join(dir, "pid"))
	waitFor(t, "the sweep to kill and reap the orphan", func() bool { return state(pid) == "" })
}

// A background process of a running job whose parent exited (a hook's
// `kubectl port-forward &`) is the subreaper's child: the sweep spares
// it while its job runs, and the job's end kills it.
func TestBackgroundProcessLivesWithItsJob(t *testing.T) {
	job := jobprocs.NewJob("test")
	pid := start(t, job, `(echo $$ > /dev/null; /bin/sh -c 'echo $$ > "$PIDFILE"; exec sleep 300' </dev/null >/dev/null 2>&1 &)`)
	waitFor(t, "the process to become our child", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		return len(f) > 1 && f[1] == strconv.Itoa(os.Getpid())
	})
	time.Sleep(5 * jobprocs.SweepEvery)
	if !running(pid) {
		t.Fatalf("the running job's background process was killed by a sweep")
	}
	job.End()
	waitFor(t, "the background process to die with its job", func() bool { return state(pid) == "" })
}

// The sweep never takes the exit status of a command tofu.Run waits for,
// even one that dropped its mark.
func TestSweepLeavesWaitedCommands(t *testing.T) {
	job := jobprocs.NewJob("test")
	defer job.End()
	env := append(os.Environ(), job.Env())
	for range 20 {
		code, err := tofu.RunShell(context.Background(), t.TempDir(), env, nil, "exec env -i /bin/sh -c 'sleep 0.02; exit 7'")
		if err != nil || code != 7 {
			t.Fatalf("code %d, %v: want 7", code, err)
		}
	}
}

// A process that forks and exits in a loop, so that its pid changes all
// the time (each one keeping the mark), is caught by the end of its job:
// a pass finding nothing is followed by others.
func TestEndCatchesAHopper(t *testing.T) {
	const hopper = `(setsid /bin/sh -c 'trap "" INT TERM HUP; echo $$ > "$PIDFILE"; ` +
		`while :; do (exec /bin/sh -c "echo \$\$ > \"$PIDFILE.now\"; sleep 0.002") & wait; done' </dev/null >/dev/null 2>&1 &)`
	// The loop above keeps one shell alive; a true hopper replaces itself:
	const replacing = `(setsid /bin/sh -c 'trap "" INT TERM HUP; echo $$ > "$PIDFILE"; ` +
		`hop() { sleep 0.001; ( hop ) & exit 0; }; hop' </dev/null >/dev/null 2>&1 &)`
	for name, script := range map[string]string{"looping": hopper, "replacing": replacing} {
		t.Run(name, func(t *testing.T) {
			job := jobprocs.NewJob("test")
			start(t, job, script)
			time.Sleep(100 * time.Millisecond)
			job.End()
			time.Sleep(100 * time.Millisecond)
			if left := marked(t, job); len(left) > 0 {
				t.Fatalf("processes of the ended job still run: %v", left)
			}
		})
	}
}

// marked lists the live processes carrying job's mark.
func marked(t *testing.T, job *jobprocs.Job) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !running(pid) {
			continue
		}
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if strings.Contains(string(env), "\x00"+job.Env()+"\x00") || strings.HasPrefix(string(env), job.Env()+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// What a tool command (tofu.Run: a provider, a local-exec of plan)
// detaches is killed as soon as the command exits, before the job's next
// command; what a hook (tofu.RunShell) detaches lives on until the job
// ends.
func TestToolCommandsLeaveNothing(t *testing.T) {
	const daemon = `setsid /bin/sh -c 'trap "" INT TERM HUP; echo $$ > "$PIDFILE"; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &`
	job := jobprocs.NewJob("test")
	defer job.End()
	dir := t.TempDir()
	env := append(os.Environ(), "PIDFILE="+filepath.Join(dir, "tool"), job.Env())
	if code, err := tofu.Run(context.Background(), "/bin/sh", dir, env, nil, "-c", daemon+" while [ ! -s \"$PIDFILE\" ]; do sleep 0.01; done"); err != nil || code != 0 {
		t.Fatalf("tool: %d %v", code, err)
	}
	tool := readPid(t, filepath.Join(dir, "tool"))
	hook := start(t, job, daemon)
	waitFor(t, "the tool command's daemon to die with it", func() bool { return !running(tool) })
	time.Sleep(3 * jobprocs.SweepEvery)
	if !running(hook) {
		t.Fatalf("the hook's daemon %d died before its job ended (%s)", hook, state(hook))
	}
}

// A tool command's detached process that also cleaned its environment
// (no mark at all) is dead when the command returns, not at the next
// periodic sweep.
func TestToolCommandsLeaveNothingUnmarked(t *testing.T) {
	const daemon = `setsid env -i PIDFILE="$PIDFILE" /bin/sh -c 'trap "" INT TERM HUP; echo $$ > "$PIDFILE"; while :; do sleep 1; done' </dev/null >/dev/null 2>&1 &`
	job := jobprocs.NewJob("test")
	defer job.End()
	dir := t.TempDir()
	env := append(os.Environ(), "PIDFILE="+filepath.Join(dir, "tool"), job.Env())
	if code, err := tofu.Run(context.Background(), "/bin/sh", dir, env, nil, "-c", daemon+" while [ ! -s \"$PIDFILE\" ]; do sleep 0.01; done"); err != nil || code != 0 {
		t.Fatalf("tool: %d %v", code, err)
	}
	// tofu.Run returned: what the command left is already killed.
	if tool := readPid(t, filepath.Join(dir, "tool")); running(tool) {
		t.Fatalf("the tool command's unmarked daemon %d still runs after the command returned (%s)", tool, state(tool))
	}
}

// At start, what a killed predecessor's jobs left is killed with its whole
// process group: a member that stayed in the group of a marked process but
// carries another mark (here a running job's, which no sweep kills) goes
// too.
func TestKillPrefixedKillsTheGroup(t *testing.T) {
	other := jobprocs.NewJob("other")
	defer other.End()
	leader := `setsid /bin/sh -c 'env ` + other.Env() + ` /bin/sh -c "echo \$\$ > \$PIDFILE.child; exec sleep 300" & echo $$ > "$PIDFILE"; wait' </dev/null >/dev/null 2>&1 &`
	job := jobprocs.NewJob("predecessor")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	env := append(os.Environ(), "PIDFILE="+pidFile, job.Env())
	if code, err := tofu.RunShell(context.Background(), dir, env, nil, leader); err != nil || code != 0 {
		t.Fatalf("%d %v", code, err)
	}
	marked, member := readPid(t, pidFile), readPid(t, pidFile+".child")
	killed := jobprocs.KillPrefixed("predecessor")
	if !slices.Contains(killed, marked) {
		t.Errorf("KillPrefixed = %v, want %d", killed, marked)
	}
	time.Sleep(3 * jobprocs.SweepEvery)
	if running(member) {
		t.Errorf("the member %d of the marked process's group still runs (%s)", member, state(member))
	}
	job.End()
}
