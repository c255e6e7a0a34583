package git

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// maxTrees bounds how many commits' trees a Cache keeps checked out.
const maxTrees = 16

// A Cache keeps the trees of the commits it checked out last, so that the
// next run of the same commit (another stack of the same repository, the
// next run of a stack whose code did not change) copies files instead of
// starting git: trees/<repo key>-<sha>/{tree/,commit.json}, each made in a
// temporary directory and renamed into place whole. (Entries of older
// workers, with a message file instead of commit.json, are dropped.)

func (c *Cache) treeEntry(repoKey, sha string) string {
	return filepath.Join(c.Dir, "trees", repoKey+"-"+sha)
}

// fromTree writes the kept tree of entry into dir and returns the commit;
// ok is false when the cache does not hold it (or could not copy it, or
// kept it without its commit: the entry is dropped and dir emptied).
func (c *Cache) fromTree(entry, dir string) (commit Commit, ok bool) {
	raw, err := os.ReadFile(filepath.Join(entry, "commit.json"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(entry); err == nil {
			_ = os.RemoveAll(entry) // an older worker's entry: made again
		}
		return Commit{}, false
	}
	if err != nil || json.Unmarshal(raw, &commit) != nil || commit.SHA == "" {
		_ = os.RemoveAll(entry)
		return Commit{}, false
	}
	if err := copyTree(filepath.Join(entry, "tree"), dir); err != nil {
		_ = os.RemoveAll(entry)
		_ = os.RemoveAll(dir)
		return Commit{}, false
	}
	now := time.Now()
	_ = os.Chtimes(entry, now, now) // most recently used
	return commit, true
}

// keepTree keeps a copy of the tree just checked out into dir. Failing to
// is no error: the next run starts git again.
func (c *Cache) keepTree(entry, dir string, commit Commit) {
	if _, err := os.Stat(entry); err == nil {
		return
	}
	root := filepath.Dir(entry)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return
	}
	tmp, err := os.MkdirTemp(root, "tmp-")
	if err != nil {
		return
	}
	meta, err := json.Marshal(commit)
	if err != nil || copyTree(dir, filepath.Join(tmp, "tree")) != nil ||
		os.WriteFile(filepath.Join(tmp, "commit.json"), meta, 0o600) != nil ||
		os.Rename(tmp, entry) != nil {
		_ = os.RemoveAll(tmp)
		return
	}
	c.pruneTrees(root)
}

// pruneTrees drops the least recently used trees beyond maxTrees, and
// temporary directories a killed worker left.
func (c *Cache) pruneTrees(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type kept struct {
		path string
		used time.Time
	}
	var trees []kept
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		info, err := e.Info()
		if err != nil {
			continue
		}
		if strings.HasPrefix(e.Name(), "tmp-") {
			if time.Since(info.ModTime()) > time.Hour {
				_ = os.RemoveAll(p)
			}
			continue
		}
		trees = append(trees, kept{p, info.ModTime()})
	}
	if len(trees) <= maxTrees {
		return
	}
	sort.Slice(trees, func(i, j int) bool { return trees[i].used.After(trees[j].used) })
	for _, t := range trees[maxTrees:] {
		_ = os.RemoveAll(t.path)
	}
}

// copyTree copies the directories, regular files (with their permission
// bits) and symbolic links under src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(p, target, info.Mode().Perm())
		}
		return fmt.Errorf("%s: not a file, directory or symbolic link", rel)
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}
