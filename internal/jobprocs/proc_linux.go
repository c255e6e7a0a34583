//go:build linux

package jobprocs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// SweepEvery is how often a subreaper looks for orphans to kill and
// zombies to reap.
var SweepEvery = 2 * time.Second

var (
	subreapOnce sync.Once
	subreaping  atomic.Bool
)

// startSubreaping makes this process a child subreaper, if Subreap asked
// for it: the processes its descendants leave behind become its children,
// not init's. It then kills and reaps, every SweepEvery, those no running
// job claims. Once only; done at the first job, not before: a process
// that runs none (a test) has no orphans of jobs to look after.
func startSubreaping() {
	want, log := subreapWanted()
	if !want {
		return
	}
	subreapOnce.Do(func() {
		const prSetChildSubreaper = 36
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			log.Warn("cannot become the subreaper of the jobs' processes: a process a job detaches (setsid) and that drops its mark from its environment may outlive the job", "err", errno)
			return
		}
		subreaping.Store(true)
		go func() {
			for {
				time.Sleep(SweepEvery)
				if pids := settle(func() []int { return sweep("") }); len(pids) > 0 {
					log.Warn("killed processes left running by jobs that ended (or that no running job claims)", "pids", pids)
				}
			}
		}()
	})
}

// endJob kills the processes carrying mark, then the orphans no running
// job claims, until passes find none (see settle).
func endJob(mark string) []int {
	// A subreaper has every process the job left as a child, or as a
	// child's descendant (its parent dies first, then it is ours): the
	// sweep, which kills the job's own orphans with those no running job
	// claims, finds them all among its children, without reading every
	// process of the host. Otherwise the marks tell.
	var killed []int
	if subreaping.Load() {
		killed = settle(func() []int { return sweep(mark) })
		reapZombies()
	} else {
		killed = settle(func() []int { return killMarked(mark) })
	}
	return killed
}

// settle repeats pass (which kills and returns what it killed) until
// cleanPasses passes in a row kill nothing, within a bound. Passes that
// find nothing follow each other at once: a process that forks and exits
// in a loop, so that its pid changes faster than a pass, is alive in one
// of them (its child becomes ours as it exits), at no cost in time to a
// job that left nothing.
func settle(pass func() []int) []int {
	const cleanPasses = 3
	var all []int
	for clean, rounds := 0, 0; clean < cleanPasses && rounds < 200; rounds++ {
		killed := pass()
		if len(killed) == 0 {
			clean++
			continue
		}
		clean = 0
		all = append(all, killed...)
		waitGone(killed, time.Second)
	}
	return all
}

// endCommand kills what a tool command (tofu.Run, pid the leader of its
// session) left running once it exited: processes of its session, or
// carrying its mark, that became our children. Only a subreaper can tell.
func endCommand(mark string, pid int) []int {
	if !subreaping.Load() {
		return nil
	}
	// The tool's process group was just killed: its members are dying,
	// and what they started becomes ours as they go.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		reapZombies() // a dead member, ours now, is in the group until reaped
		if syscall.Kill(-pid, 0) != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	killed := settle(func() []int { return sweepCommand(mark, pid) })
	reapZombies()
	return killed
}

// sweepCommand kills our orphans that a command left: in its session,
// carrying its mark, or carrying no job's mark at all. It reaps the dead
// ones.
func sweepCommand(mark string, sid int) []int {
	sweeping.Lock()
	defer sweeping.Unlock()
	starting.Lock()
	defer starting.Unlock()
	self := os.Getpid()
	var killed []int
	for _, pid := range children() {
		st, ok := readStat(pid)
		if !ok || st.ppid != self || isWaited(pid) {
			continue
		}
		if st.state == 'Z' {
			reap(pid)
			continue
		}
		if st.sid != sid {
			// Its own session: the command's mark says it is the
			// command's; a readable environment without a job's mark
			// (cleaned) belongs to no job, as the periodic sweep also
			// finds, but it must not wait for that sweep.
			env, ok := environ(pid)
			if !ok || (commandMarkOf(env) != mark && markOf(env) != "") {
				continue
			}
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed
}

// stat is what /proc/<pid>/stat says of a process.
type stat struct {
	state     byte
	ppid, sid int
	start     uint64 // start time, in clock ticks since boot
}

func readStat(pid int) (stat, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, false
	}
	// pid (comm) state ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime ...; comm may hold anything.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, false
	}
	var st stat
	st.state = f[0][0]
	st.ppid, _ = strconv.Atoi(f[1])
	st.sid, _ = strconv.Atoi(f[3])
	st.start, _ = strconv.ParseUint(f[19], 10, 64)
	return st, true
}

// pids lists the processes in /proc.
func pids() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// hasChildrenFiles reports whether the kernel lists each thread's children
// in /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN).
var hasChildrenFiles = sync.OnceValue(func() bool {
	_, err := os.Stat(filepath.Join("/proc/self/task", strconv.Itoa(os.Getpid()), "children"))
	return err == nil
})

