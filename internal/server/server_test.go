package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/server"
	"net"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a server started in-process.
type running struct {
	dir    string
	url    string
	out    *lockedBuffer
	logs   *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

func config(dir string) server.Config {
	return server.Config{Listen: "127.0.0.1:0", DataDir: dir, BuiltinWorkers: 0, WorkerTimeout: time.Second, ShutdownTimeout: time.Second}
}

// start runs the server with cfg and waits for its URL file. A start that
// fails returns the error instead.
func start(t *testing.T, cfg server.Config) (*running, error) {
	t.Helper()
	// A URL file of an earlier run must not be taken for this one.
	os.Remove(filepath.Join(cfg.DataDir, "url"))
	ctx, cancel := context.WithCancel(context.Background())
	s := &running{dir: cfg.DataDir, out: &lockedBuffer{}, logs: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { s.done <- server.Run(ctx, cfg, s.out, log) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-s.done:
			cancel()
			if err == nil {
				err = errors.New("server.Run returned nil before serving")
			}
			return nil, err
		default:
		}
		if raw, err := os.ReadFile(filepath.Join(cfg.DataDir, "url")); err == nil && bytes.HasSuffix(raw, []byte("\n")) {
			s.url = strings.TrimSpace(string(raw))
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no url file after 20s; logs:\n%s", s.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { s.stop(t) })
	return s, nil
}

// stop cancels the server and waits for Run to return.
func (s *running) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("server.Run did not return after cancel; logs:\n%s", s.logs.String())
	}
	return nil
}

func (s *running) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerStartServeStop(t *testing.T) {
	dir := t.TempDir()
	s, err := start(t, config(dir))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") {
		t.Fatalf("url = %q", s.url)
	}

	tests := []struct {
		path, token string
		status      int
		contains    string
	}{
		{"/healthz", "", 200, "ok"},
		{"/readyz", "", 200, "ready"},
		{"/api/v1/stacks", "", 401, `"unauthenticated"`},
		{"/api/v1/openapi.json", "", 200, `"openapi"`},
		{"/metrics", "", 200, "gantry_http_requests_total"},
	}
	for _, tt := range tests {
		status, body := s.get(t, tt.path, tt.token)
		if status != tt.status || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s = %d %.200q, want %d containing %q", tt.path, status, body, tt.status, tt.contains)
		}
	}
	if _, body := s.get(t, "/metrics", ""); !strings.Contains(body, `gantry_http_requests_total{code="401",method="GET"}`) {
		t.Errorf("metrics do not count the 401:\n%s", body)
	}

	p := filepath.Join(dir, "admin-token")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("admin-token file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin-token mode = %v, want 0600", perm)
	}
	raw, _ := os.ReadFile(p)
	token := strings.TrimSpace(string(raw))
	if status, body := s.get(t, "/api/v1/stacks", token); status != 200 || !strings.Contains(body, `"items"`) {
		t.Errorf("GET /api/v1/stacks with the admin token = %d %s", status, body)
	}
	if !strings.Contains(s.out.String(), token) {
		t.Errorf("the first token was not shown on the output: %q", s.out.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "encryption.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("encryption.key: %v %v, want a 0600 file", fi, err)
	}

	if err := s.stop(t); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Error("the server still answers after Run returned")
	}

	t.Run("restart keeps the token and does not make another", func(t *testing.T) {
		s2, err := start(t, config(dir))
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
		if status, _ := s2.get(t, "/api/v1/stacks", token); status != 200 {
			t.Errorf("the first token after restart = %d", status)
		}
		if strings.Contains(s2.out.String(), "Created the first admin API token") {
			t.Errorf("a second admin token was made: %q", s2.out.String())
		}
	})

	t.Run("another encryption key is refused", func(t *testing.T) {
		cfg := config(dir)
		cfg.EncryptionKey = strings.Repeat("ab", 32)
		s3, err := start(t, cfg)
		if err == nil {
			s3.stop(t)
			t.Fatal("the server started with another encryption key")
		}
		if !strings.Contains(err.Error(), "encryption key") {
			t.Errorf("error = %q, want it to mention the encryption key", err)
		}
	})

	t.Run("the stored key given explicitly is accepted", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(dir, "encryption.key"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := config(dir)
		cfg.EncryptionKey = strings.TrimSpace(string(raw))
		if _, err := start(t, cfg); err != nil {
			t.Errorf("start with the right key: %v", err)
		}
	})

	t.Run("a bad encryption key is refused", func(t *testing.T) {
		cfg := config(dir)
		cfg.EncryptionKey = "not-a-key"
		if _, err := start(t, cfg); err == nil || !strings.Contains(err.Error(), "encryption key") {
			t.Errorf("start with a malformed key = %v, want an encryption key error", err)
		}
	})
}

