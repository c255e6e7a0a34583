package git

import (
	"os"
	"testing"
)

// ReloadConfig reads the user's git configuration again, as a new process
// would at start; the configuration read before is given back when the
// test ends.
func ReloadConfig(t testing.TB) {
	prev := config()
	loaded.Store(readConfig(os.Environ()))
	t.Cleanup(func() { loaded.Store(prev) })
}
