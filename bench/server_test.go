package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/client"
)

// serverConfig says how to start `gantry server`.
type serverConfig struct {
	bin     string // the gantry binary
	dataDir string // "" makes a fresh one
	dbURL   string // "" for SQLite
	workers int    // --builtin-workers
	path    string // directory put first on PATH (where tofu, or its shim, is)
	token   string // "" makes one
}

// server is one running `gantry server` process.
type server struct {
	cfg     serverConfig
	url     string
	token   string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	api     *client.Client
	http    *http.Client
}

// startServer starts a server, waits until it is ready and stops it when
// tb ends.
func startServer(tb testing.TB, cfg serverConfig) *server {
	tb.Helper()
	if cfg.dataDir == "" {
		cfg.dataDir = filepath.Join(tb.TempDir(), "data")
	}
	if cfg.token == "" {
		cfg.token = randomHex(16)
	}
	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	urlFile := filepath.Join(cfg.dataDir, "url")
	_ = os.Remove(urlFile) // left by a previous start of the same data directory
	tmp := filepath.Join(cfg.dataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		tb.Fatal(err)
	}
	args := []string{"server", "--listen", "127.0.0.1:0", "--data-dir", cfg.dataDir,
		"--builtin-workers", strconv.Itoa(cfg.workers)}
	if cfg.dbURL != "" {
		args = append(args, "--database-url", cfg.dbURL)
	}
	// Extra flags, for example --debug-listen to profile the server.
	args = append(args, strings.Fields(os.Getenv("GANTRY_BENCH_SERVER_ARGS"))...)
	logPath := filepath.Join(cfg.dataDir, fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(cfg.bin, args...)
	cmd.Env = serverEnv(cfg, tmp)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGKILL the server if this test process dies, so none is left behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		tb.Fatalf("start gantry server: %v", err)
	}
	s := &server{cfg: cfg, token: cfg.token, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	tb.Cleanup(func() {
		s.stop(tb)
		s.reportProblems(tb)
	})

	deadline := time.Now().Add(time.Minute)
	for s.url == "" {
		if raw, err := os.ReadFile(urlFile); err == nil && strings.HasSuffix(string(raw), "\n") {
			s.url = strings.TrimSpace(string(raw))
			break
		}
		select {
		case <-s.exited:
			tb.Fatalf("gantry server exited at start (%v):\n%s", cmd.ProcessState, s.logTail())
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gantry server wrote no %s within a minute:\n%s", urlFile, s.logTail())
		}
	}
	s.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	s.api = client.New(s.url, s.token, client.WithHTTPClient(s.http))
	for {
		resp, err := s.http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gantry server not ready within a minute (%v):\n%s", err, s.logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

// serverEnv is this process's environment without Gantry's and OpenTofu's
// variables, with cfg.path first on PATH and the admin token set.
func serverEnv(cfg serverConfig, tmp string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GANTRY_") || strings.HasPrefix(name, "TF_") || name == "PATH" || name == "TMPDIR" {
			continue
		}
		env = append(env, kv)
	}
	pathVar := os.Getenv("PATH")
	if cfg.path != "" {
		pathVar = cfg.path + string(os.PathListSeparator) + pathVar
	}
	return append(env,
		"PATH="+pathVar,
		"TMPDIR="+tmp,
		"CHECKPOINT_DISABLE=1",
		"GANTRY_ADMIN_TOKEN="+cfg.token,
	)
}

// stop ends the server with SIGTERM (it drains), then SIGKILL after 30s.
func (s *server) stop(tb testing.TB) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		tb.Logf("gantry server did not stop within 30s of SIGTERM; killing it")
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	if s.http != nil {
		s.http.CloseIdleConnections()
	}
}

// reportProblems prints the warnings and errors the server logged, but
// the one every fresh data directory gets (a new encryption key).
func (s *server) reportProblems(tb testing.TB) {
	tb.Helper()
	var problems []string
	for _, line := range strings.Split(s.log(), "\n") {
		if (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) &&
			!strings.Contains(line, "generated a new encryption key") {
			problems = append(problems, line)
		}
	}
	if len(problems) == 0 {
		return
	}
	note(tb, "the server (%s) logged %d warnings or errors; the first:", s.cfg.dataDir, len(problems))
	for _, p := range problems[:min(len(problems), 5)] {
		note(tb, "  %s", p)
	}
}

func (s *server) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *server) logTail() string {
	out := s.log()
	if len(out) > 8000 {
		out = "...\n" + out[len(out)-8000:]
	}
	return out
}

// memory returns the server's resident set size and its peak (VmRSS and
// VmHWM of /proc/<pid>/status), in bytes.
func (s *server) memory(tb testing.TB) (rss, hwm int64) {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		tb.Fatalf("read the server's memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(value) // "12345 kB"
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || len(fields) != 2 || fields[1] != "kB" {
			tb.Fatalf("unexpected %s line in /proc status: %q", name, sc.Text())
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if rss == 0 {
		tb.Fatalf("no VmRSS in /proc/%d/status", s.cmd.Process.Pid)
	}
	return rss, hwm
}

// cpu returns the CPU time (user + system) the server process used itself
// and the CPU time of its children that ended (git, tofu).
func (s *server) cpu(tb testing.TB) (self, children time.Duration) {
	tb.Helper()
	st, err := readStat(s.cmd.Process.Pid)
	if err != nil {
		tb.Fatalf("read the server's CPU time: %v", err)
	}
	return st.self, st.children
}

// procStat is what a benchmark reads of /proc/<pid>/stat.
type procStat struct {
	ppid           int
	comm           string
	self, children time.Duration // CPU time, user + system
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// pid (comm) state ppid ... utime stime cutime cstime (fields 14 to 17).
	line := string(raw)
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("unexpected /proc stat line: %q", line)
	}
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("unexpected /proc stat line: %q", line)
	}
	var n [5]int64
	for k, i := range []int{1, 11, 12, 13, 14} {
		if n[k], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("unexpected /proc stat line: %q", line)
		}
	}
	const tick = 10 * time.Millisecond // Linux reports clock ticks of USER_HZ = 100
	return procStat{ppid: int(n[0]), comm: line[open+1 : end],
		self: time.Duration(n[1]+n[2]) * tick, children: time.Duration(n[3]+n[4]) * tick}, nil
}

// postgresCPU returns the CPU time used so far by the PostgreSQL server
// listening on the port of dbURL: its postmaster (with the backends that
// ended) and the backends alive. It returns -1 for SQLite (dbURL "") or
// when no such server runs on this machine.
func postgresCPU(dbURL string) time.Duration {
	u, err := url.Parse(dbURL)
	if dbURL == "" || err != nil || u.Port() == "" {
		return -1
	}
	entries, _ := os.ReadDir("/proc")
	stats := map[int]procStat{}
	postmaster := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.comm != "postgres" {
			continue
		}
		stats[pid] = st
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(cmdline), "\x00")
		for i := range args {
			if (args[i] == "-p" && i+1 < len(args) && args[i+1] == u.Port()) || args[i] == "-p"+u.Port() || args[i] == "-p "+u.Port() {
				postmaster = pid
			}
		}
	}
	if postmaster == 0 {
		return -1
	}
	total := stats[postmaster].self + stats[postmaster].children
	for _, st := range stats {
		if st.ppid == postmaster {
			total += st.self
		}
	}
	return total
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ctx returns a context for one API call.
func callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}