func TestServerPresetAdminToken(t *testing.T) {
	dir := t.TempDir()
	cfg := config(dir)
	cfg.AdminToken = "gnt_preset-admin-token-for-tests"
	s, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := s.get(t, "/api/v1/stacks", cfg.AdminToken); status != 200 {
		t.Errorf("preset token = %d %s", status, body)
	}
	if strings.Contains(s.out.String(), cfg.AdminToken) {
		t.Errorf("the preset token was printed: %q", s.out.String())
	}
	if status, _ := s.get(t, "/api/v1/stacks", "gnt_some-other-token-000000"); status != 401 {
		t.Errorf("another token = %d, want 401", status)
	}
	s.stop(t)

	// A new preset token on a store that has keys is added.
	cfg.AdminToken = "gnt_second-preset-token-for-tests"
	s2, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"gnt_preset-admin-token-for-tests", cfg.AdminToken} {
		if status, _ := s2.get(t, "/api/v1/stacks", tok); status != 200 {
			t.Errorf("token %s after restart = %d, want 200", tok, status)
		}
	}
}

// A configuration wrong in its form alone is refused before anything is
// written: no data directory, database, encryption key or data key.
func TestServerRefusesBadConfigBeforeWriting(t *testing.T) {
	tests := []struct {
		name string
		set  func(*server.Config)
		want string
	}{
		{"short admin token", func(c *server.Config) { c.AdminToken = "short" }, "--admin-token (GANTRY_ADMIN_TOKEN): an API token must be at least 16 characters"},
		{"malformed encryption key", func(c *server.Config) { c.EncryptionKey = "abc" }, "encryption key from --encryption-key / GANTRY_ENCRYPTION_KEY: encryption key must be 32 bytes"},
		{"empty encryption key file", func(c *server.Config) { c.EncryptionKeyFile = "/etc/gantry/key" }, "/etc/gantry/key (GANTRY_ENCRYPTION_KEY_FILE) is empty"},
		{"database URL scheme", func(c *server.Config) { c.DatabaseURL = "mysql://u:secret@h/db" }, `--database-url: db: unsupported database URL scheme "mysql"`},
		{"token signing algorithm", func(c *server.Config) { c.TokenAlg = "HS256" }, `--token-signing-alg: token signing algorithm "HS256"`},
		{"token issuer", func(c *server.Config) { c.TokenIssuer = "gantry.example.com" }, "--token-issuer: the token issuer"},
		{"public URL", func(c *server.Config) { c.PublicURL = "https://gantry.example.com/?x=1" }, "--public-url (the default token issuer)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config(filepath.Join(t.TempDir(), "d1"))
			tt.set(&cfg)
			if _, err := start(t, cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("start = %v, want an error with %q", err, tt.want)
			}
			if _, err := os.Stat(cfg.DataDir); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(cfg.DataDir)
				t.Errorf("the refused start left the data directory (%v): %v", err, entries)
			}
		})
	}
}

func TestServerRequiresDataDir(t *testing.T) {
	cfg := config("")
	err := server.Run(context.Background(), cfg, io.Discard, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "data-dir") {
		t.Errorf("Run without a data dir = %v, want an error naming --data-dir", err)
	}
}

