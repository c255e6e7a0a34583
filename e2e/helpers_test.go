package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Repo is a git repository in a temporary directory, on branch main.
type Repo struct {
	Dir string
	URL string // file:// URL of Dir
}

// NewRepo makes a repository whose first commit holds files (path: content).
func NewRepo(t *testing.T, files map[string]string) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Repo{Dir: dir, URL: "file://" + dir}
	r.git(t, "init", "--quiet", "-b", "main")
	r.Commit(t, "initial", files)
	return r
}

// Commit writes files (an empty content deletes the file), commits them
// all and returns the commit id.
func (r *Repo) Commit(t *testing.T, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.git(t, "add", "--all")
	r.git(t, "commit", "--quiet", "--allow-empty", "-m", msg)
	return r.Head(t)
}

// Head returns the commit at the tip of main.
func (r *Repo) Head(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(r.git(t, "rev-parse", "HEAD"))
}

func (r *Repo) git(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = r.Dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Gantry E2E", "GIT_AUTHOR_EMAIL=e2e@gantry.invalid",
		"GIT_COMMITTER_NAME=Gantry E2E", "GIT_COMMITTER_EMAIL=e2e@gantry.invalid",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// CreateStack creates a stack with `gantry stack create`.
func (s *Server) CreateStack(t *testing.T, id, repoURL string, extra ...string) apiv1.Stack {
	t.Helper()
	var st apiv1.Stack
	args := append([]string{"stack", "create", "--id", id, "--name", id, "--repository", repoURL, "--branch", "main"}, extra...)
	s.MustJSON(t, &st, args...)
	if st.ID != id {
		t.Fatalf("stack create answered stack %q, want %q", st.ID, id)
	}
	return st
}

// StartRun queues a run with `gantry stack VERB --id STACK EXTRA...`
// (deploy, preview, destroy) and returns it as the CLI printed it.
func (s *Server) StartRun(t *testing.T, verb, stack string, extra ...string) apiv1.Run {
	t.Helper()
	var r apiv1.Run
	s.MustJSON(t, &r, append([]string{"stack", verb, "--id", stack}, extra...)...)
	if r.ID == "" || r.Stack != stack {
		t.Fatalf("stack %s printed a run without an id or of another stack: %+v", verb, r)
	}
	return r
}

// Deploy queues a tracked run.
func (s *Server) Deploy(t *testing.T, stack string, extra ...string) apiv1.Run {
	t.Helper()
	return s.StartRun(t, "deploy", stack, extra...)
}

// GetRun reads a run through the API.
func (s *Server) GetRun(t *testing.T, id string) apiv1.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	r, err := s.api.GetRun(ctx, id)
	if err != nil {
		t.Fatalf("GET run %s: %v", id, err)
	}
	return r
}

// ShowRun reads a run with `gantry run show -o json`.
func (s *Server) ShowRun(t *testing.T, id string) apiv1.Run {
	t.Helper()
	var r apiv1.Run
	s.MustJSON(t, &r, "run", "show", "--id", id)
	return r
}

func isTerminal(state string) bool {
	switch state {
	case apiv1.StateFinished, apiv1.StateFailed, apiv1.StateDiscarded, apiv1.StateCanceled, apiv1.StateStopped:
		return true
	}
	return false
}

// WaitRun waits until the run is in one of the states want. It fails t,
// showing the run and its log, when the run ends in another state or the
// wait times out.
func (s *Server) WaitRun(t *testing.T, id string, want ...string) apiv1.Run {
	t.Helper()
	return s.waitRun(t, id, waitTimeout, want...)
}

func (s *Server) waitRun(t *testing.T, id string, timeout time.Duration, want ...string) apiv1.Run {
	t.Helper()
	var r apiv1.Run
	ok := poll(timeout, 200*time.Millisecond, func() bool {
		r = s.GetRun(t, id)
		if slices.Contains(want, r.State) {
			return true
		}
		if isTerminal(r.State) {
			t.Fatalf("run %s ended %s, want %s\n%s", id, r.State, strings.Join(want, " or "), s.Describe(t, r))
		}
		return false
	})
	if !ok {
		t.Fatalf("run %s is still %s after %s, want %s\n%s", id, r.State, timeout, strings.Join(want, " or "), s.Describe(t, r))
	}
	return r
}

