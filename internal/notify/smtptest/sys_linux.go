//go:build linux

package smtptest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the server get SIGKILL when the test process dies, so
// that a panicking or timed-out test leaves no server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
