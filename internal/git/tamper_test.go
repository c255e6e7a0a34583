package git_test

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/git"
)

// Run code runs as the worker's user and can rewrite the worker's git
// cache: its kept trees, its repositories' objects, configuration and
// hooks. A run still gets exactly the commit it names, the change is
// reported, and nothing planted runs.

// tamperRepo is a repository whose tip holds a file, an executable and a
// link.
func tamperRepo(t *testing.T) (repo, tip string) {
	r := newTestRepo(t)
	if err := os.MkdirAll(filepath.Join(r.path, "hooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.path, "hooks/run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("main.tf", filepath.Join(r.path, "link.tf")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, r.path, "add", "-A")
	gitRun(t, r.path, "commit", "-q", "-m", "Tip")
	return r.path, gitRun(t, r.path, "rev-parse", "HEAD")
}

// snapshot describes every file, executable, link and directory under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			files[rel] = "dir"
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			files[rel] = "link to " + target
		default:
			b, _ := os.ReadFile(p)
			files[rel] = fmt.Sprintf("%q executable=%v", b, info.Mode().Perm()&0o100 != 0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameFiles(t *testing.T, got, want map[string]string) {
	t.Helper()
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %s, want %s", p, got[p], w)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %s, not in the commit", p, g)
		}
	}
}

// warnings collects what a Cache warns of.
type warnings []string

func (w *warnings) add(msg string) { *w = append(*w, msg) }

func (w *warnings) want(t *testing.T, about string) {
	t.Helper()
	if len(*w) != 1 || !strings.Contains((*w)[0], "altered") || !strings.Contains((*w)[0], about) {
		t.Errorf("warnings = %q, want one saying the cache was altered (%s)", *w, about)
	}
	*w = nil
}

func TestCacheKeptTreeAltered(t *testing.T) {
	repo, tip := tamperRepo(t)
	tests := []struct {
		name   string
		tamper func(tree string) error
	}{
		{"file changed", func(tree string) error {
			return os.WriteFile(filepath.Join(tree, "main.tf"), []byte("# v9\n"), 0o644)
		}},
		{"file changed, same size, same time", func(tree string) error {
			p := filepath.Join(tree, "main.tf")
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte("# v9\n"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(p, fi.ModTime(), fi.ModTime())
		}},
		{"file added", func(tree string) error {
			return os.WriteFile(filepath.Join(tree, "hooks/injected.tf"), []byte(`resource "terraform_data" "x" {}`), 0o644)
		}},
		{"file removed", func(tree string) error { return os.Remove(filepath.Join(tree, "hooks/run.sh")) }},
		{"made executable", func(tree string) error { return os.Chmod(filepath.Join(tree, "main.tf"), 0o755) }},
		{"file replaced by a link to the same content", func(tree string) error {
			same := filepath.Join(t.TempDir(), "same.tf")
			if err := os.WriteFile(same, []byte("# v2\n"), 0o644); err != nil {
				return err
			}
			if err := os.Remove(filepath.Join(tree, "main.tf")); err != nil {
				return err
			}
			return os.Symlink(same, filepath.Join(tree, "main.tf"))
		}},
		{"link retargeted", func(tree string) error {
			if err := os.Remove(filepath.Join(tree, "link.tf")); err != nil {
				return err
			}
			return os.Symlink("/etc/passwd", filepath.Join(tree, "link.tf"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warned warnings
			c := &git.Cache{Dir: t.TempDir(), Warn: warned.add}
			first := filepath.Join(t.TempDir(), "ws")
			if _, err := c.Checkout(ctx(t), repo, "main", tip, first); err != nil {
				t.Fatal(err)
			}
			want := snapshot(t, first)
			trees, _ := filepath.Glob(filepath.Join(c.Dir, "trees", "*-"+tip))
			if len(trees) != 1 {
				t.Fatalf("kept trees: %v", trees)
			}
			if err := tt.tamper(trees[0]); err != nil {
				t.Fatal(err)
			}
			second := filepath.Join(t.TempDir(), "ws")
			got, err := c.Checkout(ctx(t), repo, "main", tip, second)
			if err != nil || got.SHA != tip || got.Message != "Tip" {
				t.Fatalf("Checkout = %+v, %v", got, err)
			}
			sameFiles(t, snapshot(t, second), want)
			warned.want(t, "kept tree of commit "+tip)
			// The tree is kept anew, as committed.
			third := filepath.Join(t.TempDir(), "ws")
			if _, err := c.Checkout(ctx(t), repo, "main", tip, third); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, snapshot(t, third), want)
			if len(warned) != 0 {
				t.Errorf("warned again: %q", warned)
			}
		})
	}
}

// cachedRepo returns the cache's bare repository (the only one).
func cachedRepo(t *testing.T, c *git.Cache) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(c.Dir, "*.git"))
	if len(dirs) != 1 {
		t.Fatalf("cache repositories: %v", dirs)
	}
	return dirs[0]
}