// Describe shows a run and its log, for failure messages.
func (s *Server) Describe(t *testing.T, r apiv1.Run) string {
	t.Helper()
	b, _ := json.MarshalIndent(r, "", "  ")
	var logs string
	if res := s.Gantry(t, "stack", "logs", "--id", r.Stack, "--run", r.ID); res.Code == 0 {
		logs = res.Stdout
	} else {
		logs = res.String()
	}
	return "run: " + string(b) + "\nlog (gantry stack logs):\n" + logs
}

// Logs returns a run's log with `gantry stack logs`.
func (s *Server) Logs(t *testing.T, stack, run string) string {
	t.Helper()
	return s.MustGantry(t, "stack", "logs", "--id", stack, "--run", run)
}

// WaitLog waits until the run's log contains text and returns the log.
// (The log of a run may still be completing as the run ends.)
func (s *Server) WaitLog(t *testing.T, stack, run, text string) string {
	t.Helper()
	var logs string
	if !poll(waitTimeout, 250*time.Millisecond, func() bool {
		logs = s.Logs(t, stack, run)
		return strings.Contains(logs, text)
	}) {
		t.Fatalf("the log of run %s does not contain %q after %s:\n%s", run, text, waitTimeout, logs)
	}
	return logs
}

// Outputs returns the stack's outputs by name (`gantry stack outputs`).
func (s *Server) Outputs(t *testing.T, stack string) map[string]apiv1.Output {
	t.Helper()
	var list []apiv1.Output
	s.MustJSON(t, &list, "stack", "outputs", "--id", stack)
	m := map[string]apiv1.Output{}
	for _, o := range list {
		m[o.Name] = o
	}
	return m
}

// StateVersions lists the stack's state versions (`gantry stack state list`).
func (s *Server) StateVersions(t *testing.T, stack string) []apiv1.StateVersion {
	t.Helper()
	var list []apiv1.StateVersion
	s.MustJSON(t, &list, "stack", "state", "list", "--id", stack)
	return list
}

// CurrentVersion returns the version marked current, failing t unless
// exactly one is.
func CurrentVersion(t *testing.T, versions []apiv1.StateVersion) apiv1.StateVersion {
	t.Helper()
	var cur []apiv1.StateVersion
	for _, v := range versions {
		if v.Current {
			cur = append(cur, v)
		}
	}
	if len(cur) != 1 {
		t.Fatalf("%d state versions are current, want 1: %+v", len(cur), versions)
	}
	return cur[0]
}

// Path returns the states a run went through, from its transitions.
func Path(r apiv1.Run) []string {
	var out []string
	for _, tr := range r.Transitions {
		out = append(out, tr.To)
	}
	return out
}

// Count returns how many transitions of r lead to state.
func Count(r apiv1.Run, state string) int {
	n := 0
	for _, tr := range r.Transitions {
		if tr.To == state {
			n++
		}
	}
	return n
}

// EnteredAt returns when r first entered state.
func EnteredAt(t *testing.T, r apiv1.Run, state string) time.Time {
	t.Helper()
	for _, tr := range r.Transitions {
		if tr.To == state {
			return tr.At
		}
	}
	t.Fatalf("run %s never entered %s: %v", r.ID, state, Path(r))
	return time.Time{}
}

// checkDelta fails t unless the run's delta is add/change/destroy.
func checkDelta(t *testing.T, r apiv1.Run, add, change, destroy int) {
	t.Helper()
	want := apiv1.Delta{Add: add, Change: change, Destroy: destroy}
	if r.Delta == nil || *r.Delta != want {
		t.Errorf("run %s delta = %+v, want %+v", r.ID, r.Delta, want)
	}
}
