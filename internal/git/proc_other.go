//go:build !unix

package git

import "os/exec"

// Without process groups a cancelled context kills git itself only;
// WaitDelay bounds the wait for its helpers' output.
func killable(*exec.Cmd) {}

const oNoFollow = 0
