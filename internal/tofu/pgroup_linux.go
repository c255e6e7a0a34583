//go:build linux

package tofu

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the tool in its own session (and so its own
// process group), and has the kernel kill it if the process that started
// it dies (a killed server must not leave a tool applying behind its
// back). Its own session tells what a job started from what the worker
// starts for itself: no process can join the worker's session again
// (see package jobprocs).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}

// keepBackground: RunShell leaves what a shell runs in the background to
// the end of its job (package jobprocs kills it there).
const keepBackground = true
