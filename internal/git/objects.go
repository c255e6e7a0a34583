package git

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The cache's objects are not trusted (run code, which runs as the
// worker's user, can rewrite them, and git does not hash an object again
// when it reads it): objects are read through one `git cat-file --batch`
// and each one's id is computed here from what git returned, from the
// commit id the run asked for down to every file. The id of a commit
// names its whole tree: a file that does not hash to the id its tree
// names is not written (see materialize).

// altered is an error about the cache's content: an object whose bytes do
// not hash to its id, a malformed object, a missing one that the cache
// should hold. The cache is dropped and made again.
type altered struct{ error }

func alteredf(format string, args ...any) error { return altered{fmt.Errorf(format, args...)} }

// errMissing: the cache does not hold the object.
var errMissing = errors.New("object missing")

// objectHash returns the hash function of ids of the given hex length.
func objectHash(hexLen int) func() hash.Hash {
	if hexLen == 64 {
		return sha256.New
	}
	return sha1.New
}

// objectReader reads objects from a repository through one
// `git cat-file --batch`.
type objectReader struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	newHash func() hash.Hash
	rawLen  int // bytes of a binary id in a tree
	stderr  bytes.Buffer
}

func openObjects(ctx context.Context, gitDir string, hexLen int) (*objectReader, error) {
	cmd := command(ctx, "", "--git-dir="+gitDir, "cat-file", "--batch")
	r := &objectReader{cmd: cmd, newHash: objectHash(hexLen), rawLen: hexLen / 2}
	cmd.Stderr = &r.stderr
	var err error
	if r.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	r.out = bufio.NewReaderSize(out, 64<<10)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	return r, nil
}

// kill ends git (after an error, with answers left unread).
func (r *objectReader) kill() {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
	}
}

func (r *objectReader) Close() error {
	r.in.Close()
	_, _ = io.Copy(io.Discard, r.out)
	return r.cmd.Wait()
}

// ask sends the ids of the objects to read next, in a goroutine: git may
// answer the first while the last are not written yet. Read the answers
// in the same order, then wait on the returned channel.
func (r *objectReader) ask(ids []string) <-chan error {
	done := make(chan error, 1)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	go func() {
		_, err := io.WriteString(r.in, b.String())
		done <- err
	}()
	return done
}

// header reads the answer's first line: the object's type and size.
func (r *objectReader) header(id string) (typ string, size int64, err error) {
	line, err := r.out.ReadString('\n')
	if err != nil {
		return "", 0, r.failed(err)
	}
	f := strings.Fields(line)
	if len(f) == 2 && f[0] == id && f[1] == "missing" {
		return "", 0, fmt.Errorf("%s: %w", id, errMissing)
	}
	if len(f) != 3 || f[0] != id {
		return "", 0, r.failed(fmt.Errorf("unexpected answer %q", strings.TrimSpace(line)))
	}
	size, err = strconv.ParseInt(f[2], 10, 64)
	if err != nil || size < 0 {
		return "", 0, r.failed(fmt.Errorf("unexpected answer %q", strings.TrimSpace(line)))
	}
	return f[1], size, nil
}

func (r *objectReader) failed(err error) error {
	if msg := strings.TrimSpace(r.stderr.String()); msg != "" {
		return fmt.Errorf("git cat-file: %s", msg)
	}
	return fmt.Errorf("git cat-file: %w", err)
}

// body copies the object's content (size bytes) to w and checks that the
// object hashes to id.
func (r *objectReader) body(id, typ string, size int64, w io.Writer) error {
	h := r.newHash()
	fmt.Fprintf(h, "%s %d\x00", typ, size)
	if w == nil {
		w = io.Discard
	}
	if _, err := io.CopyN(io.MultiWriter(h, w), r.out, size); err != nil {
		return r.failed(err)
	}
	if nl, err := r.out.ReadByte(); err != nil || nl != '\n' {
		return r.failed(errors.New("unexpected end of an object"))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != id {
		return alteredf("object %s is altered: its content hashes to %s", id, got)
	}
	return nil
}

// read returns the whole content of the object id (of the expected type),
// verified.
func (r *objectReader) read(id, want string) ([]byte, error) {
	done := r.ask([]string{id})
	b, err := r.readAnswer(id, want)
	if werr := <-done; err == nil && werr != nil {
		err = r.failed(werr)
	}
	return b, err
}

func (r *objectReader) readAnswer(id, want string) ([]byte, error) {
	typ, size, err := r.header(id)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := r.body(id, typ, size, &b); err != nil {
		return nil, err
	}
	if typ != want {
		return nil, notFound{fmt.Errorf("%s is a %s, not a %s", id, typ, want)}
	}
	return b.Bytes(), nil
}

// parseCommit returns the tree of a commit object and the commit.
func parseCommit(id string, raw []byte) (tree string, c Commit, err error) {
	head, msg, _ := bytes.Cut(raw, []byte("\n\n"))
	c = Commit{SHA: id, Message: strings.TrimSpace(string(msg))}
	for _, line := range strings.Split(string(head), "\n") {
		key, val, _ := strings.Cut(line, " ")
		switch key {
		case "tree":
			if tree == "" {
				tree = val
			}
		case "author":
			if name, _, ok := strings.Cut(val, " <"); ok {
				c.Author = name
			}
		case "committer":
			// "Name <email> 1234567890 +0000"
			if i := strings.LastIndex(val, "> "); i >= 0 {
				if f := strings.Fields(val[i+2:]); len(f) > 0 {
					if secs, err := strconv.ParseInt(f[0], 10, 64); err == nil && secs > 0 {
						c.At = time.Unix(secs, 0).UTC()
					}
				}
			}
		}
	}
	if len(tree) != len(id) || !ValidSHA(tree) {
		return "", Commit{}, alteredf("commit %s has no tree", id)
	}
	return tree, c, nil
}

// treeEntry is one entry of a tree object.
type treeEntry struct {
	mode string // 40000 tree, 100644 file, 100755 executable, 120000 link, 160000 submodule
	name string
	id   string
}

// parseTree returns the entries of a tree object whose ids are rawLen
// bytes long. Names that would leave the directory or write git's own
// (as git checkout refuses them) are refused.
func parseTree(id string, raw []byte, rawLen int) ([]treeEntry, error) {
	var entries []treeEntry
	for len(raw) > 0 {
		sp := bytes.IndexByte(raw, ' ')
		nul := bytes.IndexByte(raw, 0)
		if sp <= 0 || nul < sp || len(raw) < nul+1+rawLen {
			return nil, alteredf("tree %s is malformed", id)
		}
		e := treeEntry{mode: string(raw[:sp]), name: string(raw[sp+1 : nul]), id: hex.EncodeToString(raw[nul+1 : nul+1+rawLen])}
		raw = raw[nul+1+rawLen:]
		if e.name == "" || e.name == "." || e.name == ".." || strings.ContainsRune(e.name, '/') || strings.EqualFold(e.name, ".git") {
			return nil, notFound{fmt.Errorf("tree %s has an invalid path %q", id, e.name)}
		}
		entries = append(entries, e)
	}
	return entries, nil
}
