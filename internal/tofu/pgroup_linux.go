//go:build linux

package tofu

import (
	"os/exec"
	"syscall"
)

// setProcessGroup starts the tool in its own process group, and has the
// kernel kill it if the process that started it dies (a killed server must
// not leave a tool applying behind its back).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
