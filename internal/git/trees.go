package git

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// maxTrees bounds how many commits' trees a Cache keeps checked out.
const maxTrees = 16

// A Cache keeps the trees of the commits it checked out last, so that the
// next run of the same commit (another stack of the same repository, the
// next run of a stack whose code did not change) copies files instead of
// starting git: trees/<repo key>-<sha>/, each written beside the workspace
// by materialize. Run code can rewrite them (it runs as the worker's
// user): what each holds (paths, kinds, object ids, link targets) is kept
// in the Cache's memory only, and every file is hashed as it is copied. A
// kept tree that differs in any way is dropped and the commit checked out
// through git. Trees on disk that this Cache did not keep (a restarted
// worker's) are not trusted: they are removed at its first checkout.

type fileKind byte

const (
	kindDir fileKind = iota
	kindFile
	kindExec
	kindLink
	kindSubmodule // an empty directory
)

// keptFile is one entry of a kept tree's manifest.
type keptFile struct {
	path     string // slash-separated, relative to the tree ("" for its root)
	kind     fileKind
	perm     fs.FileMode // files: what they are made with
	id       string      // files and links: the blob's id
	size     int64
	target   string // links
	children int    // directories: how many entries they hold
}

// keptTree is the manifest of a kept tree: parents come before their
// entries.
type keptTree struct {
	entry  string // its directory
	commit Commit
	files  []keptFile
	used   time.Time
}

func (c *Cache) treeEntry(repoKey, sha string) string {
	return filepath.Join(c.Dir, "trees", repoKey+"-"+sha)
}

// initTrees forgets the trees on disk that this Cache did not keep.
func (c *Cache) initTrees() {
	if c.trees == nil {
		c.trees = map[string]*keptTree{}
		_ = os.RemoveAll(filepath.Join(c.Dir, "trees"))
	}
}

// fromTree copies the kept tree of entry into dir and returns the commit;
// ok is false when the Cache did not keep it, or when it differs from what
// was kept (then it is dropped, dir emptied, and Warn told).
func (c *Cache) fromTree(entry, dir string) (commit Commit, ok bool) {
	c.initTrees()
	kt := c.trees[entry]
	if kt == nil {
		return Commit{}, false
	}
	if err := kt.copyTo(dir); err != nil {
		c.warn(fmt.Sprintf("the kept tree of commit %s in the git cache was altered (%v): dropped, checking the commit out again", kt.commit.SHA, err))
		c.dropTree(entry)
		_ = os.RemoveAll(dir)
		return Commit{}, false
	}
	kt.used = time.Now()
	return kt.commit, true
}

// keepTree records the manifest of a tree materialize just kept, and drops
// the least recently used trees beyond maxTrees.
func (c *Cache) keepTree(kt *keptTree) {
	c.initTrees()
	kt.used = time.Now()
	c.trees[kt.entry] = kt
	for len(c.trees) > maxTrees {
		var oldest *keptTree
		for _, t := range c.trees {
			if oldest == nil || t.used.Before(oldest.used) {
				oldest = t
			}
		}
		c.dropTree(oldest.entry)
	}
}

func (c *Cache) dropTree(entry string) {
	delete(c.trees, entry)
	_ = os.RemoveAll(entry)
}

// copyTo copies the kept tree into dir, checking that it holds exactly
// what its manifest says: no file more or less, the same kinds, exec bits
// and link targets, and every file hashing to its blob's id.
func (kt *keptTree) copyTo(dir string) error {
	newHash := objectHash(len(kt.commit.SHA))
	for _, f := range kt.files {
		src := filepath.Join(kt.entry, filepath.FromSlash(f.path))
		dst := filepath.Join(dir, filepath.FromSlash(f.path))
		var err error
		switch f.kind {
		case kindDir, kindSubmodule:
			if err = checkDir(src, f.children); err == nil {
				if f.path == "" {
					err = os.MkdirAll(dst, 0o700)
				} else {
					err = os.Mkdir(dst, 0o777)
				}
			}
		case kindLink:
			var target string
			if target, err = readLink(src); err == nil && target != f.target {
				err = errors.New("link changed")
			}
			if err == nil {
				err = os.Symlink(target, dst)
			}
		default:
			err = copyVerified(src, dst, f, newHash)
		}
		if err != nil {
			if f.path == "" {
				return err
			}
			return fmt.Errorf("%s: %w", f.path, err)
		}
	}
	return nil
}

func checkDir(path string, children int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory any more")
	}
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	if len(names) != children {
		return fmt.Errorf("holds %d entries, not %d", len(names), children)
	}
	return nil
}

func readLink(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return "", errors.New("not a link any more")
	}
	return os.Readlink(path)
}

// copyVerified copies the file src to dst, hashing what it reads as git
// hashes a blob.
func copyVerified(src, dst string, f keptFile, newHash func() hash.Hash) error {
	in, err := os.OpenFile(src, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	switch {
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return errors.New("not a file any more")
	case fi.Size() != f.size:
		return errors.New("content changed")
	case (fi.Mode().Perm()&0o100 != 0) != (f.kind == kindExec):
		return errors.New("mode changed")
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.perm)
	if err != nil {
		return err
	}
	h := newHash()
	fmt.Fprintf(h, "blob %d\x00", f.size)
	_, err = io.Copy(io.MultiWriter(out, h), io.LimitReader(in, f.size+1))
	if err = errors.Join(err, out.Close()); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != f.id {
		return errors.New("content changed")
	}
	return nil
}
