//go:build unix && !linux

package e2e

import (
	"os/exec"
	"syscall"
)

func setOwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func dieWithParent(*exec.Cmd) {}

type process struct {
	pid  int
	args string
}

// descendants is only implemented on Linux.
func descendants(int) []process { return nil }

func alive(int) bool { return false }

func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
