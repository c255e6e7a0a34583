package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// What TestMain prepares for every test of the process.
var (
	gantryBin string // the gantry binary built from this tree
	tofuBin   string // the OpenTofu binary
	cliHome   string // an empty HOME for CLI processes (no saved login)
	skipAll   string // why every test skips (-short), if they do
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		skipAll = "end-to-end tests do not run with -short"
	} else if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	dbtest.Main(m)
}

// requireSetup skips t in -short mode, and makes go test's result cache
// depend on the module's sources (see consultSources).
func requireSetup(t testing.TB) {
	t.Helper()
	if skipAll != "" {
		t.Skip(skipAll)
	}
	consultOnce.Do(func() { consultErr = consultSources(moduleDir) })
	if consultErr != nil {
		t.Fatalf("reading the module's directories: %v", consultErr)
	}
}

var (
	moduleDir   string // the module root
	consultOnce sync.Once
	consultErr  error
)

// setup builds gantry, finds OpenTofu and checks for git.
func setup() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	moduleDir = root
	dir, err := os.MkdirTemp("", "gantry-e2e-")
	if err != nil {
		return err
	}
	if err := removeAtExit(dir); err != nil {
		os.RemoveAll(dir)
		return err
	}
	cliHome = filepath.Join(dir, "home")
	if err := os.Mkdir(cliHome, 0o700); err != nil {
		return err
	}
	if _, err := exec.LookPath("git"); err != nil {
		return errors.New("git is not on PATH: the end-to-end tests need it")
	}

	gantryBin = filepath.Join(dir, "gantry")
	start := time.Now()
	build := exec.Command("go", "build", "-o", gantryBin, "./cmd/gantry")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gantry: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built gantry in %s\n", time.Since(start).Round(time.Millisecond))

	if tofuBin, err = findTofu(root); err != nil {
		return fmt.Errorf("OpenTofu is required for the end-to-end tests: %w", err)
	}
	version := exec.Command(tofuBin, "version")
	version.Env = append(withoutTF(os.Environ()), "CHECKPOINT_DISABLE=1")
	out, err := version.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s version: %v\n%s", tofuBin, err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: using %s (%s)\n", tofuBin, firstLine(string(out)))
	return nil
}

// moduleRoot is the directory holding go.mod, the parent of this package.
func moduleRoot() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found above the e2e directory: %w", err)
	}
	return root, nil
}

// consultSources reads every directory of the module. The test binary does
// not import the server, so without this `go test` would replay a cached
// result after the server's code changed: it reuses a result only while
// the files and directories the tests opened are unchanged, and a
// directory counts as changed when any of its entries changes size or
// modification time. It must run inside m.Run (go test records what the
// tests open only from there), hence from requireSetup.
func consultSources(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return nil
	})
}

// findTofu returns GANTRY_TEST_TOFU, or the path scripts/ensure-tofu.sh
// prints last (it builds OpenTofu on first use, which takes minutes).
func findTofu(root string) (string, error) {
	if p := os.Getenv("GANTRY_TEST_TOFU"); p != "" {
		if !isExecutable(p) {
			return "", fmt.Errorf("GANTRY_TEST_TOFU=%s is not an executable file", p)
		}
		return filepath.Abs(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "ensure-tofu.sh"))
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scripts/ensure-tofu.sh (or set GANTRY_TEST_TOFU): %w", err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if p == "" || !isExecutable(p) {
		return "", fmt.Errorf("scripts/ensure-tofu.sh printed %q, not an executable file", p)
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// removeAtExit removes dir once this process has exited, however it exits:
// dbtest.Main ends the process with os.Exit, so no deferred call would run.
// A shell waits for end of file on a pipe whose only writer is this
// process, then removes the directory.
func removeAtExit(dir string) error {
	r, w, err := os.Pipe() // close-on-exec: children do not inherit w
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command("sh", "-c", `cat >/dev/null; rm -rf -- "$1"`, "sh", dir)
	cmd.Stdin = r
	setOwnProcessGroup(cmd) // a ^C to the test run must not stop it early
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the cleaner of %s: %w", dir, err)
	}
	exitPipe = w // kept open until the process ends
	return nil
}

// exitPipe is the write end read by the removeAtExit shell.
var exitPipe *os.File

// withoutTF drops the variables that configure OpenTofu (TF_*) and Gantry
// (GANTRY_*) from env.
func withoutTF(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TF_") && !strings.HasPrefix(kv, "GANTRY_") {
			out = append(out, kv)
		}
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
