package worker

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// KillLeftovers kills the processes still working in dir: what a killed
// worker's (or server's) jobs started (provisioners, hooks) survives it, and must not go
// on changing infrastructure for a run that is now marked failed. It finds
// them by their working directory (Linux /proc); elsewhere it does nothing.
// dir may be or lie under a symbolic link: /proc shows working directories
// with links resolved, so dir is compared resolved too.
func KillLeftovers(dir string) []int {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var killed []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
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
