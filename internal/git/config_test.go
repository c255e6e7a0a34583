package git_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gantry-iac/gantry/internal/git"
)

// userHome gives the test a HOME of its own, where git finds the user's
// global configuration (~/.gitconfig, ~/.config/git/config), and returns it.
func userHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	if v, ok := os.LookupEnv("GIT_CONFIG_GLOBAL"); ok {
		os.Unsetenv("GIT_CONFIG_GLOBAL")
		t.Cleanup(func() { os.Setenv("GIT_CONFIG_GLOBAL", v) })
	}
	return home
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// The user's git configuration is read once, at start: what a run writes
// there afterwards (it runs as the worker's user) reaches no later git
// command, such as an url.insteadOf that would make another stack's run
// check out this repository's commit.
func TestUserConfigReadOnce(t *testing.T) {
	home := userHome(t)
	victim, evil := newTestRepo(t), newTestRepo(t)
	evilTip := commit(t, evil.path, "main.tf", "# evil\n", "Evil")
	hooks := t.TempDir()
	appendFile(t, filepath.Join(hooks, "post-checkout"), "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\n")
	if err := os.Chmod(filepath.Join(hooks, "post-checkout"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Present at start: applied (safeConfig's options still win over it).
	alias := "/nonexistent/gantry-alias"
	appendFile(t, filepath.Join(home, ".gitconfig"), "[url \""+victim.path+"\"]\n\tinsteadOf = "+alias+"\n[core]\n\thooksPath = "+hooks+"\n")
	git.ReloadConfig(t)
	// Planted later, in both files git reads.
	plant := "[url \"" + evil.path + "\"]\n\tinsteadOf = " + victim.path + "\n"
	appendFile(t, filepath.Join(home, ".gitconfig"), plant)
	appendFile(t, filepath.Join(home, ".config", "git", "config"), plant)

	if got, err := git.Head(ctx(t), alias, "main"); err != nil || got != victim.second {
		t.Errorf("Head(alias) = %s, %v; want %s (the insteadOf read at start)", got, err, victim.second)
	}
	if got, err := git.Head(ctx(t), victim.path, "main"); err != nil || got != victim.second {
		t.Errorf("Head = %s, %v; want %s, not the planted remote's %s", got, err, victim.second, evilTip)
	}
	c := &git.Cache{Dir: t.TempDir()}
	if got, err := c.Checkout(ctx(t), victim.path, "main", "", filepath.Join(t.TempDir(), "w")); err != nil || got.SHA != victim.second {
		t.Errorf("Cache.Checkout = %s, %v; want %s", got.SHA, err, victim.second)
	}
	if got, err := git.Checkout(ctx(t), victim.path, "main", "", filepath.Join(t.TempDir(), "w")); err != nil || got.SHA != victim.second {
		t.Errorf("Checkout = %s, %v; want %s", got.SHA, err, victim.second)
	}
	if _, err := os.Stat(filepath.Join(hooks, "ran")); err == nil {
		t.Error("a hook of the configured core.hooksPath ran")
	}

	// A restart reads the configuration again: the test's plant works.
	git.ReloadConfig(t)
	if got, err := git.Head(ctx(t), victim.path, "main"); err != nil || got != evilTip {
		t.Errorf("after a restart, Head = %s, %v; want the planted remote's %s", got, err, evilTip)
	}
}
