package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// WorkerProc is one `gantry worker` process.
type WorkerProc struct {
	Name    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// StartWorker runs `gantry worker` for a pool token against s.
func (s *Server) StartWorker(t *testing.T, name, token string, extra ...string) *WorkerProc {
	t.Helper()
	return s.StartWorkerEnv(t, name, token, nil, extra...)
}

// StartWorkerEnv is StartWorker with more variables in the worker's
// environment.
func (s *Server) StartWorkerEnv(t *testing.T, name, token string, env []string, extra ...string) *WorkerProc {
	t.Helper()
	dir := t.TempDir()
	w := &WorkerProc{Name: name, exited: make(chan struct{}), logPath: filepath.Join(dir, "worker.log")}
	logFile, err := os.Create(w.logPath)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"worker", "--server", s.URL, "--name", name, "--work-dir", filepath.Join(dir, "work"),
		"--heartbeat", "500ms", "--claim-wait", "2s"}, extra...)
	w.cmd = exec.Command(gantryBin, args...)
	w.cmd.Dir = dir // where relative --work-dir and --tools-dir in extra are
	w.cmd.Env = append(append(serverEnv(ServerConfig{}, tmp), env...), "GANTRY_TOKEN="+token)
	w.cmd.Stdout, w.cmd.Stderr = logFile, logFile
	dieWithParent(w.cmd)
	err = w.cmd.Start()
	logFile.Close()
	if err != nil {
		t.Fatalf("start gantry worker: %v", err)
	}
	go func() { _ = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(w.logPath)
			t.Logf("output of worker %s:\n%s", name, tail(string(b), 8000))
		}
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		<-w.exited
	})
	return w
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Log returns what the worker printed so far.
func (w *WorkerProc) Log() string {
	b, _ := os.ReadFile(w.logPath)
	return string(b)
}

type poolCreated struct {
	apiv1.WorkerPool
	Token string `json:"token"`
}

func (s *Server) workers(t *testing.T, pool string) []apiv1.Worker {
	t.Helper()
	var ws []apiv1.Worker
	s.MustJSON(t, &ws, "workerpool", "workers", "--id", pool)
	return ws
}

// workerID waits until the named worker registered in pool and returns its id.
func (s *Server) workerID(t *testing.T, pool, name string) string {
	t.Helper()
	var id string
	waitFor(t, "worker "+name+" to register in pool "+pool, func() bool {
		for _, w := range s.workers(t, pool) {
			if w.Name == name && w.Status != "GONE" {
				id = w.ID
				return true
			}
		}
		return false
	})
	return id
}

// claimedBy is the worker that claimed a run (from its timeline).
func claimedBy(r apiv1.Run) string {
	for _, tr := range r.Transitions {
		if tr.To == "PREPARING" {
			return strings.TrimPrefix(tr.Actor, "worker:")
		}
	}
	return ""
}

// sleepyConfig sleeps in its provisioner for the seconds in var.sleep.
func sleepyConfig(sleep int) string {
	return fmt.Sprintf(`
variable "sleep" {
  type    = number
  default = %d
}

resource "terraform_data" "slow" {
  input = var.sleep

  provisioner "local-exec" {
    command = "echo applying; sleep ${var.sleep}"
  }
}
`, sleep)
}

