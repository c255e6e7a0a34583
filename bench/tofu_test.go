package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// benchConfig is the configuration every run benchmark applies: one
// terraform_data resource, which needs no provider download.
const benchConfig = `resource "terraform_data" "bench" {
  input = "gantry benchmark"
}
`

// makeRepo makes a git repository on branch main whose one commit holds
// main.tf, and returns its path.
func makeRepo(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(benchConfig), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "--quiet", "-b", "main"},
		{"add", "main.tf"},
		{"commit", "--quiet", "-m", "one terraform_data"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=Gantry Bench", "GIT_AUTHOR_EMAIL=bench@gantry.invalid",
			"GIT_COMMITTER_NAME=Gantry Bench", "GIT_COMMITTER_EMAIL=bench@gantry.invalid")
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return dir
}

// bare runs the bare OpenTofu sequence the way a worker would without
// Gantry: a fresh directory, the same configuration, the same environment
// (automation mode, no checkpoint, an empty CLI configuration).
type bare struct {
	tofu string
	root string // fresh directories are made below it
	env  []string
	seq  int
}

func newBare(tb testing.TB, tofu string) *bare {
	tb.Helper()
	root := tb.TempDir()
	cliConfig := filepath.Join(root, "cli.tfrc")
	if err := os.WriteFile(cliConfig, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GANTRY_") || strings.HasPrefix(name, "TF_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE="+cliConfig)
	return &bare{tofu: tofu, root: root, env: env}
}

// bareSteps are the commands of the bare sequence.
var bareSteps = [][]string{
	{"init", "-input=false"},
	{"plan", "-input=false", "-out=p"},
	{"show", "-json", "p"},
	{"apply", "p"},
}

// bareTimes are the durations of one bare sequence: total and per step.
type bareTimes struct {
	total time.Duration
	steps [4]time.Duration
	cpu   time.Duration // user + system CPU time of the four commands
}

// freshDir makes a new directory holding main.tf.
func (b *bare) freshDir(tb testing.TB) string {
	tb.Helper()
	b.seq++
	dir := filepath.Join(b.root, fmt.Sprintf("ws-%04d", b.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(benchConfig), 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// run runs the sequence once in a fresh directory; the total includes
// making the directory. Output goes to /dev/null, errors fail tb.
func (b *bare) run(tb testing.TB) bareTimes {
	tb.Helper()
	var t bareTimes
	start := time.Now()
	dir := b.freshDir(tb)
	for i, args := range bareSteps {
		s := time.Now()
		cmd := exec.Command(b.tofu, args...)
		cmd.Dir, cmd.Env = dir, b.env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			tb.Fatalf("bare tofu %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
		}
		t.steps[i] = time.Since(s)
		t.cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	t.total = time.Since(start)
	if _, err := os.Stat(filepath.Join(dir, "terraform.tfstate")); err != nil {
		tb.Fatalf("bare sequence wrote no state in %s: %v", dir, err)
	}
	return t
}

// parallel runs the sequence in n fresh directories, `workers` at a time,
// with `xargs -P`, and returns the makespan (the whole xargs command) and
// the CPU time of xargs and everything it ran.
func (b *bare) parallel(tb testing.TB, n, workers int) (time.Duration, time.Duration) {
	tb.Helper()
	script := filepath.Join(b.root, "sequence.sh")
	var sb strings.Builder
	sb.WriteString("#!/bin/sh\nset -e\ncd \"$1\"\n")
	for _, args := range bareSteps {
		fmt.Fprintf(&sb, "%q %s >/dev/null\n", b.tofu, strings.Join(args, " "))
	}
	if err := os.WriteFile(script, []byte(sb.String()), 0o755); err != nil {
		tb.Fatal(err)
	}
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = b.freshDir(tb)
	}
	cmd := exec.Command("xargs", "-P", fmt.Sprint(workers), "-n", "1", "sh", script)
	cmd.Stdin = strings.NewReader(strings.Join(dirs, "\n") + "\n")
	cmd.Env = b.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		tb.Fatalf("xargs -P%d over %d bare sequences: %v\n%s", workers, n, err, stderr.String())
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "terraform.tfstate")); err != nil {
			tb.Fatalf("bare sequence wrote no state in %s: %v", d, err)
		}
	}
	// wait4's usage of xargs includes the children it waited for.
	return elapsed, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// terminal reports whether a run state never changes again.
func terminal(state string) bool {
	switch state {
	case apiv1.StateFinished, apiv1.StateFailed, apiv1.StateDiscarded, apiv1.StateCanceled, apiv1.StateStopped:
		return true
	}
	return false
}

// enteredAt returns when r first entered state.
func enteredAt(r apiv1.Run, state string) (time.Time, bool) {
	for _, t := range r.Transitions {
		if t.To == state {
			return t.At, true
		}
	}
	return time.Time{}, false
}

// path lists the states a run went through.
func path(r apiv1.Run) string {
	var s []string
	for _, t := range r.Transitions {
		s = append(s, t.To)
	}
	return strings.Join(s, " > ")
}

// between is the time from the first entry into state a to the first
// entry into state b, or -1 if the run entered either never.
func between(r apiv1.Run, a, b string) time.Duration {
	ta, ok1 := enteredAt(r, a)
	tb, ok2 := enteredAt(r, b)
	if !ok1 || !ok2 {
		return -1
	}
	return tb.Sub(ta)
}

// waitRun waits until the run is terminal and returns it with the time
// the wait saw it terminal (see waitRunErr).
func (s *server) waitRun(tb testing.TB, id string, every time.Duration) (apiv1.Run, time.Time) {
	tb.Helper()
	r, seen, err := s.waitRunErr(id, every)
	if err != nil {
		tb.Fatalf("%v\n%s", err, s.logTail())
	}
	return r, seen
}

// waitRunErr waits until the run is terminal and returns it with the time
// the wait saw it terminal. With every > 0 it polls GET /runs/{id} that
// often. With every == 0 it long-polls the run's log (GET
// /runs/{id}/logs?wait=20), which the server answers as soon as the log
// grows or the run ends: it sees the end within a millisecond or so and,
// unlike polling every few milliseconds, puts almost no load on the server.
func (s *server) waitRunErr(id string, every time.Duration) (apiv1.Run, time.Time, error) {
	deadline := time.Now().Add(2 * time.Minute)
	var offset int64
	for {
		ctx, cancel := callCtx()
		var r apiv1.Run
		var err error
		done := every > 0
		if !done {
			var c apiv1.LogChunk
			c, err = s.api.RunLogs(ctx, id, offset, 20*time.Second)
			offset = max(offset, c.NextOffset)
			done = c.Done
		}
		now := time.Now()
		if err == nil && done {
			r, err = s.api.GetRun(ctx, id)
		}
		cancel()
		if err != nil {
			return r, now, fmt.Errorf("waiting for run %s: %w", id, err)
		}
		if done && terminal(r.State) {
			return r, now, nil
		}
		if now.After(deadline) {
			return r, now, fmt.Errorf("run %s still %s after 2 minutes (%s)", id, r.State, path(r))
		}
		switch {
		case every > 0:
			time.Sleep(every)
		case done: // the log said done but the run is not terminal: never busy-loop
			time.Sleep(time.Millisecond)
		}
	}
}

// runLog returns a run's whole log, for failure messages.
func (s *server) runLog(id string) string {
	var out strings.Builder
	var offset int64
	for range 100 {
		ctx, cancel := callCtx()
		c, err := s.api.RunLogs(ctx, id, offset, 0)
		cancel()
		if err != nil {
			return out.String() + "\n(reading the log: " + err.Error() + ")"
		}
		out.WriteString(c.Data)
		if c.Data == "" || c.NextOffset <= offset {
			break
		}
		offset = c.NextOffset
	}
	return out.String()
}

// mustFinish fails tb unless r is FINISHED, showing its log.
func (s *server) mustFinish(tb testing.TB, r apiv1.Run) {
	tb.Helper()
	if r.State != apiv1.StateFinished {
		tb.Fatalf("run %s ended %s (%s): %s\nlog:\n%s", r.ID, r.State, path(r), r.Reason, s.runLog(r.ID))
	}
}

// createStack creates an autodeploy stack on repo.
func (s *server) createStack(tb testing.TB, id, repo string) {
	tb.Helper()
	ctx, cancel := callCtx()
	defer cancel()
	if _, err := s.api.CreateStack(ctx, apiv1.StackCreate{ID: id, Repository: repo, Branch: "main", Autodeploy: true}); err != nil {
		tb.Fatalf("create stack %s: %v", id, err)
	}
}
