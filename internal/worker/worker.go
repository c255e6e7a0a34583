// Package worker is the worker loop: register, claim a job, run it in a
// fresh workspace with the real IaC tool, stream logs, heartbeat, report.
// The built-in pool of `gantry server` and `gantry worker` both run it.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/git"
	"github.com/gantry-iac/gantry/internal/release"
	"github.com/gantry-iac/gantry/internal/seal"
	"github.com/gantry-iac/gantry/internal/tofu"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// Config configures a worker.
type Config struct {
	Name      string
	Instance  string
	ServerURL string // base URL runs use to reach the state backend
	WorkDir   string // where workspaces are made
	// RescueDir keeps what OpenTofu could not save (errored.tfstate), out
	// of WorkDir, which a restarted worker clears (default WorkDir/rescued).
	RescueDir string
	// GitCache, if set, keeps this worker's bare copies of repositories so
	// that runs fetch only new commits (one directory per worker).
	GitCache string
	// CheckoutTimeout bounds checking out a run's code (default
	// DefaultCheckoutTimeout): a remote that accepts and never answers
	// fails the run instead of holding the worker.
	CheckoutTimeout time.Duration
	Resolver        *tofu.Resolver
	Log             *slog.Logger
	// HeartbeatEvery is how often a job reports that it is alive.
	HeartbeatEvery time.Duration
	// ClaimWait is how long one claim long-polls.
	ClaimWait time.Duration
	// Concurrency is how many jobs the worker runs at once (default 1).
	Concurrency int
	// Labels describe the worker to operators (`gantry worker --label`).
	Labels map[string]string
	// Tools, if set, are reported at registration instead of the tools
	// found on PATH.
	Tools map[string]string
	// PrivateKey is the pool's private key, when the pool seals its
	// secrets and workspaces (see package seal).
	PrivateKey *seal.PrivateKey
	// Running, if set, is told when a job starts; the function it returns
	// when the job has ended (the server's built-in workers: their server
	// knows they are alive whatever their heartbeats).
	Running func(runID string) (done func())
}

// DefaultCheckoutTimeout is Config.CheckoutTimeout's default.
const DefaultCheckoutTimeout = 10 * time.Minute

// Worker runs jobs one at a time.
type Worker struct {
	cfg   Config
	proto workerapi.Protocol
	busy  sync.WaitGroup
	// stopping is Run's stop: once it ends (the first signal), the end of
	// a job waits for a server that does not answer reportRetryFor at
	// most, not endRetryFor (see shuttingDown).
	stopping context.Context
	tools    map[string]string // reported at registration

	cacheMu sync.Mutex
	caches  map[int]*git.Cache // by job slot: they live as long as the worker

	regMu    sync.Mutex // held while registering again
	regGen   int        // registrations since the first
	workerID string     // the current registration's
}

// New returns a worker speaking proto.
func New(cfg Config, proto workerapi.Protocol) *Worker {
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = 2 * time.Second
	}
	if cfg.ClaimWait == 0 {
		cfg.ClaimWait = 30 * time.Second
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	// The tool runs in the project root, not here: paths handed to it
	// (TF_CLI_CONFIG_FILE, GANTRY_OIDC_TOKEN_FILE, credential files) must
	// not be relative to the worker's directory.
	if cfg.RescueDir == "" {
		cfg.RescueDir = filepath.Join(cfg.WorkDir, "rescued")
	}
	for _, dir := range []*string{&cfg.WorkDir, &cfg.GitCache, &cfg.RescueDir} {
		if *dir != "" {
			if abs, err := filepath.Abs(*dir); err == nil {
				*dir = abs
			}
		}
	}
	return &Worker{cfg: cfg, proto: proto}
}

