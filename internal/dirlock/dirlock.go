// Package dirlock keeps a directory to one process: a gantry server's data
// directory, a gantry worker's work directory.
package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// ErrInUse is returned when another process holds the directory.
var ErrInUse = errors.New("in use by another process")

// Lock takes an exclusive lock on dir (a .lock file in it) for this
// process's life, or until unlock. The lock goes with the process: a killed
// one leaves nothing to clean.
func Lock(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
