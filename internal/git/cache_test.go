package git_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/git"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCacheCheckout(t *testing.T) {
	r := newTestRepo(t)
	c := &git.Cache{Dir: t.TempDir()}
	out := func(name string) string { return filepath.Join(t.TempDir(), name) }

	// The branch tip, then a pinned older commit, then one of another branch.
	for _, tc := range []struct{ sha, want, content string }{
		{"", r.second, "# v2\n"},
		{r.first, r.first, "# v1\n"},
		{r.feature, r.feature, "# feature\n"},
	} {
		dst := out("ws")
		got, err := c.Checkout(ctx(t), r.path, "main", tc.sha, dst)
		if err != nil {
			t.Fatalf("Checkout(%q): %v", tc.sha, err)
		}
		if got.SHA != tc.want || got.Message == "" || got.Author != "Test" || got.At.IsZero() {
			t.Errorf("Checkout(%q) = %+v, want %s by Test, with its message and date", tc.sha, got, tc.want)
		}
		if got := readFile(t, filepath.Join(dst, "main.tf")); got != tc.content {
			t.Errorf("Checkout(%q) wrote %q, want %q", tc.sha, got, tc.content)
		}
		if _, err := os.Stat(filepath.Join(dst, ".git")); err == nil {
			t.Error("the workspace has a .git directory")
		}
	}

	// A commit the cache holds is served from it: the repository is not
	// read again (here it is gone).
	moved := r.path + "-moved"
	if err := os.Rename(r.path, moved); err != nil {
		t.Fatal(err)
	}
	dst := out("offline")
	if got, err := c.Checkout(ctx(t), r.path, "main", r.first, dst); err != nil || got.SHA != r.first {
		t.Fatalf("cached Checkout = %s, %v", got.SHA, err)
	}
	if err := os.Rename(moved, r.path); err != nil {
		t.Fatal(err)
	}

	// A new commit is fetched.
	third := commit(t, r.path, "main.tf", "# v3\n", "Third")
	dst = out("new")
	if got, err := c.Checkout(ctx(t), r.path, "main", third, dst); err != nil || got.SHA != third || got.Message != "Third" {
		t.Fatalf("new commit: %+v %v", got, err)
	}

	// Missing branch and commit are reported, not retried as cache damage.
	if _, err := c.Checkout(ctx(t), r.path, "nope", "", out("b")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing branch: %v", err)
	}
	missing := strings.Repeat("ab", 20)
	if _, err := c.Checkout(ctx(t), r.path, "main", missing, out("c")); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing commit: %v", err)
	}
	if _, err := c.Checkout(ctx(t), r.path, "main", "--upload-pack=evil", out("d")); err == nil {
		t.Error("an option-like SHA was accepted")
	}
}