// Run registers and runs jobs until stop ends. A job in progress when stop
// ends runs on until it finishes or kill ends.
func (w *Worker) Run(stop, kill context.Context) error {
	// Before any job: jobs may write the configuration (see git.LoadConfig).
	git.LoadConfig(w.cfg.Log)
	n := max(w.cfg.Concurrency, 1)
	w.stopping = stop
	w.tools = maps.Clone(w.cfg.Tools)
	if w.tools == nil {
		w.tools = DetectTools(stop)
	}
	w.tools[workerapi.ToolGantry] = release.String()
	if err := w.register(stop); err != nil || stop.Err() != nil {
		return err
	}
	// Every loop has returned, and with it every job: the worker leaves.
	defer w.goodbye()
	// Stopping while jobs run on: the server lists the worker DRAINED
	// meanwhile, not BUSY, and counts it out of its pool's workers.
	looping := make(chan struct{})
	defer close(looping)
	go w.drainNotice(stop, looping)
	if n == 1 {
		return w.loop(stop, kill, 0)
	}
	errc := make(chan error, n)
	for slot := range n {
		go func() { errc <- w.loop(stop, kill, slot+1) }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// GoodbyeTimeout bounds the goodbye of a stopping worker.
var GoodbyeTimeout = 5 * time.Second

// goodbye tells the server that the worker is stopping, once its jobs have
// ended, so that the server forgets it at once rather than count it among
// its pool's workers until --worker-timeout, then list it GONE for a day.
// Failures are only logged: a server that does not answer in time, or of
// a release that does not know the call (404), does what it did before.
func (w *Worker) goodbye() {
	ctx, cancel := context.WithTimeout(context.Background(), GoodbyeTimeout)
	defer cancel()
	err := w.proto.Deregister(ctx)
	switch {
	case err == nil:
		w.cfg.Log.Debug("told the server this worker is leaving")
	case workerapi.Unsupported(err):
		w.cfg.Log.Debug("the server does not know the goodbye of workers (an older release): it lists this worker until its --worker-timeout, then as GONE", "err", err)
	default:
		w.cfg.Log.Info("telling the server this worker is leaving failed: it lists this worker until its --worker-timeout, then as GONE", "err", err)
	}
}

// drainNoticeAfter is how long a stopping worker's loops may take to
// return before it tells the server it drains: an idle worker's return at
// once, and its goodbye says all.
var drainNoticeAfter = 200 * time.Millisecond

// drainNotice tells the server, once stop ends, that the worker is
// draining, unless its loops return (looping closed) first. Failures are
// only logged: a server of a release without the call (404) lists the
// worker as it did before.
func (w *Worker) drainNotice(stop context.Context, looping <-chan struct{}) {
	select {
	case <-looping:
		return
	case <-stop.Done():
	}
	select {
	case <-looping:
		return
	case <-time.After(drainNoticeAfter):
	}
	ctx, cancel := context.WithTimeout(context.Background(), GoodbyeTimeout)
	defer cancel()
	switch err := w.proto.Drain(ctx); {
	case err == nil:
		w.cfg.Log.Info("stopping: told the server this worker takes no new jobs; waiting for its jobs to end")
	case workerapi.Unsupported(err):
		w.cfg.Log.Debug("the server does not know the drain of workers (an older release)", "err", err)
	default:
		w.cfg.Log.Info("telling the server this worker drains failed", "err", err)
	}
}

// registerRefused explains a registration the server refused for good. A
// server of a release before this worker's refuses the fields of the
// register request it does not know (400 "unknown field ..."; servers
// since ignore them): it is the side to upgrade, which the answer does not
// say. The server's message is the only sign of it an old server gives.
func registerRefused(err error) error {
	var se *workerapi.StatusError
	if errors.As(err, &se) && se.Status == http.StatusBadRequest && strings.HasPrefix(se.Message, "unknown field") {
		return fmt.Errorf("%w: the server is older than this worker: upgrade the server first (servers accept older workers)", err)
	}
	return err
}

// register registers the worker, retrying what may pass (the server
// unreachable or in trouble) until stop ends; a refusal (4xx) is
// returned.
func (w *Worker) register(stop context.Context) error {
	backoff := 100 * time.Millisecond
	pub := ""
	if w.cfg.PrivateKey != nil {
		pub = w.cfg.PrivateKey.Public()
	}
	for {
		reg, err := w.proto.Register(stop, workerapi.RegisterRequest{Name: w.cfg.Name, Version: workerapi.Version, Instance: w.cfg.Instance, Features: workerapi.Features,
			Labels: w.cfg.Labels, Tools: w.tools, Concurrency: max(w.cfg.Concurrency, 1), PublicKey: pub})
		if err == nil {
			w.workerID = reg.WorkerID
			return w.checkPoolKey(reg.PublicKey)
		}
		if stop.Err() != nil {
			return nil
		}
		if workerapi.Permanent(err) {
			return registerRefused(err)
		}
		w.cfg.Log.Warn("worker registration failed; retrying", "err", err)
		sleep(stop, backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
}

// registerAgain registers the worker anew after the server answered a
// claim made with registration gen that it does not know the worker (a
// database restored from a backup taken before the worker registered):
// the pool token it holds still admits it. A concurrent loop of the same
// worker that met the same answer finds the registration done. Only when
// the registration itself is refused (the pool's token was reset, the
// pool deleted) does the worker stop, with both answers.
func (w *Worker) registerAgain(stop context.Context, gen int, refused error) error {
	w.regMu.Lock()
	defer w.regMu.Unlock()
	if w.regGen != gen {
		return nil // another loop registered again meanwhile
	}
	old := w.workerID
	if err := w.register(stop); err != nil {
		return fmt.Errorf("%w; registering again with the pool token was refused: %v", refused, err)
	}
	if stop.Err() != nil {
		return nil
	}
	w.regGen++
	w.cfg.Log.Warn("the server no longer knew this worker (its database restored from a backup taken before the worker registered?): registered again with the pool token",
		"old_worker_id", old, "worker_id", w.workerID)
	return nil
}

// generation returns the current registration's generation.
func (w *Worker) generation() int {
	w.regMu.Lock()
	defer w.regMu.Unlock()
	return w.regGen
}

// loop claims and runs jobs one at a time until stop ends. slot tells the
// concurrent loops of one worker apart (0 when there is one).
func (w *Worker) loop(stop, kill context.Context, slot int) error {
	log := w.cfg.Log
	backoff := 100 * time.Millisecond
	again := false // registered again after the last claim
	for stop.Err() == nil {
		gen := w.generation()
		job, err := w.proto.Claim(stop, w.cfg.ClaimWait)
		if err != nil {
			if stop.Err() != nil {
				return nil
			}
			if workerapi.UnknownWorker(err) && !again {
				// Once: a claim refused right after a new registration
				// is not a worker the server forgot.
				if err := w.registerAgain(stop, gen, err); err != nil {
					return err
				}
				again = true
				continue
			}
			if workerapi.Refused(err) {
				return err
			}
			log.Warn("claim failed; retrying", "err", err, "backoff", backoff)
			sleep(stop, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		again = false
		if job == nil {
			continue
		}
		w.busy.Add(1)
		w.execute(kill, job, slot)
		w.busy.Done()
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// checkPoolKey refuses to work for a pool that seals its jobs to a key
// this worker does not hold: it would take the pool's jobs and fail them.
func (w *Worker) checkPoolKey(poolKey string) error {
	switch {
	case poolKey == "" && w.cfg.PrivateKey != nil:
		w.cfg.Log.Warn("this worker has a private key but its pool has none: nothing is sealed")
	case poolKey == "":
	case w.cfg.PrivateKey == nil:
		return errors.New("this worker pool seals its secrets and workspaces to a key pair: start the worker with the pool's private key (GANTRY_PRIVATE_KEY or --private-key-file)")
	case w.cfg.PrivateKey.Public() != strings.TrimSpace(poolKey):
		return errors.New("the private key given does not match this worker pool's public key (was `gantry workerpool keygen` run again? use the new key)")
	}
	return nil
}

// gitCache returns the git cache of a job slot (nil without GitCache). A
// Cache remembers what its kept trees hold: it lives as long as the
// worker.
func (w *Worker) gitCache(slot int) *git.Cache {
	if w.cfg.GitCache == "" {
		return nil
	}
	w.cacheMu.Lock()
	defer w.cacheMu.Unlock()
	if c := w.caches[slot]; c != nil {
		return c
	}
	dir := w.cfg.GitCache
	if slot > 0 {
		// Concurrent jobs of one worker each keep their own cache.
		dir = filepath.Join(dir, fmt.Sprintf("slot-%d", slot))
	}
	if w.caches == nil {
		w.caches = map[int]*git.Cache{}
	}
	w.caches[slot] = &git.Cache{Dir: dir}
	return w.caches[slot]
}
