package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// A task printing 3 MB on one line, on a server storing 1 MiB of a run's
// log (GANTRY_MAX_RUN_LOG_SIZE): the run finishes, its log stops at the
// limit with a line where it was cut and one saying how much was dropped.
func TestRunLogLimit(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerConfig{Env: []string{"GANTRY_MAX_RUN_LOG_SIZE=1MiB"}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("flood")})
	s.CreateStack(t, "flood", repo.URL)
	var r apiv1.Run
	res := s.GantryJSON(t, &r, "stack", "task", "--id", "flood", "--wait", "--",
		"head", "-c", "3000000", "/dev/zero", "|", "tr", "'\\0'", "x", "&&", "echo", "&&", "echo", "after-the-flood")
	if res.Code != 0 || r.State != apiv1.StateFinished {
		t.Fatalf("task: want exit 0 and FINISHED\n%s\n%s", res, s.Describe(t, r))
	}
	logs := s.WaitLog(t, "flood", r.ID, "were dropped past its log limit of 1 MiB (--max-run-log-size)")
	if !strings.Contains(logs, "[gantry] This run's log reached its limit of 1 MiB (--max-run-log-size): output past this point is not stored; the run goes on.") {
		t.Errorf("the log lacks the line at the cut")
	}
	if strings.Contains(logs, "\nafter-the-flood\n") { // (the command line shows "echo after-the-flood")
		t.Errorf("output past the limit was stored")
	}
	if len(logs) > 1<<20+64<<10 {
		t.Errorf("the stored log has %d bytes, want about 1 MiB", len(logs))
	}
}

// An apply whose state is larger than the server's state size limit: the
// run fails with a reason naming the limit and its flag; the log says to
// raise the limit before pushing the state kept on the worker; and once the
// limit is raised, pushing that file works.
func TestStateLargerThanTheLimit(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerConfig{Args: []string{"--max-state-size", "1MiB"}})
	// input and output: two copies of 600 KB in the state.
	config := `
resource "terraform_data" "big" {
  input = format("%0600000d", 0)
}
`
	repo := NewRepo(t, map[string]string{"main.tf": config})
	s.CreateStack(t, "big", repo.URL, "--autodeploy")
	r := s.WaitRun(t, s.Deploy(t, "big").ID, apiv1.StateFailed)
	if !strings.Contains(r.Reason, "is larger than the server's state size limit (1 MiB, --max-state-size)") {
		t.Errorf("run reason = %q, want it to name the state size limit and its flag", r.Reason)
	}
	logs := s.WaitLog(t, "big", r.ID, "Run failed")
	rescued := filepath.Join(s.DataDir, "rescued", r.ID+".tfstate")
	for _, want := range []string{"larger than the server's state size limit of 1 MiB", rescued,
		"first raise the limit on the server (`gantry server --max-state-size 2MiB`, or GANTRY_MAX_STATE_SIZE=2MiB, on every server), then push it"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	if fi, err := os.Stat(rescued); err != nil || fi.Size() <= 1<<20 {
		t.Fatalf("the rescued state: %v (%v bytes), want a file larger than 1 MiB", err, fi)
	}

	// The advice works: raise the limit, then push.
	s.Stop(t)
	cfg := s.cfg
	cfg.Listen, cfg.Args = s.Addr(), []string{"--max-state-size", "2MiB"}
	s = StartServer(t, cfg)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "backend.tf"), backendConfig(s, "big"))
	if out, code := localTofu(t, s, dir, "init", "-input=false", "-no-color"); code != 0 {
		t.Fatalf("tofu init: exit %d\n%s", code, out)
	}
	if out, code := localTofu(t, s, dir, "state", "push", rescued); code != 0 {
		t.Fatalf("tofu state push of the rescued state after raising the limit: exit %d\n%s", code, out)
	}
	if cur := CurrentVersion(t, s.StateVersions(t, "big")); cur.Size <= 1<<20 {
		t.Errorf("current state version = %+v, want the pushed state", cur)
	}
}
