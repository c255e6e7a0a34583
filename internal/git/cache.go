package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// Cache keeps a bare copy of each repository a worker checks out, so that a
// run fetches only what it lacks and writes its tree in one process instead
// of cloning, and the trees of the last commits it checked out (trees.go),
// so that running the same commit again starts no git at all once the
// commit is known. One Cache belongs to one worker: it is not safe for
// concurrent use.
type Cache struct{ Dir string }

// Checkout writes the tree of sha (the tip of branch when sha is empty) into
// dir, which must not exist or be empty, and returns the commit. Any
// trouble with the cache falls back to a plain clone.
func (c *Cache) Checkout(ctx context.Context, repo, branch, sha, dir string) (Commit, error) {
	if sha != "" && !ValidSHA(sha) {
		return Commit{}, fmt.Errorf("%q is not a full commit SHA", sha)
	}
	sum := sha256.Sum256([]byte(repo))
	key := hex.EncodeToString(sum[:16])
	gitDir := filepath.Join(c.Dir, key+".git")
	commit, err := c.checkout(ctx, gitDir, key, repo, branch, sha, dir)
	if err == nil || ctx.Err() != nil {
		return commit, err
	}
	if _, ok := err.(notFound); ok {
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
	if _, err := os.Stat(gitDir); os.IsNotExist(err) {
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return Commit{}, err
		}
		tmp, err := os.MkdirTemp(c.Dir, "init-")
		if err != nil {
			return Commit{}, err
		}
		if _, err := run(ctx, "", "init", "--quiet", "--bare", tmp); err != nil {
			os.RemoveAll(tmp)
			return Commit{}, err
		}
		if err := os.Rename(tmp, gitDir); err != nil {
			os.RemoveAll(tmp)
			return Commit{}, err
		}
	}
	g := func(args ...string) (string, error) {
		return run(ctx, "", append([]string{"--git-dir=" + gitDir}, args...)...)
	}
	fetch := func(ref string) error {
		_, err := g("fetch", "--quiet", "--no-tags", "--", repo, ref)
		return err
	}
	// Only on the slow path (something to fetch) check that the cache itself
	// is sound, so that its damage is not taken for a missing branch.
	sound := func() error {
		_, err := g("rev-parse", "--git-dir")
		return err
	}
	if sha == "" {
		// Ask the remote for the branch's tip (cheaper than fetching):
		// often the cache already holds that commit.
		head, err := Head(ctx, repo, branch)
		if err != nil {
			return Commit{}, notFound{err}
		}
		sha = head
	}
	if len(sha) == 40 || len(sha) == 64 {
		if commit, ok := c.fromTree(c.treeEntry(key, sha), dir); ok {
			return commit, nil
		}
	}
	rev := sha
	commit, err := describeIn(ctx, gitDir, rev)
	if err != nil {
		// Not in the cache yet: fetch the branch, then the commit itself.
		if err := sound(); err != nil {
			return Commit{}, err
		}
		if ferr := fetch("+refs/heads/" + branch + ":refs/heads/" + branch); ferr != nil {
			return Commit{}, notFound{ferr}
		}
		if commit, err = describeIn(ctx, gitDir, rev); err != nil {
			if ferr := fetch(sha); ferr != nil {
				return Commit{}, notFound{fmt.Errorf("commit %s not found in %s (branch %s)", sha, repo, branch)}
			}
			if commit, err = describeIn(ctx, gitDir, rev); err != nil {
				return Commit{}, notFound{fmt.Errorf("commit %s not found in %s (branch %s)", sha, repo, branch)}
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Commit{}, err
	}
	_ = os.Remove(filepath.Join(gitDir, "index.lock")) // left by a killed checkout
	if _, err := g("--work-tree="+dir, "checkout", "--quiet", "--force", commit.SHA, "--", "."); err != nil {
		return Commit{}, err
	}
	c.keepTree(c.treeEntry(key, commit.SHA), dir, commit)
	return commit, nil
}

func describeIn(ctx context.Context, gitDir, rev string) (Commit, error) {
	return describe(ctx, "", rev, "--git-dir="+gitDir)
}