// Private workers in two pools: stacks run only on their pool; a worker
// killed mid-apply fails its run within the timeout, the lock is released
// and the next run succeeds on the pool's other worker; a drained worker
// takes no new job; a reset token locks the old worker out.
func TestPrivateWorkerPools(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Args: []string{"--builtin-workers", "0", "--worker-timeout", "3s"}})
	var alpha, beta poolCreated
	s.MustJSON(t, &alpha, "workerpool", "create", "--id", "alpha", "--space", "root")
	s.MustJSON(t, &beta, "workerpool", "create", "--id", "beta", "--space", "root", "--label", "cloud:aws")
	if !strings.HasPrefix(alpha.Token, "gpt_alpha_") || beta.Token == "" {
		t.Fatalf("pool tokens: %q %q", alpha.Token, beta.Token)
	}
	a1 := s.StartWorker(t, "a1", alpha.Token, "--label", "region=eu")
	a2 := s.StartWorker(t, "a2", alpha.Token)
	b1 := s.StartWorker(t, "b1", beta.Token)
	ids := map[string]string{"a1": s.workerID(t, "alpha", "a1"), "a2": s.workerID(t, "alpha", "a2"), "b1": s.workerID(t, "beta", "b1")}
	procs := map[string]*WorkerProc{"a1": a1, "a2": a2, "b1": b1}
	alphaIDs := []string{ids["a1"], ids["a2"]}

	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	slow := NewRepo(t, map[string]string{"main.tf": sleepyConfig(30)})
	s.CreateStack(t, "on-alpha", repo.URL, "--worker-pool", "alpha", "--autodeploy")
	s.CreateStack(t, "on-beta", repo.URL, "--worker-pool", "beta", "--autodeploy")
	s.CreateStack(t, "slow", slow.URL, "--worker-pool", "alpha", "--autodeploy")

	ra := s.WaitRun(t, s.Deploy(t, "on-alpha").ID, "FINISHED")
	rb := s.WaitRun(t, s.Deploy(t, "on-beta").ID, "FINISHED")
	if !slices.Contains(alphaIDs, claimedBy(ra)) || claimedBy(rb) != ids["b1"] {
		t.Fatalf("runs ran on the wrong pool: on-alpha by %s, on-beta by %s (ids %v)", claimedBy(ra), claimedBy(rb), ids)
	}

	// Kill -9 the worker applying the slow run.
	r := s.Deploy(t, "slow")
	s.WaitLog(t, "slow", r.ID, "applying")
	victim := ""
	for name, id := range ids {
		if id == claimedBy(s.GetRun(t, r.ID)) {
			victim = name
		}
	}
	if victim == "" || victim == "b1" {
		t.Fatalf("the slow run was claimed by %q", claimedBy(s.GetRun(t, r.ID)))
	}
	if err := procs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	failed := s.WaitRun(t, r.ID, "FAILED")
	if !strings.Contains(failed.Reason, "lost") || time.Since(killedAt) > 20*time.Second {
		t.Fatalf("run after its worker was killed: %s (after %s)", s.Describe(t, failed), time.Since(killedAt))
	}
	slow.Commit(t, "no more sleep", map[string]string{"main.tf": sleepyConfig(0)})
	next := s.WaitRun(t, s.Deploy(t, "slow").ID, "FINISHED")
	other := "a1"
	if victim == "a1" {
		other = "a2"
	}
	if claimedBy(next) != ids[other] {
		t.Fatalf("the next run ran on %s, want %s", claimedBy(next), ids[other])
	}

	// Drain the remaining alpha worker: a new run waits.
	s.MustGantry(t, "worker", "drain", "--pool", "alpha", "--id", ids[other])
	var drained bool
	for _, w := range s.workers(t, "alpha") {
		drained = drained || (w.ID == ids[other] && w.Status == "DRAINED")
		if !slices.Contains(w.Features, "targets") {
			t.Errorf("worker %s does not list the targets feature: %v", w.ID, w.Features)
		}
	}
	if !drained {
		t.Fatalf("workers after drain: %+v", s.workers(t, "alpha"))
	}
	waiting := s.Deploy(t, "on-alpha")
	time.Sleep(3 * time.Second) // long enough for a claim
	if got := s.GetRun(t, waiting.ID); got.State != "READY" || got.WaitingFor != "no worker in pool alpha" {
		t.Fatalf("a run of a pool whose only worker is drained is %s (waiting for %q)", got.State, got.WaitingFor)
	}
	if out := s.MustGantry(t, "run", "show", "--id", waiting.ID); !strings.Contains(out, "no worker in pool alpha") {
		t.Fatalf("run show does not say why the run waits:\n%s", out)
	}

	// Reset beta's token: b1 is locked out and exits.
	var reset poolCreated
	s.MustJSON(t, &reset, "workerpool", "reset", "--id", "beta")
	if reset.Token == "" || reset.Token == beta.Token {
		t.Fatalf("reset token %q", reset.Token)
	}
	select {
	case <-b1.exited:
	case <-time.After(waitTimeout):
		t.Fatal("the worker with the old token kept running after the reset")
	}
	if !strings.Contains(b1.Log(), "reset") {
		t.Fatalf("worker b1 did not say why it stopped:\n%s", tail(b1.Log(), 2000))
	}
	// New workers with the current tokens pick up the waiting runs.
	s.StartWorker(t, "a3", alpha.Token)
	s.WaitRun(t, waiting.ID, "FINISHED")
	s.StartWorker(t, "b2", reset.Token)
	s.WaitRun(t, s.Deploy(t, "on-beta").ID, "FINISHED")
}