// A loose object rewritten with other content (recompressed, under the
// object's name: git does not hash it again when it reads it).
func TestCacheObjectAltered(t *testing.T) {
	repo, tip := tamperRepo(t)
	blob := gitRun(t, repo, "rev-parse", tip+":main.tf")
	var warned warnings
	dir := t.TempDir()
	c := &git.Cache{Dir: dir, Warn: warned.add}
	first := filepath.Join(t.TempDir(), "ws")
	if _, err := c.Checkout(ctx(t), repo, "main", tip, first); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, first)
	object := filepath.Join(cachedRepo(t, c), "objects", blob[:2], blob[2:])
	if _, err := os.Stat(object); err != nil {
		t.Fatalf("the blob of main.tf is not a loose object: %v", err)
	}
	injected := []byte("resource \"terraform_data\" \"injected\" {}\n")
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	fmt.Fprintf(zw, "blob %d\x00%s", len(injected), injected)
	zw.Close()
	if err := os.Chmod(object, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(object, z.Bytes(), 0o444); err != nil {
		t.Fatal(err)
	}
	if got := gitRun(t, repo, "--git-dir="+cachedRepo(t, c), "cat-file", "-p", blob); !strings.Contains(got, "injected") {
		t.Fatalf("git reads %q from the altered object", got)
	}

	// A restarted worker: no kept tree, the commit is read from the
	// repository.
	c = &git.Cache{Dir: dir, Warn: warned.add}
	second := filepath.Join(t.TempDir(), "ws")
	got, err := c.Checkout(ctx(t), repo, "main", tip, second)
	if err != nil || got.SHA != tip {
		t.Fatalf("Checkout = %+v, %v", got, err)
	}
	sameFiles(t, snapshot(t, second), want)
	warned.want(t, "object "+blob+" is altered")
}

// The repository's configuration and hooks: git runs none of what they
// name, when it reads objects or fetches.
func TestCacheRepoConfigAltered(t *testing.T) {
	repo, tip := tamperRepo(t)
	planted := t.TempDir()
	marker := filepath.Join(planted, "ran")
	hook := []byte("#!/bin/sh\necho \"$0\" >> " + marker + "\n")
	for _, name := range []string{"reference-transaction", "post-checkout", "fsmonitor", "pre-auto-gc", "post-index-change"} {
		if err := os.WriteFile(filepath.Join(planted, name), hook, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		tamper func(gitDir string) error
		warn   string
	}{
		{"hooks directory", func(gitDir string) error {
			// No configuration change: git's own hooks directory.
			return os.CopyFS(filepath.Join(gitDir, "hooks"), os.DirFS(planted))
		}, ""},
		{"core.hooksPath", func(gitDir string) error {
			return appendConfig(gitDir, "[core]\n\thooksPath = "+planted+"\n")
		}, "configuration changed"},
		{"core.fsmonitor", func(gitDir string) error {
			return appendConfig(gitDir, "[core]\n\tfsmonitor = "+filepath.Join(planted, "fsmonitor")+"\n")
		}, "configuration changed"},
		{"a command as the remote's URL", func(gitDir string) error {
			return appendConfig(gitDir, fmt.Sprintf("[protocol \"ext\"]\n\tallow = always\n[url \"ext::%s %%S\"]\n\tinsteadOf = %s\n",
				filepath.Join(planted, "fsmonitor"), repo))
		}, "configuration changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(marker)
			var warned warnings
			dir := t.TempDir()
			c := &git.Cache{Dir: dir, Warn: warned.add}
			first := filepath.Join(t.TempDir(), "ws")
			if _, err := c.Checkout(ctx(t), repo, "main", tip, first); err != nil {
				t.Fatal(err)
			}
			want := snapshot(t, first)
			if err := tt.tamper(cachedRepo(t, c)); err != nil {
				t.Fatal(err)
			}
			// The same commit (read from the repository: a restarted
			// worker), then a new one (fetched).
			c = &git.Cache{Dir: dir, Warn: warned.add}
			second := filepath.Join(t.TempDir(), "ws")
			if got, err := c.Checkout(ctx(t), repo, "main", tip, second); err != nil || got.SHA != tip {
				t.Fatalf("Checkout = %+v, %v", got, err)
			}
			sameFiles(t, snapshot(t, second), want)
			if tt.warn != "" {
				warned.want(t, tt.warn)
			}
			if err := tt.tamper(cachedRepo(t, c)); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
			newer := commit(t, repo, "main.tf", "# v3\n", "Newer")
			third := filepath.Join(t.TempDir(), "ws")
			if got, err := c.Checkout(ctx(t), repo, "main", "", third); err != nil || got.SHA != newer {
				t.Fatalf("Checkout of the new tip = %+v, %v", got, err)
			}
			if got := readFile(t, filepath.Join(third, "main.tf")); got != "# v3\n" {
				t.Errorf("main.tf = %q", got)
			}
			if ran, err := os.ReadFile(marker); err == nil {
				t.Errorf("planted commands ran: %s", ran)
			}
			gitRun(t, repo, "reset", "-q", "--hard", tip)
		})
	}
}

