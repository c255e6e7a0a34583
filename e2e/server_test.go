package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// waitTimeout bounds every wait for a condition.
const waitTimeout = 60 * time.Second

// backend is a database the server can run on.
type backend struct {
	name  string
	dbURL func(t testing.TB) string // "" means SQLite in the data directory
}

var (
	sqliteBackend   = backend{"sqlite", func(testing.TB) string { return "" }}
	postgresBackend = backend{"postgres", dbtest.PostgresURL}
	backends        = []backend{sqliteBackend, postgresBackend}
)

// eachBackend runs fn as a parallel subtest per database.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Helper()
	requireSetup(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			fn(t, b)
		})
	}
}

// ServerConfig says how to start `gantry server`.
type ServerConfig struct {
	DataDir string   // "" makes a fresh one
	DBURL   string   // PostgreSQL URL; "" for SQLite
	Workers int      // built-in workers; 0 means 2
	Listen  string   // default 127.0.0.1:0
	Token   string   // admin token (GANTRY_ADMIN_TOKEN); "" makes one
	Env     []string // extra environment
	Args    []string // extra flags
	Dir     string   // the server's working directory ("" : the test's); a relative DataDir is in it
}

// Server is one `gantry server` process.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	Token   string // the admin API token
	DataDir string
	cfg     ServerConfig
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	api     *client.Client
}

var serverSeq atomic.Int64

// StartServer starts a server and waits until it answers /healthz. It is
// stopped when t ends; its output is shown if t failed.
func StartServer(t *testing.T, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Token == "" {
		cfg.Token = randomHex(t, 24)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	n := serverSeq.Add(1)
	logPath := filepath.Join(t.TempDir(), fmt.Sprintf("server-%d.log", n))
	tmp := filepath.Join(t.TempDir(), "tmp") // TMPDIR: the workers' workspaces
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"server", "--listen", cfg.Listen, "--data-dir", cfg.DataDir,
		"--builtin-workers", strconv.Itoa(cfg.Workers), "--shutdown-timeout", "10s"}
	if cfg.DBURL != "" {
		args = append(args, "--database-url", cfg.DBURL)
	}
	args = append(args, cfg.Args...)

	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gantryBin, args...)
	cmd.Dir = cfg.Dir
	cmd.Env = serverEnv(cfg, tmp)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithParent(cmd)
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		t.Fatalf("start gantry server: %v", err)
	}
	if cfg.Dir != "" && !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(cfg.Dir, cfg.DataDir)
	}
	s := &Server{Token: cfg.Token, DataDir: cfg.DataDir, cfg: cfg, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of server %d (gantry %s):\n%s", n, strings.Join(args, " "), s.logTail(16000))
		}
		s.Stop(t)
	})
	s.URL = s.waitURL(t)
	s.api = client.New(s.URL, s.Token)
	s.waitHealthy(t)
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, "url")); err != nil || strings.TrimRight(strings.TrimSpace(string(b)), "/") != s.URL {
		t.Errorf("<data-dir>/url = %q (%v), want the URL the server printed, %s", b, err, s.URL)
	}
	t.Logf("server %d listening on %s (data dir %s, database %s)", n, s.URL, cfg.DataDir, orSQLite(cfg.DBURL))
	return s
}

func orSQLite(dbURL string) string {
	if dbURL == "" {
		return "SQLite"
	}
	return dbURL
}

// serverEnv is this process's environment without Gantry's and the tool's
// variables, with OpenTofu first on PATH and the admin token chosen.
func serverEnv(cfg ServerConfig, tmp string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GANTRY_") || strings.HasPrefix(name, "TF_") ||
			name == "PATH" || name == "TMPDIR" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"PATH="+filepath.Dir(tofuBin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"TMPDIR="+tmp,
		"CHECKPOINT_DISABLE=1",
		"GANTRY_ADMIN_TOKEN="+cfg.Token,
	)
	return append(env, cfg.Env...)
}

var listeningRE = regexp.MustCompile(`Gantry listening on (https?://[^\s"]+)`)

// waitURL reads the URL the server prints once it listens.
func (s *Server) waitURL(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		out, _ := os.ReadFile(s.logPath)
		if m := listeningRE.FindSubmatch(out); m != nil {
			return strings.TrimRight(string(m[1]), "/")
		}
		select {
		case <-s.exited:
			t.Fatalf("gantry server exited before listening (%v):\n%s", s.cmd.ProcessState, s.logTail(16000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gantry server printed no \"Gantry listening on\" line within %s:\n%s", waitTimeout, s.logTail(16000))
		}
	}
}