// A pool with a key pair: secret values reach its worker sealed and open
// only with the private key; the workspace handed from plan to apply is
// sealed too; a worker without the key fails the job with a clear reason.
// The worker takes the key from GANTRY_PRIVATE_KEY: the run's code finds
// it, and the pool token, neither in its environment nor on a command line.
func TestSealedWorkerPool(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	const secret = "sealed-s3cr3t-e2e"
	sum := sha256.Sum256([]byte(secret))
	s := StartServer(t, ServerConfig{Args: []string{"--builtin-workers", "0", "--worker-timeout", "3s"}})
	var pool poolCreated
	s.MustJSON(t, &pool, "workerpool", "create", "--id", "vault", "--space", "root")
	keyFile := filepath.Join(t.TempDir(), "vault.key")
	out := s.MustGantry(t, "workerpool", "keygen", "--id", "vault", "--out", keyFile)
	if !strings.Contains(out, "GANTRY_PRIVATE_KEY") {
		t.Fatalf("keygen said:\n%s", out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi, err)
	}
	if res := s.Gantry(t, "workerpool", "keygen", "--id", "vault", "--out", keyFile, "--replace"); res.Code == 0 {
		t.Fatal("keygen overwrote an existing private key")
	}
	if res := s.Gantry(t, "workerpool", "keygen", "--id", "vault", "--out", keyFile+".new"); res.Code == 0 || !strings.Contains(res.Stderr, "--replace") {
		t.Fatalf("keygen replaced a pool's key without --replace: %s", res)
	}
	repo := NewRepo(t, map[string]string{"main.tf": `
resource "terraform_data" "echo" {
  provisioner "local-exec" {
    command = "echo \"secret is $SECRET_X\"; echo \"sum=$(printf %s \"$SECRET_X\" | sha256sum | cut -c1-64)\""
  }
}
`})
	// The run's code finds the worker's secrets neither in its environment
	// nor on a command line (the key's content or file). (x[y] matches xy,
	// not the hook's own command line.)
	noSecrets := `! env | grep -e 'GANTRY_TOKE[N]' -e 'GANTRY_PRIVATE_KE[Y]' -e 'gantry-pool-privat[e]' -e 'gpt[_]' && ` +
		`! cat /proc/[0-9]*/cmdline | tr '\0' '\n' | grep -e 'gantry-pool-privat[e]' -e '--private-ke[y]' -e 'gpt_vaul[t]' && echo no-worker-secrets-in-reach`
	s.CreateStack(t, "sealed", repo.URL, "--worker-pool", "vault", "--before-plan", noSecrets)
	s.MustGantry(t, "stack", "env", "set", "--id", "sealed", "SECRET_X", secret, "--secret")

	// A worker without the private key refuses to work for the pool
	// rather than take its jobs and fail them.
	nokey := s.StartWorker(t, "nokey", pool.Token)
	select {
	case <-nokey.exited:
	case <-time.After(waitTimeout):
		t.Fatal("a worker without the pool's key kept running")
	}
	if !strings.Contains(nokey.Log(), "--private-key-file") {
		t.Fatalf("the worker did not say why it stopped:\n%s", tail(nokey.Log(), 2000))
	}
	r := s.Deploy(t, "sealed")

	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	withKey := s.StartWorkerEnv(t, "withkey", pool.Token, []string{"GANTRY_PRIVATE_KEY=" + strings.TrimSpace(string(key))})
	r = s.WaitRun(t, r.ID, "UNCONFIRMED")
	s.WaitLog(t, "sealed", r.ID, "no-worker-secrets-in-reach")
	s.MustGantry(t, "stack", "confirm", "--id", "sealed", "--run", r.ID)
	r = s.WaitRun(t, r.ID, "FINISHED")
	logs := s.WaitLog(t, "sealed", r.ID, "sum="+hex.EncodeToString(sum[:]))
	if strings.Contains(logs, secret) {
		t.Fatal("the secret is in the log")
	}
	// A new key pair for the pool: the running worker holds the old one,
	// gets no more jobs and stops, saying why.
	s.MustGantry(t, "workerpool", "keygen", "--id", "vault", "--out", keyFile+".new", "--replace")
	select {
	case <-withKey.exited:
	case <-time.After(waitTimeout):
		t.Fatal("a worker with the replaced key kept running")
	}
	if !strings.Contains(withKey.Log(), "key pair") {
		t.Fatalf("the worker did not say why it stopped:\n%s", tail(withKey.Log(), 2000))
	}
}

