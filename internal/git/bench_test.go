package git_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gantry-iac/gantry/internal/git"
)

// benchRepo makes a repository of files files (main.tf, then modules of 20
// small .tf files each) and returns it and its tip.
func benchRepo(b *testing.B, files int) (string, string) {
	b.Helper()
	repo := b.TempDir()
	run := func(args ...string) string { return gitRunTB(b, repo, args...) }
	run("init", "--quiet", "--initial-branch=main")
	if err := os.WriteFile(filepath.Join(repo, "main.tf"), []byte("resource \"terraform_data\" \"x\" {}\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 1; i < files; i++ {
		d := filepath.Join(repo, "modules", fmt.Sprintf("m%03d", i/20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		body := fmt.Sprintf("# file %d\nvariable \"v%d\" {}\n", i, i)
		for len(body) < 1500 {
			body += "# padding padding padding padding padding padding padding padding\n"
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d.tf", i)), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	run("add", "-A")
	run("commit", "--quiet", "-m", "bench")
	return repo, run("rev-parse", "HEAD")
}

// BenchmarkCacheCheckout measures a checkout of a commit the cache holds,
// through git (the tree not kept: the first run of a commit) and from a
// kept tree (the same commit again), for a one-file repository (the
// benchmarks' stacks) and one of 2,000 files.
func BenchmarkCacheCheckout(b *testing.B) {
	for _, files := range []int{1, 2000} {
		repo, tip := benchRepo(b, files)
		cacheDir := b.TempDir()
		out := b.TempDir()
		c := &git.Cache{Dir: cacheDir}
		if _, err := c.Checkout(b.Context(), repo, "main", tip, filepath.Join(out, "warm")); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("files=%d/git", files), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				_ = os.RemoveAll(filepath.Join(cacheDir, "trees"))
				c := &git.Cache{Dir: cacheDir}
				dst := filepath.Join(out, fmt.Sprintf("g%d", i))
				b.StartTimer()
				if _, err := c.Checkout(b.Context(), repo, "main", tip, dst); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = os.RemoveAll(dst)
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("files=%d/kept", files), func(b *testing.B) {
			c := &git.Cache{Dir: cacheDir}
			if _, err := c.Checkout(b.Context(), repo, "main", tip, filepath.Join(out, "warm2")); err != nil {
				b.Fatal(err)
			}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				dst := filepath.Join(out, fmt.Sprintf("k%d", i))
				b.StartTimer()
				if _, err := c.Checkout(b.Context(), repo, "main", tip, dst); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = os.RemoveAll(dst)
				b.StartTimer()
			}
		})
	}
}
