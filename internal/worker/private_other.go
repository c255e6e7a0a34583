//go:build !linux

package worker

import (
	"errors"
	"os"
)

// openUnnamed: only Linux has unnamed files (O_TMPFILE); privateFile then
// removes a new file's name at once.
func openUnnamed(string) (*os.File, error) { return nil, errors.New("no O_TMPFILE") }
