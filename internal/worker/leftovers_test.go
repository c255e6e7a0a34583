package worker

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gantry-iac/gantry/internal/jobprocs"
)

// KillLeftovers kills the processes working in the directory or below it,
// also when the directory is given through a symbolic link (a symlinked
// --data-dir or --work-dir), and leaves others alone.
func TestKillLeftovers(t *testing.T) {
	if _, err := os.Stat("/proc/self/cwd"); err != nil {
		t.Skip("no /proc")
	}
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, given string }{
		{"directory", real},
		{"symbolic link", link},
		{"under a symbolic link", filepath.Join(link, "workspaces")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := filepath.Join(tt.given, "job-1")
			if err := os.MkdirAll(job, 0o700); err != nil {
				t.Fatal(err)
			}
			inside := startSleep(t, job)
			outside := startSleep(t, t.TempDir())

			killed := KillLeftovers(tt.given)
			if slices.Contains(killed, outside.Process.Pid) {
				t.Errorf("KillLeftovers(%s) = %v: killed %d, working elsewhere", tt.given, killed, outside.Process.Pid)
			}
			if !slices.Contains(killed, inside.Process.Pid) {
				t.Fatalf("KillLeftovers(%s) = %v: did not kill %d, working in %s", tt.given, killed, inside.Process.Pid, job)
			}
			if err := inside.Wait(); err == nil {
				t.Error("the process in the directory exited normally: not killed")
			}
		})
	}
}

// startSleep starts a long sleep working in dir, killed when the test ends.
func startSleep(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// KillLeftovers also kills the processes carrying the mark of a job of a
// worker working in the directory, wherever they work (a killed worker's
// job that detached and left for /), and not another worker's.
func TestKillLeftoversMarked(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc")
	}
	dir := filepath.Join(t.TempDir(), "workspaces")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mine := startMarked(t, jobprocs.MarkVar+"="+jobprocs.Prefix(dir)+"-0123")
	other := startMarked(t, jobprocs.MarkVar+"="+jobprocs.Prefix(t.TempDir())+"-0123")
	killed := KillLeftovers(dir)
	if !slices.Contains(killed, mine.Process.Pid) || slices.Contains(killed, other.Process.Pid) {
		t.Fatalf("KillLeftovers = %v: want %d (marked by a job of this directory's worker), not %d", killed, mine.Process.Pid, other.Process.Pid)
	}
}

// startMarked starts a long sleep in / with mark in its environment.
func startMarked(t *testing.T, mark string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), mark)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}