func appendConfig(gitDir, text string) error {
	f, err := os.OpenFile(filepath.Join(gitDir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}

// A commit whose tree names a path that leaves the workspace or writes
// git's own directory (crafted with plumbing: git checkout refuses them) is
// refused, and nothing is written outside the workspace.
func TestCacheRefusesCraftedPaths(t *testing.T) {
	for _, name := range []string{"..", ".git", ".GIT", "a/b"} {
		t.Run(name, func(t *testing.T) {
			r := newTestRepo(t)
			blob := gitRun(t, r.path, "rev-parse", r.second+":main.tf")
			raw, err := hexBytes(blob)
			if err != nil {
				t.Fatal(err)
			}
			tree := append([]byte("100644 "+name+"\x00"), raw...)
			treeFile := filepath.Join(t.TempDir(), "tree")
			if err := os.WriteFile(treeFile, tree, 0o644); err != nil {
				t.Fatal(err)
			}
			treeID := gitRun(t, r.path, "hash-object", "--literally", "-t", "tree", "-w", treeFile)
			crafted := gitRun(t, r.path, "commit-tree", "-p", r.second, "-m", "Crafted", treeID)
			gitRun(t, r.path, "update-ref", "refs/heads/main", crafted)
			ws := filepath.Join(t.TempDir(), "deep", "ws")
			c := &git.Cache{Dir: t.TempDir()}
			if _, err := c.Checkout(ctx(t), r.path, "main", crafted, ws); err == nil || !strings.Contains(err.Error(), "invalid path") {
				t.Errorf("Checkout of a tree naming %q = %v, want an invalid path error", name, err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(ws)); len(entries) > 1 || len(entries) == 1 && entries[0].Name() != "ws" {
				t.Errorf("a file was written outside the workspace: %v", entries)
			}
		})
	}
}

func hexBytes(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	_, err := fmt.Sscanf(s, "%x", &b)
	return b, err
}

// Repositories of SHA-256 object ids are checked out and verified too.
func TestCacheSHA256(t *testing.T) {
	repo := t.TempDir()
	gitRun(t, repo, "init", "--quiet", "--initial-branch=main", "--object-format=sha256")
	tip := commit(t, repo, "main.tf", "# sha256\n", "SHA-256")
	if len(tip) != 64 {
		t.Fatalf("tip %s", tip)
	}
	c := &git.Cache{Dir: t.TempDir(), Warn: func(msg string) { t.Errorf("warned: %s", msg) }}
	for _, sha := range []string{"", tip, tip} { // fetched, read from the repository, from the kept tree
		ws := filepath.Join(t.TempDir(), "ws")
		got, err := c.Checkout(ctx(t), repo, "main", sha, ws)
		if err != nil || got.SHA != tip || got.Message != "SHA-256" {
			t.Fatalf("Checkout(%q) = %+v, %v", sha, got, err)
		}
		if got := readFile(t, filepath.Join(ws, "main.tf")); got != "# sha256\n" {
			t.Errorf("main.tf = %q", got)
		}
	}
}