// children lists the processes whose parent is this process: those of its
// main thread, or, without the kernel's lists (or a main thread), every
// process (callers check the parent). An orphan a subreaper adopts becomes
// the child of its first live thread, the main one, whichever thread
// started its ancestor; children of other threads are the processes this
// one started itself (commands it waits for, git), which callers leave
// alone anyway. A child adopted during the listing may be missed: passes
// repeat (settle).
func children() []int {
	if !hasChildrenFiles() {
		return pids()
	}
	b, err := os.ReadFile(filepath.Join("/proc/self/task", strconv.Itoa(os.Getpid()), "children"))
	if err != nil {
		return pids()
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// environ reads a process's environment; ok is false when it cannot be
// read (gone, another user's, not dumpable).
func environ(pid int) ([]byte, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	return b, err == nil
}

// killMarked kills the processes of this user, wherever they are, whose
// environment carries mark. A pidfd holds the process while its
// environment is read: a pid reused meanwhile is not killed.
func killMarked(mark string) []int {
	return killMarking(func(m string) bool { return m == mark })
}

// killMarking kills the processes of this user whose mark match accepts.
func killMarking(match func(mark string) bool) []int {
	self, uid := os.Getpid(), uint32(os.Getuid())
	var killed []int
	for _, pid := range pids() {
		if pid == self || !ownedBy(pid, uid) {
			continue
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		env, ok := environ(pid)
		if ok && match(markOf(env)) && p.Signal(syscall.Signal(0)) == nil && p.Signal(syscall.SIGKILL) == nil {
			killed = append(killed, pid)
			// Its process group too, at once: a process that forks and
			// exits in a loop keeps its group while its pid changes.
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != ownGroup {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
		_ = p.Release()
	}
	return killed
}

// ownedBy reports whether the process runs as user uid (its real or
// effective user; /proc/<pid>/status says, even of a process that is not
// dumpable, whose /proc files belong to root).
func ownedBy(pid int, uid uint32) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			want := strconv.FormatUint(uint64(uid), 10)
			return len(f) >= 2 && (f[0] == want || f[1] == want)
		}
	}
	return false
}

// orphan is a process that became our child: its pid and start time.
type orphan struct {
	pid   int
	start uint64
}

var (
	// sweeping serializes sweeps.
	sweeping sync.Mutex
	// unreadable are the orphans whose environment cannot be read (made
	// not dumpable, like ssh-agent), with the marks of the jobs running
	// when they were first seen: theirs is among them, and they live
	// while one of those runs.
	unreadable = map[orphan][]string{}
)

// sweep kills the orphans (children of ours that we did not start, in a
// session other than ours, of our user) that no running job claims,
// besides ending, and reaps the dead ones. It returns the pids killed.
//
// Only a child in a session other than ours can be an orphan of a job:
// tofu.Run starts every job process in a session of its own, and no
// process can join ours. Children in our session are ours (git, version
// probes), or their descendants', and are left alone; so are the
// processes tofu.Run waits for.
func sweep(ending string) []int {
	sweeping.Lock()
	defer sweeping.Unlock()
	starting.Lock()
	defer starting.Unlock()
	self, uid := os.Getpid(), uint32(os.Getuid())
	sid, ok := ownSession()
	if !ok {
		return nil
	}
	var killed []int
	seen := map[orphan]bool{}
	for _, pid := range children() {
		st, ok := readStat(pid)
		if !ok || st.ppid != self || st.sid == sid || isWaited(pid) {
			continue
		}
		if st.state == 'Z' {
			reap(pid)
			continue
		}
		o := orphan{pid, st.start}
		seen[o] = true
		if !ownedBy(pid, uid) || claimed(o, ending) {
			continue
		}
		// Our child: its pid is not reused before we reap it.
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
			delete(unreadable, o)
		}
	}
	for o := range unreadable {
		if !seen[o] {
			delete(unreadable, o)
		}
	}
	return killed
}

// claimed reports whether a running job other than ending claims the
// orphan o: its environment carries the job's mark, or, unreadable, it
// was first seen while such a job ran.
func claimed(o orphan, ending string) bool {
	if env, ok := environ(o.pid); ok {
		m := markOf(env)
		return m != "" && m != ending && liveMark(m)
	}
	marks, ok := unreadable[o]
	if !ok {
		for _, m := range liveMarks() {
			if m != ending {
				marks = append(marks, m)
			}
		}
		unreadable[o] = marks
	}
	for _, m := range marks {
		if m != ending && liveMark(m) {
			return true
		}
	}
	return false
}

// reapZombies reaps the dead orphans.
func reapZombies() {
	sweeping.Lock()
	defer sweeping.Unlock()
	starting.Lock()
	defer starting.Unlock()
	self := os.Getpid()
	sid, ok := ownSession()
	if !ok {
		return
	}
	for _, pid := range children() {
		if st, ok := readStat(pid); ok && st.ppid == self && st.sid != sid && st.state == 'Z' && !isWaited(pid) {
			reap(pid)
		}
	}
}

// reap collects a dead child's exit status, without waiting.
func reap(pid int) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// waitGone waits until the processes are gone or dead (zombies), at most
// for d.
func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			st, ok := readStat(pid)
			if !ok || st.state == 'Z' || st.state == 'X' {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// KillPrefixed kills the processes of this user whose mark starts with
// prefix (see Prefix): what the jobs of a killed worker working in the
// same directory left. It returns their pids.
func KillPrefixed(prefix string) []int {
	var all []int
	// Once, at start, with no orphans of ours to adopt them: passes are
	// spaced, for a process that forks and exits in a loop to show up in
	// the listing of one of them.
	for clean, rounds := 0, 0; clean < 3 && rounds < 50; rounds++ {
		killed := settle(func() []int {
			return killMarking(func(m string) bool { return strings.HasPrefix(m, prefix+"-") })
		})
		if len(killed) == 0 {
			clean++
			time.Sleep(20 * time.Millisecond)
			continue
		}
		clean = 0
		all = append(all, killed...)
	}
	return all
}

// ownGroup is this process's process group, never killed.
var ownGroup = syscall.Getpgrp()

// ownSession returns our session id.
func ownSession() (int, bool) {
	sid, _, errno := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	return int(sid), errno == 0
}
