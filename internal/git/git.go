// Package git runs the git CLI to resolve branches and check out commits.
package git

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/redact"
)

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// ValidSHA reports whether s is a full commit id.
func ValidSHA(s string) bool { return shaRE.MatchString(s) }

// safeConfig comes before every git command the worker runs: whatever a
// repository's own configuration or hooks directory holds (run code, which
// runs as the worker's user, can write the cache's), git runs no hook and
// no file system monitor, and no "ext::" transport (a command line as a
// URL).
var safeConfig = []string{
	"-c", "core.hooksPath=/dev/null",
	"-c", "core.fsmonitor=false",
	"-c", "protocol.ext.allow=never",
}

// gitEnv is the environment git runs in: what reaching a remote may need
// (an SSH agent, proxies, certificates), the user's git configuration as
// read when the process started (config.go), nothing else of the worker's
// (its tokens), and no git variable that would point git at another
// repository.
func gitEnv() []string {
	return append(baseEnv(os.Environ()), config().env...)
}

// baseEnv is gitEnv without the user's git configuration.
func baseEnv(environ []string) []string {
	env := []string{"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "LC_ALL=C"}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if keepEnv[name] {
			env = append(env, kv)
		}
	}
	return env
}

// keepEnv names the variables of the process that git gets. The user's
// GIT_CONFIG_GLOBAL and GIT_CONFIG_COUNT entries are read once instead
// (config.go).
var keepEnv = map[string]bool{}

func init() {
	for _, name := range strings.Fields(`PATH HOME USER LOGNAME TMPDIR XDG_CONFIG_HOME SSH_AUTH_SOCK
		HTTP_PROXY HTTPS_PROXY NO_PROXY ALL_PROXY http_proxy https_proxy no_proxy all_proxy
		SSL_CERT_FILE SSL_CERT_DIR GIT_EXEC_PATH GIT_SSH GIT_SSH_COMMAND GIT_SSH_VARIANT
		GIT_SSL_CAINFO GIT_SSL_CAPATH GIT_SSL_CERT GIT_SSL_KEY GIT_SSL_NO_VERIFY GIT_PROXY_SSL_CAINFO
		GIT_CONFIG_SYSTEM GIT_CONFIG_NOSYSTEM
		GIT_HTTP_LOW_SPEED_LIMIT GIT_HTTP_LOW_SPEED_TIME`) {
		keepEnv[name] = true
	}
}

// command returns git with args, run in dir: "/" when git works on no
// repository (ls-remote, clone, a --git-dir), so that a repository
// around the worker's own directory is not read.
func command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append(append([]string(nil), safeConfig...), args...)...)
	killable(cmd)
	// Once git is killed, its output is not waited for longer than this.
	cmd.WaitDelay = 2 * time.Second
	if dir == "" {
		dir = "/"
	}
	cmd.Dir = dir
	cmd.Env = append(gitEnv(), netEnv(os.Getenv, config().set)...)
	return cmd
}

func run(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := command(ctx, dir, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		// git hides a URL's password in most messages, not all.
		return "", fmt.Errorf("git %s: %s", gitVerb(args), redact.RepositoriesIn(msg))
	}
	return out.String(), nil
}

// gitVerb is the command among args (after the global options).
func gitVerb(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return args[0]
}

// Bounds of git's network operations, so that a remote that accepts and
// never answers (or stalls) fails the command rather than holding it: SSH
// gives up a connection or handshake after 30 s and a silent server after
// a minute; HTTP(S) a transfer slower than 1000 bytes/s for 60 s.
const (
	sshCommand   = "ssh -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
	lowSpeed     = "1000"
	lowSpeedTime = "60"
)

// netEnv returns the environment that sets those bounds, leaving out what
// the user set themselves (in the environment getenv reads, or in git's
// configuration as read at start: the keys in set, lower-case).
func netEnv(getenv func(string) string, set map[string]bool) []string {
	var env []string
	if getenv("GIT_SSH_COMMAND") == "" && getenv("GIT_SSH") == "" && !set["core.sshcommand"] {
		env = append(env, "GIT_SSH_COMMAND="+sshCommand)
	}
	if getenv("GIT_HTTP_LOW_SPEED_LIMIT") == "" && getenv("GIT_HTTP_LOW_SPEED_TIME") == "" &&
		!set["http.lowspeedlimit"] && !set["http.lowspeedtime"] {
		env = append(env, "GIT_HTTP_LOW_SPEED_LIMIT="+lowSpeed, "GIT_HTTP_LOW_SPEED_TIME="+lowSpeedTime)
	}
	return env
}