// A damaged cache (say, left half-written by a killed worker) does not fail
// the run: it is dropped and the run clones.
func TestCacheDamaged(t *testing.T) {
	r := newTestRepo(t)
	c := &git.Cache{Dir: t.TempDir()}
	if _, err := c.Checkout(ctx(t), r.path, "main", "", filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}
	gitDirs, _ := filepath.Glob(filepath.Join(c.Dir, "*.git"))
	if len(gitDirs) != 1 {
		t.Fatalf("cache holds %d repositories, want 1", len(gitDirs))
	}
	gitDir := gitDirs[0]
	if err := os.WriteFile(filepath.Join(gitDir, "HEAD"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "b")
	got, err := c.Checkout(ctx(t), r.path, "main", r.first, dst)
	if err != nil || got.SHA != r.first {
		t.Fatalf("Checkout with a damaged cache = %s, %v", got.SHA, err)
	}
	if got := readFile(t, filepath.Join(dst, "main.tf")); got != "# v1\n" {
		t.Errorf("wrote %q", got)
	}
}

// The trees of commits checked out before are copied from the cache, with
// their modes and links, without git: a pinned commit needs neither the
// repository nor git once its tree is kept. What a run does to its
// workspace does not reach the kept tree.
func TestCacheKeepsTrees(t *testing.T) {
	r := newTestRepo(t)
	for _, d := range []string{"hooks", "sub"} {
		if err := os.MkdirAll(filepath.Join(r.path, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.path, "hooks/run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../main.tf", filepath.Join(r.path, "sub/link.tf")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, r.path, "add", "-A")
	gitRun(t, r.path, "commit", "-q", "-m", "Executable hook and a link")
	tip := gitRun(t, r.path, "rev-parse", "HEAD")

	c := &git.Cache{Dir: t.TempDir()}
	first := filepath.Join(t.TempDir(), "ws")
	kept, err := c.Checkout(ctx(t), r.path, "main", tip, first)
	if err != nil || kept.SHA != tip {
		t.Fatalf("Checkout = %s, %v", kept.SHA, err)
	}
	// The run changes its workspace.
	if err := os.WriteFile(filepath.Join(first, "main.tf"), []byte("changed by the run"), 0o644); err != nil {
		t.Fatal(err)
	}

	// No repository and no git: only the kept tree can serve the commit.
	if err := os.Rename(r.path, r.path+"-gone"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	second := filepath.Join(t.TempDir(), "ws")
	got, err := c.Checkout(ctx(t), r.path, "main", tip, second)
	if err != nil || got.SHA != tip || got.Message != "Executable hook and a link" || got.Author != "Test" || !got.At.Equal(kept.At) {
		t.Fatalf("Checkout from the kept tree = %+v, %v; want %+v", got, err, kept)
	}
	if got := readFile(t, filepath.Join(second, "main.tf")); got != "# v2\n" {
		t.Errorf("main.tf = %q, want the commit's content, not the run's change", got)
	}
	if fi, err := os.Stat(filepath.Join(second, "hooks/run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("hooks/run.sh lost its executable bit: %v %v", fi, err)
	}
	if link, err := os.Readlink(filepath.Join(second, "sub/link.tf")); err != nil || link != "../main.tf" {
		t.Errorf("sub/link.tf = %q, %v; want a link to ../main.tf", link, err)
	}
	// A commit never checked out still needs git.
	if _, err := c.Checkout(ctx(t), r.path, "main", r.first, filepath.Join(t.TempDir(), "ws")); err == nil {
		t.Error("a commit that is not kept was checked out without git or the repository")
	}
}

// Trees on disk that a Cache did not keep itself (a restarted worker's,
// or an older worker's) are not served: nothing tells what they held. The
// commit is checked out again through git, and kept anew.
func TestCacheDropsTreesOfEarlierWorkers(t *testing.T) {
	r := newTestRepo(t)
	dir := t.TempDir()
	c := &git.Cache{Dir: dir}
	if _, err := c.Checkout(ctx(t), r.path, "main", r.first, filepath.Join(t.TempDir(), "a")); err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "trees", "*-"+r.first))
	if len(entries) != 1 {
		t.Fatalf("kept trees of %s: %v", r.first, entries)
	}
	if err := os.WriteFile(filepath.Join(entries[0], "main.tf"), []byte("# changed while the worker was down\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	restarted := &git.Cache{Dir: dir, Warn: func(msg string) { t.Errorf("warned: %s", msg) }}
	dst := filepath.Join(t.TempDir(), "b")
	got, err := restarted.Checkout(ctx(t), r.path, "main", r.first, dst)
	if err != nil || got.SHA != r.first || got.Author != "Test" || got.At.IsZero() {
		t.Fatalf("Checkout after a restart = %+v, %v", got, err)
	}
	if got := readFile(t, filepath.Join(dst, "main.tf")); got != "# v1\n" {
		t.Errorf("main.tf = %q, want the commit's", got)
	}
	if got := readFile(t, filepath.Join(entries[0], "main.tf")); got != "# v1\n" {
		t.Errorf("the tree is not kept anew: main.tf = %q", got)
	}
}
