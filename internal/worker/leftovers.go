package worker

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/gantry-iac/gantry/internal/jobprocs"
)

// KillLeftovers kills the processes still working in dir, and those
// carrying the mark of a job of a worker working in dir (package
// jobprocs): what a killed worker's (or server's) jobs started
// (provisioners, hooks) survives it, and must not go on changing
// infrastructure for a run that is now marked failed. It finds them in
// Linux's /proc; elsewhere it does nothing. dir may be or lie under a
// symbolic link: /proc shows working directories with links resolved, so
// dir is compared resolved too.
func KillLeftovers(dir string) []int {
	killed := jobprocs.KillPrefixed(jobprocs.Prefix(dir))
	abs, err := filepath.Abs(dir)
	if err != nil {
		return killed
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return killed
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || slices.Contains(killed, pid) {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || (cwd != abs && !strings.HasPrefix(cwd, abs+string(filepath.Separator))) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	return killed
}
