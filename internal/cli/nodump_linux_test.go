package cli

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// `gantry server` makes itself non-dumpable, as `gantry worker` does: the
// runs of its built-in workers, of the same user, can read neither its
// memory nor its environment. It also drops GANTRY_* from its environment
// once read, for the processes it starts (git). (The database refuses the
// connection, so the server stops right after.)
func TestServerHidesItsSecrets(t *testing.T) {
	isolate(t)
	const prGetDumpable = 3
	if d, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetDumpable, 0, 0); d != 1 {
		t.Skipf("this test process is not dumpable to begin with (%d)", d)
	}
	t.Setenv("GANTRY_ENCRYPTION_KEY", strings.Repeat("ab", 32))
	code, _, errOut := runMain("server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--builtin-workers", "0",
		"--database-url", "postgres://gantry@127.0.0.1:1/gantry?sslmode=disable")
	if code == 0 {
		t.Fatalf("server started on a database that refuses connections:\n%s", errOut)
	}
	if d, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetDumpable, 0, 0); d != 0 {
		t.Errorf("the server process is dumpable (%d): the runs of its built-in workers could read its memory and environment", d)
	}
	if os.Getenv("GANTRY_ENCRYPTION_KEY") != "" {
		t.Error("GANTRY_ENCRYPTION_KEY is still in the server's environment: git would inherit it")
	}
}
