//go:build unix

package tofu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeScript(t *testing.T, body string) string {
	t.Helper()
	return writeExecutable(t, filepath.Join(t.TempDir(), "tool.sh"), []byte("#!/bin/sh\n"+body+"\n"))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPID waits for a script to write a process id into path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "the script to start", func() bool {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// processGone reports whether pid has exited (a zombie waiting for its
// reaper counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist) && runtimeHasProc()
	}
	// Format: pid (comm) state ...
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z' || stat[i+2] == 'X'
	}
	return false
}

func runtimeHasProc() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name, script string
		wantCode     int
	}{
		{"success", "echo out; echo err >&2", 0},
		{"failure", "echo out; echo err >&2; exit 3", 3},
		{"killed by a signal", "echo out; echo err >&2; kill -TERM $$", 128 + int(syscall.SIGTERM)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := Run(context.Background(), writeScript(t, tt.script), t.TempDir(), nil, &out)
			if err != nil || code != tt.wantCode {
				t.Errorf("Run = %d, %v; want %d, nil", code, err, tt.wantCode)
			}
			if out.String() != "out\nerr\n" {
				t.Errorf("output = %q, want stdout and stderr in order", out.String())
			}
		})
	}
}

func TestRunDirEnvArgs(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	bin := writeScript(t, `pwd; echo "$GANTRY_TEST_VAR"; echo "$@"; read line || echo "stdin empty"`)
	code, err := Run(context.Background(), bin, dir, []string{"GANTRY_TEST_VAR=hello"}, &out, "plan", "-out=tfplan")
	if err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	realDir, _ := filepath.EvalSymlinks(dir)
	want := realDir + "\nhello\nplan -out=tfplan\nstdin empty\n"
	if got := out.String(); got != want && got != dir+"\nhello\nplan -out=tfplan\nstdin empty\n" {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestRunSplit(t *testing.T) {
	var stdout, stderr bytes.Buffer
	bin := writeScript(t, `echo '{"format_version":"1.2"}'; echo "Warning: no CLI config" >&2`)
	code, err := RunSplit(context.Background(), bin, t.TempDir(), nil, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("RunSplit = %d, %v", code, err)
	}
	if stdout.String() != "{\"format_version\":\"1.2\"}\n" || stderr.String() != "Warning: no CLI config\n" {
		t.Errorf("stdout = %q, stderr = %q", stdout.String(), stderr.String())
	}
}

func TestRunStartFailure(t *testing.T) {
	code, err := Run(context.Background(), filepath.Join(t.TempDir(), "missing"), "", nil, nil)
	if err == nil || code != -1 {
		t.Errorf("Run = %d, %v; want -1 and an error", code, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	code, err = Run(ctx, writeScript(t, "exit 0"), "", nil, nil)
	if !errors.Is(err, context.Canceled) || code != -1 {
		t.Errorf("Run with a done context = %d, %v; want -1 and context.Canceled", code, err)
	}
}

// The tool's background children share its output pipe; Run must not wait
// for them once the tool has exited.
func TestRunDoesNotWaitForStrayChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	bin := writeScript(t, `sleep 300 & echo $! > "$1"; echo done`)
	var out bytes.Buffer
	code, err := Run(context.Background(), bin, "", nil, &out, pidFile)
	if err != nil || code != 0 || out.String() != "done\n" {
		t.Errorf("Run = %d, %v, output %q", code, err, out.String())
	}
	pid := readPID(t, pidFile)
	waitFor(t, "the stray child to die", func() bool { return processGone(pid) })
}

func TestRunCancel(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		grace      time.Duration
		wantCode   int
		wantOutput string
	}{
		{
			// sh dies of the SIGINT; its background child ignores SIGINT
			// (as asynchronous commands of a non-interactive shell do) and
			// must still be killed.
			name:     "interrupt",
			script:   `sleep 300 & echo $! > "$1"; wait`,
			grace:    time.Minute,
			wantCode: 128 + int(syscall.SIGINT),
		},
		{
			name:       "interrupt handled",
			script:     `trap 'echo interrupted; exit 7' INT; sleep 300 & echo $! > "$1"; wait`,
			grace:      time.Minute,
			wantCode:   7,
			wantOutput: "interrupted\n",
		},
		{
			name:     "interrupt ignored, killed after grace",
			script:   `trap '' INT; sleep 300 & echo $! > "$1"; wait`,
			grace:    50 * time.Millisecond,
			wantCode: 128 + int(syscall.SIGKILL),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func(old time.Duration) { KillGrace = old }(KillGrace)
			KillGrace = tt.grace

			pidFile := filepath.Join(t.TempDir(), "pid")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				code int
				err  error
			}
			done := make(chan result, 1)
			var out bytes.Buffer
			go func() {
				code, err := Run(ctx, writeScript(t, tt.script), "", nil, &out, pidFile)
				done <- result{code, err}
			}()
			grandchild := readPID(t, pidFile)
			cancel()

			var res result
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after cancellation")
			}
			if !errors.Is(res.err, context.Canceled) || res.code != tt.wantCode {
				t.Errorf("Run = %d, %v; want %d and context.Canceled", res.code, res.err, tt.wantCode)
			}
			if out.String() != tt.wantOutput {
				t.Errorf("output = %q, want %q", out.String(), tt.wantOutput)
			}
			waitFor(t, "the grandchild to die", func() bool { return processGone(grandchild) })
		})
	}
}

