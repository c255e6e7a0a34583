package cli

import "syscall"

// hideSecrets makes this process non-dumpable: other processes of the same
// user (the code of the runs this worker, or this server's built-in
// workers, execute) can then read neither its memory nor
// /proc/<pid>/environ, where the pool token and the private key (a
// worker's), the encryption key and the database's URL (a server's) sit.
func hideSecrets() error {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return errno
	}
	return nil
}