// A private worker behind a proxy that replaces the answer to each run's
// first `planned` report with a 502 (a load balancer timing out), though
// the server made the report: on an autodeploy stack the run went on to
// APPLYING. The worker retries, gets the same answer (apply, with the
// apply's token) and the run finishes, its state written once.
func TestPlannedAnswerLostBehindProxy(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Args: []string{"--builtin-workers", "0"}})
	var pool poolCreated
	s.MustJSON(t, &pool, "workerpool", "create", "--id", "prox", "--space", "root")

	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var dropped atomic.Int32
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		path := resp.Request.URL.Path
		if resp.Request.Method != http.MethodPost || !strings.HasSuffix(path, "/planned") {
			return nil
		}
		mu.Lock()
		first := !seen[path]
		seen[path] = true
		mu.Unlock()
		if first {
			dropped.Add(1)
			resp.Body.Close()
			resp.StatusCode, resp.Status = http.StatusBadGateway, "502 Bad Gateway"
			resp.Header = http.Header{"Content-Type": {"text/plain"}}
			resp.Body = io.NopCloser(strings.NewReader("upstream timed out"))
			resp.ContentLength = -1
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	s.StartWorker(t, "px1", pool.Token, "--server", front.URL)
	s.workerID(t, "prox", "px1")

	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "px", repo.URL, "--space", "root", "--autodeploy", "--worker-pool", "prox")
	r := s.WaitRun(t, s.Deploy(t, "px").ID, "FINISHED")
	if dropped.Load() != 1 {
		t.Fatalf("the proxy dropped %d answers to planned, want 1", dropped.Load())
	}
	if Count(r, "APPLYING") != 1 || Count(r, "CONFIRMED") != 1 {
		t.Fatalf("run path %v: want one CONFIRMED and one APPLYING", Path(r))
	}
	versions := s.StateVersions(t, "px")
	if len(versions) != 1 || versions[0].Run != r.ID {
		t.Fatalf("state versions %+v: want one, written by run %s", versions, r.ID)
	}
	if out := s.Outputs(t, "px"); out["value"].Value != "v1" {
		t.Fatalf("outputs %+v", out)
	}
}

// A worker stopped with SIGTERM says goodbye: it leaves its pool's
// workers at once (not IDLE for a --worker-timeout, then GONE for a day),
// and a run of the pool says at once that no worker is there.
func TestWorkerGoodbyeOnSIGTERM(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Args: []string{"--builtin-workers", "0", "--worker-timeout", "60s"}})
	var pool poolCreated
	s.MustJSON(t, &pool, "workerpool", "create", "--id", "bye", "--space", "root")
	w := s.StartWorker(t, "leaving", pool.Token)
	id := s.workerID(t, "bye", "leaving")
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
	case <-time.After(waitTimeout):
		t.Fatal("the worker did not exit after SIGTERM")
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(w.Log(), "worker stopped") {
		t.Fatalf("worker exited with %d:\n%s", code, tail(w.Log(), 2000))
	}
	for _, wk := range s.workers(t, "bye") {
		if wk.ID == id {
			t.Fatalf("the worker that stopped is still listed, %s", wk.Status)
		}
	}
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "on-bye", repo.URL, "--worker-pool", "bye")
	r := s.Deploy(t, "on-bye")
	if got := s.GetRun(t, r.ID); got.WaitingFor != "no worker in pool bye" {
		t.Fatalf("a run of a pool whose only worker stopped is %s, waiting for %q", got.State, got.WaitingFor)
	}
}
