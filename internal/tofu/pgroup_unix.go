//go:build unix && !linux

package tofu

import (
	"os/exec"
	"syscall"
)

func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// keepBackground: without package jobprocs's end of the job, what a shell
// leaves in the background dies with it.
const keepBackground = false
