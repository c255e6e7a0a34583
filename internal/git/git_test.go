package git_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/git"
)

// gitRun runs git in dir with a fixed identity and no user configuration.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitRunTB(t, dir, args...)
}

func gitRunTB(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_AUTHOR_DATE=2001-02-03T04:05:06Z", "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func commit(t *testing.T, repo, file, content, msg string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(repo, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, repo, "add", file)
	gitRun(t, repo, "commit", "--quiet", "-m", msg)
	return gitRun(t, repo, "rev-parse", "HEAD")
}

// testRepo is a repository with two commits on main, one on feature, and
// one commit no branch reaches.
type testRepo struct {
	path                           string
	first, second, feature, orphan string
}

func newTestRepo(t *testing.T) testRepo {
	t.Helper()
	r := testRepo{path: t.TempDir()}
	gitRun(t, r.path, "init", "--quiet", "--initial-branch=main")
	r.first = commit(t, r.path, "main.tf", "# v1\n", "First commit\n\nWith a body line.")
	r.second = commit(t, r.path, "main.tf", "# v2\n", "Second commit")
	gitRun(t, r.path, "checkout", "--quiet", "-b", "feature")
	r.feature = commit(t, r.path, "main.tf", "# feature\n", "Feature work")
	gitRun(t, r.path, "checkout", "--quiet", "main")
	r.orphan = gitRun(t, r.path, "commit-tree", "-p", r.second, "-m", "Dangling", r.first+"^{tree}")
	return r
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestValidSHA(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{strings.Repeat("a", 40), true},
		{"0123456789abcdef0123456789abcdef01234567", true},
		{strings.Repeat("b", 64), true}, // SHA-256 repositories
		{"", false},
		{"abc1234", false},
		{strings.Repeat("A", 40), false},
		{strings.Repeat("a", 39), false},
		{strings.Repeat("a", 41), false},
		{strings.Repeat("g", 40), false},
		{"--upload-pack=touch /tmp/x" + strings.Repeat("a", 20), false},
		{strings.Repeat("a", 40) + "\n", false},
	}
	for _, tt := range tests {
		if got := git.ValidSHA(tt.in); got != tt.want {
			t.Errorf("ValidSHA(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHead(t *testing.T) {
	r := newTestRepo(t)
	tests := []struct {
		name, repo, branch, want, wantErr string
	}{
		{name: "main", repo: r.path, branch: "main", want: r.second},
		{name: "feature", repo: r.path, branch: "feature", want: r.feature},
		{name: "file URL", repo: "file://" + r.path, branch: "main", want: r.second},
		{name: "missing branch", repo: r.path, branch: "nope", wantErr: `branch "nope" not found`},
		{name: "prefix of a branch is not the branch", repo: r.path, branch: "feat", wantErr: "not found"},
		{name: "missing repository", repo: filepath.Join(t.TempDir(), "none"), branch: "main", wantErr: "git ls-remote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := git.Head(ctx(t), tt.repo, tt.branch)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Head = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Head = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestCheckout(t *testing.T) {
	r := newTestRepo(t)
	tests := []struct {
		name, repo, branch, sha string
		wantSHA, wantMsg        string
		wantFile                string // content of main.tf
		wantErr                 string
	}{
		{name: "branch head", repo: r.path, branch: "main", wantSHA: r.second, wantMsg: "Second commit", wantFile: "# v2\n"},
		{name: "older commit", repo: r.path, branch: "main", sha: r.first, wantSHA: r.first, wantMsg: "First commit\n\nWith a body line.", wantFile: "# v1\n"},
		{name: "other branch head", repo: r.path, branch: "feature", wantSHA: r.feature, wantMsg: "Feature work", wantFile: "# feature\n"},
		// The clone is of one branch; a commit of another branch is
		// fetched by id.
		{name: "commit on another branch (path)", repo: r.path, branch: "main", sha: r.feature, wantSHA: r.feature, wantMsg: "Feature work", wantFile: "# feature\n"},
		{name: "commit on another branch (file URL)", repo: "file://" + r.path, branch: "main", sha: r.feature, wantSHA: r.feature, wantMsg: "Feature work", wantFile: "# feature\n"},
		{name: "unknown commit", repo: "file://" + r.path, branch: "main", sha: strings.Repeat("1", 40), wantErr: "commit " + strings.Repeat("1", 40) + " not found"},
		{name: "missing branch", repo: r.path, branch: "nope", wantErr: "git clone"},
		{name: "missing repository", repo: filepath.Join(t.TempDir(), "none"), branch: "main", wantErr: "git clone"},
		{name: "short sha refused", repo: r.path, branch: "main", sha: r.first[:12], wantErr: "is not a full commit SHA"},
		{name: "upper-case sha refused", repo: r.path, branch: "main", sha: strings.ToUpper(r.first), wantErr: "is not a full commit SHA"},
		{name: "option-like sha refused", repo: r.path, branch: "main", sha: "--orphan=x", wantErr: "is not a full commit SHA"},
	}
	committed := map[string]time.Time{}
	for _, sha := range []string{r.first, r.second, r.feature} {
		secs, err := strconv.ParseInt(gitRun(t, r.path, "log", "-1", "--format=%ct", sha), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		committed[sha] = time.Unix(secs, 0).UTC()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			got, err := git.Checkout(ctx(t), tt.repo, tt.branch, tt.sha, dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Checkout = %+v, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Checkout: %v", err)
			}
			if got.SHA != tt.wantSHA || got.Message != tt.wantMsg {
				t.Errorf("Checkout = %q, %q; want %q, %q", got.SHA, got.Message, tt.wantSHA, tt.wantMsg)
			}
			if want := committed[tt.wantSHA]; got.Author != "Test" || !got.At.Equal(want) {
				t.Errorf("Checkout = author %q at %v, want Test at %v (the committer date)", got.Author, got.At, want)
			}
			file, err := os.ReadFile(filepath.Join(dir, "main.tf"))
			if err != nil || string(file) != tt.wantFile {
				t.Errorf("main.tf = %q, %v; want %q", file, err, tt.wantFile)
			}
			if head := gitRun(t, dir, "rev-parse", "HEAD"); head != tt.wantSHA {
				t.Errorf("work tree HEAD = %s, want %s", head, tt.wantSHA)
			}
		})
	}
}

// A commit that no branch reaches: what git does depends on the transport
// (a local path copies every object; file:// asks upload-pack, which in
// protocol v2 serves any object it has). Record the behaviour rather than
// insist on one.
func TestCheckoutUnreachableCommit(t *testing.T) {
	r := newTestRepo(t)
	for _, repo := range []string{r.path, "file://" + r.path} {
		dir := filepath.Join(t.TempDir(), "src")
		got, err := git.Checkout(ctx(t), repo, "main", r.orphan, dir)
		if err == nil && got.SHA != r.orphan {
			t.Errorf("Checkout(%s, unreachable) = %s, want %s or an error", repo, got.SHA, r.orphan)
		}
		t.Logf("Checkout(%s, commit on no branch) = %v (nil: fetchable)", repo, err)
	}
}

func TestCheckoutCancelled(t *testing.T) {
	r := newTestRepo(t)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := git.Checkout(c, r.path, "main", "", filepath.Join(t.TempDir(), "src")); err == nil {
		t.Error("Checkout with a cancelled context = nil, want an error")
	}
	if _, err := git.Head(c, r.path, "main"); err == nil {
		t.Error("Head with a cancelled context = nil, want an error")
	}
}

// Concurrent Head calls for one branch share one answer, and each gets the
// tip; a caller whose context ends does not fail the others.
func TestHeadConcurrent(t *testing.T) {
	r := newTestRepo(t)
	var wg sync.WaitGroup
	errc := make(chan error, 20)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx(t)
			if i == 0 {
				c = canceled
			}
			sha, err := git.Head(c, r.path, "main")
			switch {
			case i == 0:
				if err == nil {
					errc <- fmt.Errorf("Head with an ended context succeeded")
				}
			case err != nil || sha != r.second:
				errc <- fmt.Errorf("Head = %s, %v; want %s", sha, err, r.second)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// A remote that never answers does not keep Head past its context: git's
// network helper (git-remote-http) is killed with it.
func TestHeadRemoteNeverAnswers(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); srv.Close() })
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := git.Head(c, srv.URL+"/repo.git", "main"); err == nil {
		t.Fatal("a remote that never answers gave a head")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Head returned %v after a 300ms context", waited)
	}
}