func (s *Server) waitHealthy(t *testing.T) {
	t.Helper()
	var last string
	ok := poll(waitTimeout, 50*time.Millisecond, func() bool {
		select {
		case <-s.exited:
			t.Fatalf("gantry server exited (%v):\n%s", s.cmd.ProcessState, s.logTail(16000))
		default:
		}
		resp, err := http.Get(s.URL + "/healthz")
		if err != nil {
			last = err.Error()
			return false
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK
	})
	if !ok {
		t.Fatalf("GET %s/healthz did not answer 200 within %s (last: %s)", s.URL, waitTimeout, last)
	}
}

// Log returns everything the server wrote to stdout and stderr.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *Server) logTail(n int) string {
	out := s.Log()
	if len(out) > n {
		out = "...\n" + out[len(out)-n:]
	}
	return out
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string {
	u, _ := url.Parse(s.URL)
	return u.Host
}

// Stop ends the server with SIGTERM, then SIGKILL if it has not exited
// within 20 seconds. Stopping a stopped server does nothing.
func (s *Server) Stop(t *testing.T) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return
	case <-time.After(20 * time.Second):
	}
	t.Logf("gantry server %s did not exit within 20s of SIGTERM; killing it", s.URL)
	s.Kill(t)
}

// Kill ends the server with SIGKILL, as a crash would, and returns the
// processes it had started that were still running a moment after it died
// (which it then kills too, as the crash of its machine would).
func (s *Server) Kill(t *testing.T) []process {
	survivors := s.KillLeavingOrphans(t)
	for _, p := range survivors {
		killPID(p.pid)
	}
	return survivors
}

// KillLeavingOrphans kills the server with SIGKILL and returns the
// processes it had started that outlived it (left running).
func (s *Server) KillLeavingOrphans(t *testing.T) []process {
	select {
	case <-s.exited:
		return nil
	default:
	}
	before := descendants(s.cmd.Process.Pid)
	_ = s.cmd.Process.Kill()
	<-s.exited
	var survivors []process
	poll(time.Second, 50*time.Millisecond, func() bool {
		survivors = survivors[:0]
		for _, p := range before {
			if alive(p.pid) {
				survivors = append(survivors, p)
			}
		}
		return len(survivors) == 0
	})
	t.Cleanup(func() {
		for _, p := range survivors {
			killPID(p.pid)
		}
	})
	return survivors
}

// Restart starts a new server on the same address, data directory,
// database and token.
func (s *Server) Restart(t *testing.T) *Server {
	t.Helper()
	cfg := s.cfg
	cfg.Listen = s.Addr()
	return StartServer(t, cfg)
}

// Result is what one CLI command did.
type Result struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("gantry %s: exit code %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// Gantry runs the CLI against the server, with GANTRY_URL and GANTRY_TOKEN
// set, and returns what it did whatever its exit code.
func (s *Server) Gantry(t *testing.T, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GANTRY_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "HOME="+cliHome, "XDG_CONFIG_HOME="+filepath.Join(cliHome, ".config"),
		"GANTRY_URL="+s.URL, "GANTRY_TOKEN="+s.Token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.Code = exitErr.ExitCode()
	default:
		t.Fatalf("gantry %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("gantry %s did not end within %s\n%s", strings.Join(args, " "), 2*waitTimeout, r)
	}
	return r
}

// MustGantry runs the CLI and fails t unless it exits 0; it returns stdout.
func (s *Server) MustGantry(t *testing.T, args ...string) string {
	t.Helper()
	r := s.Gantry(t, args...)
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	return r.Stdout
}

// GantryJSON runs the CLI with -o json and decodes its standard output into
// out when there is one, whatever the exit code.
func (s *Server) GantryJSON(t *testing.T, out any, args ...string) Result {
	t.Helper()
	r := s.Gantry(t, withJSON(args)...)
	if strings.TrimSpace(r.Stdout) != "" {
		if err := json.Unmarshal([]byte(r.Stdout), out); err != nil {
			t.Fatalf("decoding the JSON output: %v\n%s", err, r)
		}
	}
	return r
}

// MustJSON is GantryJSON that fails t unless the CLI exits 0.
func (s *Server) MustJSON(t *testing.T, out any, args ...string) {
	t.Helper()
	r := s.GantryJSON(t, out, args...)
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
}

// withJSON adds -o json before a "--" (whatever follows it is a command).
func withJSON(args []string) []string {
	i := slices.Index(args, "--")
	if i < 0 {
		i = len(args)
	}
	out := slices.Clone(args[:i])
	out = append(out, "-o", "json")
	return append(out, args[i:]...)
}

// StateRequest sends a request to the stack's OpenTofu http state backend
// with basic auth (any user, the admin token as password).
func (s *Server) StateRequest(t *testing.T, method, stack, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.StateURL(stack), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("e2e", s.Token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// StateURL is the address of the stack's http state backend.
func (s *Server) StateURL(stack string) string {
	return s.URL + "/api/v1/stacks/" + stack + "/tfstate"
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// poll calls cond every interval until it returns true (then poll returns
// true) or timeout passes (false).
func poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