// gatedWriter takes nothing until released: a log that holds the tool
// back while the server is slow.
type gatedWriter struct {
	release chan struct{}
	n       int
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.release
	g.n += len(p)
	return len(p), nil
}

// Output the tool left in its pipe when it exited is not dropped while the
// writer is still taking output, however long that takes: only idle pipes
// (held open by a process that left the group) are given up on.
func TestRunWaitsForOutputASlowWriterTakes(t *testing.T) {
	defer func(d time.Duration) { drainTimeout = d }(drainTimeout)
	drainTimeout = 20 * time.Millisecond
	exited := filepath.Join(t.TempDir(), "exited")
	// 50 KB fits in the pipe: the tool exits while its writer still waits.
	bin := writeScript(t, `head -c 50000 /dev/zero | tr '\0' x; touch "$1"`)
	w := &gatedWriter{release: make(chan struct{})}
	go func() {
		for {
			if _, err := os.Stat(exited); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * drainTimeout) // the writer holds on past the drain timeout
		close(w.release)
	}()
	code, err := Run(context.Background(), bin, "", nil, w, exited)
	if err != nil || code != 0 || w.n != 50000 {
		t.Fatalf("Run = %d, %v; the writer got %d bytes, want all 50000", code, err, w.n)
	}
}

// What a shell (a hook) leaves in the background lives on after it (on
// Linux; elsewhere it dies with the shell's group), even when it writes to
// the pipe it inherited once RunShell returned: its output is discarded,
// not a SIGPIPE. A cancelled shell's background processes die with it.
func TestRunShellBackground(t *testing.T) {
	defer func(d time.Duration) { drainTimeout = d }(drainTimeout)
	drainTimeout = 50 * time.Millisecond
	pidFile := filepath.Join(t.TempDir(), "pid")
	var out bytes.Buffer
	start := time.Now()
	code, err := RunShell(context.Background(), "", nil, &out,
		`(while :; do sleep 0.05; echo tick || exit 3; done) & echo $! > "`+pidFile+`"; echo started`)
	if err != nil || code != 0 {
		t.Fatalf("RunShell = %d, %v", code, err)
	}
	if time.Since(start) > 5*time.Second || !strings.HasPrefix(out.String(), "started\n") {
		t.Fatalf("RunShell took %s, output %q", time.Since(start), out.String())
	}
	pid := readPID(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !keepBackground {
		waitFor(t, "the background process to die with the shell", func() bool { return processGone(pid) })
		return
	}
	time.Sleep(10 * drainTimeout) // it writes on, to a pipe nobody reads
	if processGone(pid) {
		t.Fatal("the shell's background process died with it (or of writing to its pipe)")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		readPID(t, pidFile+"2")
		cancel()
	}()
	code, err = RunShell(ctx, "", nil, nil, `sleep 300 & echo $! > "`+pidFile+`2"; wait`)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled RunShell = %d, %v", code, err)
	}
	waitFor(t, "the cancelled shell's background process to die", func() bool { return processGone(readPID(t, pidFile+"2")) })
}