// heads coalesces concurrent Head calls for the same branch: runs of many
// stacks of one repository triggered together (a burst, a monorepo) ask
// the remote once. A call that joins one in flight gets that call's answer,
// which may predate the join by at most the time one ls-remote takes.
var heads = struct {
	sync.Mutex
	calls map[string]*headCall
}{calls: map[string]*headCall{}}

type headCall struct {
	done     chan struct{}
	sha      string
	err      error
	canceled bool // the asking caller's context ended
}

// Head returns the commit at the tip of branch in repo.
func Head(ctx context.Context, repo, branch string) (string, error) {
	key := repo + "\x00" + branch
	heads.Lock()
	if c, ok := heads.calls[key]; ok {
		heads.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if !c.canceled {
			return c.sha, c.err
		}
		// The caller that asked gave up; ask again for this one.
		return head(ctx, repo, branch)
	}
	c := &headCall{done: make(chan struct{})}
	heads.calls[key] = c
	heads.Unlock()
	c.sha, c.err = head(ctx, repo, branch)
	c.canceled = ctx.Err() != nil
	heads.Lock()
	delete(heads.calls, key)
	heads.Unlock()
	close(c.done)
	return c.sha, c.err
}

func head(ctx context.Context, repo, branch string) (string, error) {
	out, err := run(ctx, "", "ls-remote", "--", absRepo(repo), "refs/heads/"+branch)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	if len(f) < 1 || !ValidSHA(f[0]) {
		return "", fmt.Errorf("branch %q not found in %s", branch, shown(repo))
	}
	return f[0], nil
}

// Commit is a checked-out commit.
type Commit struct {
	SHA     string    `json:"sha"`
	Message string    `json:"message"`
	Author  string    `json:"author"` // the author's name
	At      time.Time `json:"at"`     // the committer date
}

// Checkout clones branch of repo into dir and checks out sha (the branch's
// tip when sha is empty). It returns the commit. The usual case, the tip,
// takes two git commands.
func Checkout(ctx context.Context, repo, branch, sha, dir string) (Commit, error) {
	if sha != "" && !ValidSHA(sha) {
		return Commit{}, fmt.Errorf("%q is not a full commit SHA", sha)
	}
	repo = absRepo(repo)
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if _, err := run(ctx, "", "clone", "--quiet", "--single-branch", "--branch", branch, "--", repo, dir); err != nil {
		return Commit{}, err
	}
	if s := shown(repo); s != repo {
		// The clone's configuration would keep the credential, where the
		// run's hooks and tools read files.
		if _, err := run(ctx, dir, "remote", "set-url", "origin", s); err != nil {
			return Commit{}, err
		}
	}
	head, err := describe(ctx, dir, "HEAD")
	if err != nil || sha == "" || sha == head.SHA {
		return head, err
	}
	if _, err := run(ctx, dir, "checkout", "--quiet", "--detach", sha); err != nil {
		// The commit may not be on the branch: fetch it by id.
		if _, ferr := run(ctx, dir, "fetch", "--quiet", "--", repo, sha); ferr != nil {
			return Commit{}, fmt.Errorf("commit %s not found in %s (branch %s)", sha, shown(repo), branch)
		}
		if _, err := run(ctx, dir, "checkout", "--quiet", "--detach", sha); err != nil {
			return Commit{}, err
		}
	}
	return describe(ctx, dir, sha)
}

// shown is repo as it may be shown (see redact.Repository).
func shown(repo string) string {
	s, _ := redact.Repository(repo)
	return s
}

// describe returns a commit's full id, author, date and message; pre are
// git's global options.
func describe(ctx context.Context, dir, rev string, pre ...string) (Commit, error) {
	out, err := run(ctx, dir, append(pre, "log", "-1", "--format=%H%x00%an%x00%ct%x00%B", rev, "--")...)
	if err != nil {
		return Commit{}, err
	}
	f := strings.SplitN(out, "\x00", 4)
	for len(f) < 4 {
		f = append(f, "")
	}
	c := Commit{SHA: strings.TrimSpace(f[0]), Author: f[1], Message: strings.TrimSpace(f[3])}
	if secs, err := strconv.ParseInt(f[2], 10, 64); err == nil && secs > 0 {
		c.At = time.Unix(secs, 0).UTC()
	}
	return c, nil
}
