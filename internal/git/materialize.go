package git

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Differences with `git checkout`: the files are the committed bytes.
// .gitattributes are not applied (no end-of-line conversion for
// `text eol=crlf`, no `ident` expansion, no filter drivers such as Git
// LFS's), submodules are empty directories (as a checkout that does not
// recurse into them leaves them), and files are made with git's
// permissions (0666 or 0777 less the umask).

// materialize writes the tree of commit sha, read through r and verified
// object by object, into dir and, when keep is not empty, into keep too (a
// kept tree, see trees.go); it returns the commit and the kept tree's
// manifest. errMissing: the cache does not hold the commit. On any error
// what was written is removed.
func materialize(r *objectReader, sha, dir, keep string) (Commit, *keptTree, error) {
	raw, err := r.read(sha, "commit")
	if err != nil {
		return Commit{}, nil, err
	}
	treeID, commit, err := parseCommit(sha, raw)
	if err != nil {
		return Commit{}, nil, err
	}
	m := &materializer{r: r, dirs: []string{dir}, kept: &keptTree{entry: keep, commit: commit}}
	if keep != "" {
		m.dirs = append(m.dirs, keep)
	}
	for _, d := range m.dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return Commit{}, nil, err
		}
	}
	m.kept.files = append(m.kept.files, keptFile{kind: kindDir})
	if err := m.tree(treeID, "", 0); err != nil {
		for _, d := range m.dirs {
			_ = os.RemoveAll(d)
		}
		if errors.Is(err, errMissing) {
			err = altered{fmt.Errorf("the cache holds commit %s but not all its objects: %w", sha, err)}
		}
		return Commit{}, nil, err
	}
	return commit, m.kept, nil
}

type materializer struct {
	r    *objectReader
	dirs []string // where to write: the workspace, and the kept tree if any
	kept *keptTree
}

// tree writes the tree id at rel (slash-separated, "" for the root), whose
// manifest entry is m.kept.files[at].
func (m *materializer) tree(id, rel string, at int) error {
	raw, err := m.r.read(id, "tree")
	if err != nil {
		return err
	}
	entries, err := parseTree(id, raw, m.r.rawLen)
	if err != nil {
		return err
	}
	m.kept.files[at].children = len(entries)
	var blobs []treeEntry
	for _, e := range entries {
		if e.mode != "40000" && e.mode != "160000" {
			blobs = append(blobs, e)
		}
	}
	// The files of this directory are asked for at once; git answers
	// while they are written.
	ids := make([]string, len(blobs))
	for i, e := range blobs {
		ids[i] = e.id
	}
	done := m.r.ask(ids)
	for _, e := range blobs {
		if err = m.blob(e, join(rel, e.name)); err != nil {
			break
		}
	}
	if err != nil {
		m.r.kill() // the answers left unread would block the asking
	}
	if werr := <-done; err == nil && werr != nil {
		err = m.r.failed(werr)
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := join(rel, e.name)
		switch e.mode {
		case "40000":
			if err := m.mkdir(path); err != nil {
				return err
			}
			m.kept.files = append(m.kept.files, keptFile{path: path, kind: kindDir})
			if err := m.tree(e.id, path, len(m.kept.files)-1); err != nil {
				return err
			}
		case "160000": // a submodule: an empty directory
			if err := m.mkdir(path); err != nil {
				return err
			}
			m.kept.files = append(m.kept.files, keptFile{path: path, kind: kindSubmodule})
		}
	}
	return nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (m *materializer) mkdir(path string) error {
	for _, d := range m.dirs {
		// Mkdir, not MkdirAll: a name met twice (a crafted tree) fails
		// rather than lead through a link just written.
		if err := os.Mkdir(filepath.Join(d, filepath.FromSlash(path)), 0o777); err != nil {
			return err
		}
	}
	return nil
}

// blob writes the file, executable or link e at path: its content is
// git's next answer.
func (m *materializer) blob(e treeEntry, path string) error {
	typ, size, err := m.r.header(e.id)
	if err != nil {
		return err
	}
	if typ != "blob" {
		return notFound{fmt.Errorf("%s: %s is a %s, not a blob", path, e.id, typ)}
	}
	f := keptFile{path: path, id: e.id, size: size}
	switch e.mode {
	case "120000":
		f.kind = kindLink
		var target bytes.Buffer
		if err := m.r.body(e.id, typ, size, &target); err != nil {
			return err
		}
		f.target = target.String()
		for _, d := range m.dirs {
			if err := os.Symlink(f.target, filepath.Join(d, filepath.FromSlash(path))); err != nil {
				return err
			}
		}
	case "100644", "100755", "100664":
		f.kind, f.perm = kindFile, 0o666
		if e.mode == "100755" {
			f.kind, f.perm = kindExec, 0o777
		}
		if err := m.writeFile(f, e, typ, size); err != nil {
			return err
		}
	default:
		return notFound{fmt.Errorf("%s: unknown mode %s", path, e.mode)}
	}
	m.kept.files = append(m.kept.files, f)
	return nil
}

func (m *materializer) writeFile(f keptFile, e treeEntry, typ string, size int64) error {
	var outs []io.Writer
	var files []*os.File
	defer func() {
		for _, o := range files {
			o.Close()
		}
	}()
	for _, d := range m.dirs {
		o, err := os.OpenFile(filepath.Join(d, filepath.FromSlash(f.path)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.perm)
		if err != nil {
			return err
		}
		files = append(files, o)
		outs = append(outs, o)
	}
	if err := m.r.body(e.id, typ, size, io.MultiWriter(outs...)); err != nil {
		return err
	}
	for _, o := range files {
		if err := o.Close(); err != nil {
			return err
		}
	}
	files = nil
	return nil
}