func TestServerListenError(t *testing.T) {
	s, err := start(t, config(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t.TempDir())
	cfg.Listen = strings.TrimPrefix(s.url, "http://") // taken
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	err = server.Run(ctx, cfg, &out, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "listening on") || !strings.Contains(err.Error(), "--listen or GANTRY_LISTEN") {
		t.Errorf("Run on a taken address = %v, want a listen error naming --listen and GANTRY_LISTEN", err)
	}
	// Nothing was created: the first admin token is shown by the start
	// that serves, not lost with one that could not.
	if strings.Contains(out.String(), "admin API token") {
		t.Errorf("a start that could not listen printed:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "admin-token")); !os.IsNotExist(err) {
		t.Errorf("admin-token after a start that could not listen: %v", err)
	}
	cfg.Listen = "127.0.0.1:0"
	s2, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s2.out.String(), "Created the first admin API token") {
		t.Errorf("the next start did not show the first admin token:\n%s", s2.out.String())
	}
}

// waitFor polls cond until it holds or the deadline passes.
// A second server on a data directory in use stops before it opens the
// database: it would take the first one's runs in progress for ones a
// crash left behind, and break its workers' registrations. Once the first
// has stopped, the directory is free.
func TestServerDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	first, err := start(t, config(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	logs := &lockedBuffer{}
	err = server.Run(ctx, config(dir), &out, slog.New(slog.NewTextHandler(logs, nil)))
	if err == nil || !strings.Contains(err.Error(), "in use by another gantry server") {
		t.Fatalf("a second server on the same data directory: %v, want it refused", err)
	}
	if strings.Contains(logs.String(), "database") || out.Len() > 0 {
		t.Errorf("the refused server went on:\nout: %s\nlogs: %s", out.String(), logs.String())
	}
	if status, _ := first.get(t, "/healthz", ""); status != 200 {
		t.Errorf("the first server answers /healthz %d", status)
	}
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	if _, err := start(t, config(dir)); err != nil {
		t.Fatalf("a server on the directory after the first stopped: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerBuiltinWorkersDrain(t *testing.T) {
	cfg := config(t.TempDir())
	cfg.BuiltinWorkers = 2
	s, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if status, _ := s.get(t, "/readyz", ""); status != 200 {
		t.Errorf("/readyz = %d", status)
	}
	waitFor(t, "the workspaces directory", func() bool {
		fi, err := os.Stat(filepath.Join(cfg.DataDir, "workspaces"))
		return err == nil && fi.IsDir()
	})
	time.Sleep(300 * time.Millisecond) // the workers are in their claim long poll
	began := time.Now()
	if err := s.stop(t); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	// Idle workers stop at once; http.Server.Shutdown may then wait up to
	// 5 s for a keep-alive connection the workers opened but never used.
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("draining idle workers took %v", d)
	}
	if l := s.logs.String(); strings.Contains(l, "built-in worker stopped") {
		t.Errorf("a worker stopped with an error:\n%s", l)
	}
	// They said goodbye before the server stopped serving: none is left
	// to count as connected until the worker timeout, then as GONE.
	ctx := context.Background()
	d, err := db.Open(ctx, "", cfg.DataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM workers`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d workers left registered after the server stopped (%v), want 0; logs:\n%s", n, err, s.logs.String())
	}
}

func TestServerDemo(t *testing.T) {
	dir := t.TempDir()
	cfg := config(dir)
	cfg.Demo = true
	s, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the demo run to be queued", func() bool { return strings.Contains(s.out.String(), "tracked run") })
	raw, _ := os.ReadFile(filepath.Join(dir, "admin-token"))
	token := strings.TrimSpace(string(raw))
	if status, body := s.get(t, "/api/v1/stacks/demo", token); status != 200 || !strings.Contains(body, `"space": "demo"`) {
		t.Errorf("GET demo stack = %d %s", status, body)
	}
	if status, body := s.get(t, "/api/v1/runs?stack=demo", token); status != 200 || strings.Count(body, `"id": "run-`) != 1 {
		t.Errorf("demo runs = %d %s", status, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo-repo", ".git")); err != nil {
		t.Errorf("demo repository: %v", err)
	}
	if status, body := s.get(t, "/api/v1/stacks/demo/drift-detection", token); status != 200 || !strings.Contains(body, `"*/5 * * * *"`) {
		t.Errorf("demo drift detection = %d %s", status, body)
	}
	s.stop(t)

	s2, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A second start says where everything is again, not only that the
	// stack exists.
	waitFor(t, "the demo to notice its stack", func() bool { return strings.Contains(s2.out.String(), "gantry drift list") })
	abs, _ := filepath.Abs(dir)
	for _, want := range []string{"exists already", "export PATH=", "export GANTRY_URL=" + s2.url,
		"GANTRY_TOKEN=$(cat " + filepath.Join(abs, "admin-token") + ")", "gantry run list --stack demo"} {
		if !strings.Contains(s2.out.String(), want) {
			t.Errorf("second demo start: no %q in\n%s", want, s2.out.String())
		}
	}
}

// The profiler is served only on --debug-listen, never on the API's port.
func TestServerDebugListen(t *testing.T) {
	var s *running
	var addr string
	// A free port, picked then given to the server: another test may take
	// it in between (address already in use); pick again then.
	for attempt := 1; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
		cfg := config(t.TempDir())
		cfg.DebugListen = addr
		s, err = start(t, cfg)
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
	defer s.stop(t)
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("profiler index = %d", resp.StatusCode)
	}
	if status, _ := s.get(t, "/debug/pprof/", ""); status == 200 {
		t.Error("the profiler is served on the API's port")
	}
}

// A draining server keeps serving while a private worker holds a run in a
// job: the worker needs the API, the state backend and the log endpoints
// to end it (and to save the state of an apply).
func TestServerDrainWaitsForPrivateWorkersJobs(t *testing.T) {
	cfg := config(t.TempDir())
	cfg.ShutdownTimeout = 10 * time.Second
	cfg.WorkerTimeout = time.Minute // the test plays the worker: no heartbeats
	s, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := db.Open(ctx, "", cfg.DataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	exec := func(q string) {
		t.Helper()
		if _, err := d.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`PRAGMA foreign_keys = OFF`)
	exec(`INSERT INTO runs (id, stack_id, space_id, type, state, blocking, created_at, updated_at, worker_id)
		VALUES ('run-held', 'stk', 'root', 'TRACKED', 'APPLYING', TRUE, 1, 1, 'wrk-private')`)
	stopped := make(chan error, 1)
	began := time.Now()
	go func() { stopped <- s.stop(t) }()
	time.Sleep(1500 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatalf("the server stopped after %v while a worker held a run in APPLYING; logs:\n%s", time.Since(began), s.logs.String())
	default:
	}
	if status, _ := s.get(t, "/healthz", ""); status != 200 {
		t.Errorf("/healthz while draining = %d, want 200", status)
	}
	exec(`UPDATE runs SET state = 'FINISHED', worker_id = '' WHERE id = 'run-held'`)
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("the server did not stop once the run ended; logs:\n%s", s.logs.String())
	}
	if l := s.logs.String(); !strings.Contains(l, "waiting for jobs of workers") {
		t.Errorf("logs do not say the server waits for workers' jobs:\n%s", l)
	}
}

// Built-in workers are named builtin-1, builtin-2... on every replica: their
// labels say which server runs them (its instance-id) and on which host,
// so that replicas sharing a database can be told apart in the listing.
func TestServerBuiltinWorkersNameTheirServer(t *testing.T) {
	cfg := config(t.TempDir())
	cfg.BuiltinWorkers = 2
	cfg.AdminToken = "gnt_builtin-labels-admin-token"
	s, err := start(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop(t)
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, "instance-id"))
	if err != nil {
		t.Fatal(err)
	}
	instance := strings.TrimSpace(string(raw))
	host, _ := os.Hostname()
	var list struct {
		Items []struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"items"`
	}
	waitFor(t, "two built-in workers registered", func() bool {
		status, body := s.get(t, "/api/v1/worker-pools/builtin/workers", cfg.AdminToken)
		if status != 200 {
			t.Fatalf("list workers: %d %s", status, body)
		}
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Items) == 2
	})
	for _, w := range list.Items {
		if w.Labels["server"] != instance || w.Labels["host"] != host {
			t.Errorf("worker %s has labels %v, want server=%s host=%s", w.Name, w.Labels, instance, host)
		}
	}
}

// The start line says which release runs and on which schema version: what
// an operator checks on each replica during an upgrade.
func TestServerLogsVersionAtStart(t *testing.T) {
	s, err := start(t, config(t.TempDir()))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	want := regexp.MustCompile(`msg="server started" version=\S+ .*schema_version=[1-9][0-9]* `)
	for deadline := time.Now().Add(10 * time.Second); !want.MatchString(s.logs.String()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no start line with the version and the schema version:\n%s", s.logs.String())
		}
	}
}
