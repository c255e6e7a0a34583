package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Run code runs as the worker's user: a task of one stack rewrites the
// worker's git cache (the kept tree of another stack's commit, its
// repository's configuration and hooks). The other stack's next runs
// still execute exactly their commits, the worker says the cache was
// altered, and nothing planted runs. (tester's report d, finding 1)
func TestGitCacheAltered(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Workers: 1})
	victim := NewRepo(t, map[string]string{"main.tf": staticConfig("victim-v1")})
	evil := NewRepo(t, map[string]string{"main.tf": staticConfig("evil")})
	s.CreateStack(t, "victim", victim.URL)
	s.CreateStack(t, "evil", evil.URL)

	show := func(want string) string {
		t.Helper()
		var r apiv1.Run
		if res := s.GantryJSON(t, &r, "stack", "task", "--id", "victim", "--wait", "--", "cat main.tf; ls"); res.Code != 0 {
			t.Fatalf("victim task: %s\n%s", res, s.Describe(t, r))
		}
		logs := s.WaitLog(t, "victim", r.ID, want)
		if strings.Contains(logs, "injected") {
			t.Errorf("the victim's run executed planted code:\n%s", logs)
		}
		return logs
	}
	show("victim-v1") // the worker keeps the commit's tree

	planted := t.TempDir()
	marker := filepath.Join(planted, "ran")
	hook := "#!/bin/sh\necho \"$0\" >> " + marker + "\n"
	for _, name := range []string{"reference-transaction", "fsmonitor", "post-checkout", "post-index-change"} {
		if err := os.WriteFile(filepath.Join(planted, name), []byte(hook), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := `D=` + filepath.Join(s.DataDir, "git-cache") + `; P=` + planted + `
n=0
for f in $(find "$D" -path '*/trees/*' -name main.tf); do
  printf '\nresource "terraform_data" "injected" {}\n' >> "$f"; touch "$(dirname "$f")/injected.tf"; n=$((n+1))
done
for g in $(find "$D" -name '*.git' -type d); do
  printf '[core]\n\thooksPath = %s\n\tfsmonitor = %s/fsmonitor\n' "$P" "$P" >> "$g/config"
  mkdir -p "$g/hooks" && cp "$P"/* "$g/hooks/"; n=$((n+1))
done
echo "tampered=$n"`
	var r apiv1.Run
	if res := s.GantryJSON(t, &r, "stack", "task", "--id", "evil", "--wait", "--", script); res.Code != 0 {
		t.Fatalf("evil task: %s\n%s", res, s.Describe(t, r))
	}
	if logs := s.WaitLog(t, "evil", r.ID, "tampered="); strings.Contains(logs, "tampered=0") {
		t.Fatalf("the task found nothing to tamper with:\n%s", logs)
	}

	// The same commit (its kept tree), then a new one (fetched).
	logs := show("victim-v1")
	if !strings.Contains(logs, "Warning: the kept tree of commit") || !strings.Contains(logs, "altered") {
		t.Errorf("the victim's log does not say the cache was altered:\n%s", logs)
	}
	victim.Commit(t, "v2", map[string]string{"main.tf": staticConfig("victim-v2")})
	show("victim-v2")
	if ran, err := os.ReadFile(marker); err == nil {
		t.Errorf("planted commands ran: %s", ran)
	}
	if log := s.Log(); !strings.Contains(log, "altered") || !strings.Contains(log, "level=WARN") {
		t.Errorf("the worker did not warn that its git cache was altered:\n%s", s.logTail(40))
	}
}

// Run code runs as the worker's user, whose HOME may be writable: a task of
// one stack writes an url.insteadOf into ~/.gitconfig that would send the
// other stack's repository to its own. The worker read its git
// configuration at start: the other stack's next run still checks out its
// own branch. (verification tester's finding: git configuration)
func TestGitConfigPlanted(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	home := t.TempDir()
	s := StartServer(t, ServerConfig{Workers: 1, Env: []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config")}})
	victim := NewRepo(t, map[string]string{"main.tf": staticConfig("victim-v1")})
	evil := NewRepo(t, map[string]string{"main.tf": staticConfig("evil")})
	s.CreateStack(t, "victim", victim.URL)
	s.CreateStack(t, "evil", evil.URL)

	plant := `[url "` + evil.URL + `"]\n\tinsteadOf = ` + victim.URL + `\n`
	script := `mkdir -p "$HOME/.config/git" && printf '` + plant + `' | tee -a "$HOME/.gitconfig" >> "$HOME/.config/git/config" && echo planted`
	var r apiv1.Run
	if res := s.GantryJSON(t, &r, "stack", "task", "--id", "evil", "--wait", "--", script); res.Code != 0 {
		t.Fatalf("evil task: %s\n%s", res, s.Describe(t, r))
	}
	s.WaitLog(t, "evil", r.ID, "planted")
	if b, err := os.ReadFile(filepath.Join(home, ".gitconfig")); err != nil || !strings.Contains(string(b), "insteadOf") {
		t.Fatalf("the task did not write ~/.gitconfig: %q, %v", b, err)
	}

	victim.Commit(t, "v2", map[string]string{"main.tf": staticConfig("victim-v2")})
	if res := s.GantryJSON(t, &r, "stack", "task", "--id", "victim", "--wait", "--", "cat main.tf; echo end-of-task-$((6*7))"); res.Code != 0 {
		t.Fatalf("victim task: %s\n%s", res, s.Describe(t, r))
	}
	logs := s.WaitLog(t, "victim", r.ID, "end-of-task-42")
	if !strings.Contains(logs, "victim-v2") || r.CommitSHA != victim.Head(t) {
		t.Errorf("the victim's run checked out %s, not its branch's %s:\n%s", r.CommitSHA, victim.Head(t), logs)
	}
	if log := s.Log(); !strings.Contains(log, "read the user's git configuration once") {
		t.Errorf("the server did not log that it read its git configuration:\n%s", s.logTail(40))
	}
}
