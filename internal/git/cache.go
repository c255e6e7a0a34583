package git

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Cache keeps a bare copy of each repository a worker checks out, so that a
// run fetches only what it lacks and writes its tree through one git
// process instead of cloning, and the trees of the last commits it checked
// out (trees.go), so that running the same commit again starts no git at
// all once the commit is known.
//
// Nothing the cache holds on disk is trusted: run code runs as the
// worker's user and can rewrite it. A commit is written from the id the
// run names (or the remote gave for the branch) down, every object hashed
// (objects.go); the cache's git configuration is checked before git reads
// it, and git runs no hook. A cache found altered is dropped, Warn is
// told, and the commit is fetched again into a new one.
//
// One Cache belongs to one worker (one of its job slots), for the life of
// the worker: it remembers what the trees it kept hold. It is not safe for
// concurrent use.
type Cache struct {
	Dir string
	// Warn, if set, is told when the cache was found altered.
	Warn func(msg string)

	trees map[string]*keptTree // by entry (nil until the first checkout)
}

func (c *Cache) warn(msg string) {
	if c.Warn != nil {
		c.Warn(msg)
	}
}

// Checkout writes the tree of sha (the tip of branch when sha is empty) into
// dir, which must not exist or be empty, and returns the commit. Any
// trouble with the cache falls back to a plain clone.
func (c *Cache) Checkout(ctx context.Context, repo, branch, sha, dir string) (Commit, error) {
	if sha != "" && !ValidSHA(sha) {
		return Commit{}, fmt.Errorf("%q is not a full commit SHA", sha)
	}
	repo = absRepo(repo)
	if sha == "" {
		// Ask the remote for the branch's tip (cheaper than fetching):
		// often the cache already holds that commit.
		head, err := Head(ctx, repo, branch)
		if err != nil {
			return Commit{}, err
		}
		sha = head
	}
	sum := sha256.Sum256([]byte(repo))
	key := hex.EncodeToString(sum[:16])
	gitDir := filepath.Join(c.Dir, key+".git")
	if len(sha) == 64 {
		gitDir = filepath.Join(c.Dir, key+"-sha256.git")
	}
	commit, err := c.checkout(ctx, gitDir, key, repo, branch, sha, dir)
	if err == nil || ctx.Err() != nil {
		return commit, err
	}
	if errors.As(err, new(altered)) {
		// The repository's URL may hold a credential: not in the message.
		c.warn(fmt.Sprintf("the git cache was altered (%v): dropped, fetching commit %s again", err, sha))
		_ = os.RemoveAll(gitDir)
		_ = os.RemoveAll(dir)
		if commit, err = c.checkout(ctx, gitDir, key, repo, branch, sha, dir); err == nil || ctx.Err() != nil {
			return commit, err
		}
	}
	if errors.As(err, new(notFound)) {
		return Commit{}, err
	}
	// A damaged cache (for example left by a killed process) is rebuilt
	// next time; this run clones.
	_ = os.RemoveAll(gitDir)
	_ = os.RemoveAll(dir)
	return Checkout(ctx, repo, branch, sha, dir)
}

// notFound is an error about the repository's content, not the cache.
type notFound struct{ error }

