package worker

import (
	"os"
	"syscall"
)

// oTmpfile is Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY; __O_TMPFILE is
// 020000000 on every architecture Go supports), which syscall does not
// name.
const oTmpfile = 0o20000000 | syscall.O_DIRECTORY

// openUnnamed opens a new regular file in dir that has no name from the
// start (O_TMPFILE): no other process can open it by a path, and the
// worker's own /proc/<pid>/fd is closed to processes of the same user
// because the worker is not dumpable.
func openUnnamed(dir string) (*os.File, error) {
	fd, err := syscall.Open(dir, oTmpfile|syscall.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), nil
}
