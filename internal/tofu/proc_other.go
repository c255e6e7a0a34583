//go:build !unix

package tofu

import (
	"os"
	"os/exec"
)

// Without process groups only the tool itself can be stopped.

func setProcessGroup(*exec.Cmd) {}

func interruptGroup(p *os.Process) {
	if err := p.Signal(os.Interrupt); err != nil {
		_ = p.Kill()
	}
}

func killGroup(p *os.Process) { _ = p.Kill() }

func exitCodeOf(ps *os.ProcessState) int { return ps.ExitCode() }

const keepBackground = false