func (c *Cache) checkout(ctx context.Context, gitDir, key, repo, branch, sha, dir string) (Commit, error) {
	entry := c.treeEntry(key, sha)
	if commit, ok := c.fromTree(entry, dir); ok {
		return commit, nil
	}
	if err := c.openRepo(ctx, gitDir, len(sha)); err != nil {
		return Commit{}, err
	}
	// A tree on disk that is not in memory: an earlier attempt's.
	_ = os.RemoveAll(entry)
	if err := os.MkdirAll(filepath.Dir(entry), 0o700); err != nil {
		return Commit{}, err
	}
	keep, err := os.MkdirTemp(filepath.Dir(entry), "tmp-")
	if err != nil {
		return Commit{}, err
	}
	defer os.RemoveAll(keep)
	write := func() (Commit, error) {
		r, err := openObjects(ctx, gitDir, len(sha))
		if err != nil {
			return Commit{}, err
		}
		commit, kt, err := materialize(r, sha, dir, keep)
		if cerr := r.Close(); err == nil && cerr != nil {
			err = r.failed(cerr)
		}
		if err == nil && os.Rename(keep, entry) == nil {
			kt.entry = entry
			c.keepTree(kt)
		}
		return commit, err
	}
	g := func(args ...string) (string, error) {
		return run(ctx, "", append([]string{"--git-dir=" + gitDir}, args...)...)
	}
	fetch := func(ref string) error {
		_, err := g("fetch", "--quiet", "--no-tags", "--", repo, ref)
		return err
	}
	commit, err := write()
	if !errors.Is(err, errMissing) {
		return commit, err
	}
	// Not in the cache yet: fetch the branch, then the commit itself.
	// Only on this slow path check that the cache itself is sound, so that
	// its damage is not taken for a missing branch.
	if _, err := g("rev-parse", "--git-dir"); err != nil {
		return Commit{}, err
	}
	if ferr := fetch("+refs/heads/" + branch + ":refs/heads/" + branch); ferr != nil {
		return Commit{}, notFound{ferr}
	}
	if commit, err = write(); !errors.Is(err, errMissing) {
		return commit, err
	}
	if ferr := fetch(sha); ferr != nil {
		return Commit{}, notFound{fmt.Errorf("commit %s not found in %s (branch %s)", sha, shown(repo), branch)}
	}
	if commit, err = write(); errors.Is(err, errMissing) {
		return Commit{}, notFound{fmt.Errorf("commit %s not found in %s (branch %s)", sha, shown(repo), branch)}
	}
	return commit, err
}

// repoConfig is the whole configuration of a cache's repository, as
// `git init --bare` writes it; hexLen is the length of the repository's
// object ids (64: SHA-256).
func repoConfig(hexLen int) []byte {
	if hexLen == 64 {
		return []byte("[core]\n\trepositoryformatversion = 1\n\tfilemode = true\n\tbare = true\n[extensions]\n\tobjectformat = sha256\n")
	}
	return []byte("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n")
}

// openRepo makes the cache's repository gitDir if it does not exist, else
// checks that git would read no configuration but the one it was made
// with: a repository's configuration can make git run commands (a
// transport, a credential helper, a lazy fetch from a "promisor" remote,
// a remote's upload-pack) or send what it fetches elsewhere.
func (c *Cache) openRepo(ctx context.Context, gitDir string, hexLen int) error {
	fi, err := os.Lstat(gitDir)
	if errors.Is(err, os.ErrNotExist) {
		return initRepo(ctx, c.Dir, gitDir, hexLen)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return alteredf("%s is not a directory", gitDir)
	}
	config, err := os.ReadFile(filepath.Join(gitDir, "config"))
	if err != nil || !bytes.Equal(config, repoConfig(hexLen)) {
		return alteredf("its configuration changed")
	}
	// commondir would make git read another directory's configuration.
	if _, err := os.Lstat(filepath.Join(gitDir, "commondir")); !errors.Is(err, os.ErrNotExist) {
		return alteredf("it has a commondir file")
	}
	return nil
}

func initRepo(ctx context.Context, cacheDir, gitDir string, hexLen int) error {
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(cacheDir, "init-")
	if err != nil {
		return err
	}
	args := []string{"init", "--quiet", "--bare", "--template="}
	if hexLen == 64 {
		args = append(args, "--object-format=sha256")
	}
	if _, err := run(ctx, "", append(args, tmp)...); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// Whatever the user's configuration made git init write (init.*), the
	// configuration is the one openRepo expects.
	if err := os.WriteFile(filepath.Join(tmp, "config"), repoConfig(hexLen), 0o600); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, gitDir); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return nil
}

// absRepo makes a relative local path absolute: git runs in "/".
func absRepo(repo string) string {
	if repo == "" || strings.Contains(repo, ":") || filepath.IsAbs(repo) {
		return repo
	}
	if abs, err := filepath.Abs(repo); err == nil {
		return abs
	}
	return repo
}
