package dirlock

import (
	"errors"
	"os"
	"os/exec"
	"testing"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second holder is refused: flock is per open file, so this process
	// stands in for another one.
	if _, err := Lock(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Lock = %v, want ErrInUse", err)
	}
	unlock()
	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after unlock = %v", err)
	}
	again()
}

// A process that holds the lock and dies leaves it free.
func TestLockFreedWhenTheHolderDies(t *testing.T) {
	if os.Getenv("DIRLOCK_HOLD") != "" {
		if _, err := Lock(os.Getenv("DIRLOCK_HOLD")); err != nil {
			os.Exit(3)
		}
		os.Exit(0) // dies holding it
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockFreedWhenTheHolderDies$")
	cmd.Env = append(os.Environ(), "DIRLOCK_HOLD="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("holder: %v\n%s", err, out)
	}
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after the holder died = %v", err)
	}
	unlock()
}
