//go:build unix

package git

import (
	"os/exec"
	"syscall"
)

// killable runs git in a process group of its own that a cancelled context
// kills whole: git leaves the network to helpers (git-remote-https, ssh)
// that would otherwise live on, holding its output open, so that a remote
// that never answers would keep the caller waiting past its context.
func killable(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// oNoFollow opens a file only if it is not a symbolic link.
const oNoFollow = syscall.O_NOFOLLOW
