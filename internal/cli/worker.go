package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/dirlock"
	"github.com/gantry-iac/gantry/internal/jobprocs"
	"github.com/gantry-iac/gantry/internal/redact"
	"github.com/gantry-iac/gantry/internal/release"
	"github.com/gantry-iac/gantry/internal/seal"
	"github.com/gantry-iac/gantry/internal/tofu"
	"github.com/gantry-iac/gantry/internal/worker"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// workerFlags configure `gantry worker`.
type workerFlags struct {
	server, name, workDir, toolsDir               string
	opentofuMirror, terraformMirror               string
	privateKey, privateKeyFile                    string
	logFormat, logLevel                           string
	concurrency                                   int
	labels                                        []string
	heartbeat, claimWait, shutdownAfter, checkout time.Duration
}

// workerCommand is `gantry worker`: a private worker that dials out to the
// server, and `gantry worker drain`.
func (a *app) workerCommand() *cobra.Command {
	var f workerFlags
	cmd := &cobra.Command{
		Use:   "worker --server URL [--concurrency N]",
		Short: "Run a private worker of a worker pool",
		Long: `Run a private worker: it registers with the server using its pool's token,
long-polls for the jobs of the stacks that use the pool, runs them exactly as
the server's built-in workers do (real OpenTofu or Terraform, workspace,
hooks, state backend), streams their logs and heartbeats. It only dials out:
nothing needs to reach it.

Every flag also reads GANTRY_<FLAG> (GANTRY_SERVER, GANTRY_TOKEN,
GANTRY_CONCURRENCY...) and GANTRY_<FLAG>_FILE (GANTRY_TOKEN_FILE).
SIGTERM (or Ctrl-C) drains: no new jobs, exit when the running ones end;
a second signal interrupts them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.onCommandLine["token"] {
				fmt.Fprintln(a.stderr, "Warning: a pool token given with --token is visible to every process of this host in /proc/<pid>/cmdline, the runs this worker executes included: pass it with GANTRY_TOKEN instead.")
			}
			if a.onCommandLine["private-key"] {
				fmt.Fprintln(a.stderr, "Warning: a private key given with --private-key is visible to every process of this host in /proc/<pid>/cmdline, the runs this worker executes included: pass it with GANTRY_PRIVATE_KEY instead.")
			}
			files := secretFiles(cmd)
			return a.runWorker(cmd.Context(), f, files)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "the Gantry server's URL, e.g. https://gantry.example.com")
	fl.StringVar(&f.name, "name", "", "worker name shown to operators (default: the host name)")
	fl.IntVar(&f.concurrency, "concurrency", 1, "jobs run at once")
	fl.StringArrayVar(&f.labels, "label", nil, "label K=V describing the worker (repeatable)")
	fl.StringVar(&f.workDir, "work-dir", "", "where workspaces, the git cache and tools live (default: <user cache dir>/gantry/worker-<name>)")
	fl.StringVar(&f.toolsDir, "tools-dir", "", "where downloaded tool versions are kept (default <work-dir>/tools)")
	fl.StringVar(&f.opentofuMirror, "opentofu-mirror", "", "base URL of OpenTofu releases (default: the official GitHub releases)")
	fl.StringVar(&f.terraformMirror, "terraform-mirror", "", "base URL of Terraform releases (default: releases.hashicorp.com)")
	fl.StringVar(&f.privateKey, "private-key", "", "the pool's private key (from gantry workerpool keygen), when the pool seals its secrets and workspaces: pass it as GANTRY_PRIVATE_KEY")
	fl.StringVar(&f.privateKeyFile, "private-key-file", "", "a file holding the pool's private key (the runs, of the same user, can read it: prefer GANTRY_PRIVATE_KEY)")
	fl.DurationVar(&f.heartbeat, "heartbeat", 5*time.Second, "how often a job reports it is alive (keep well under the server's --worker-timeout)")
	fl.DurationVar(&f.claimWait, "claim-wait", 30*time.Second, "how long one request for work waits")
	fl.DurationVar(&f.shutdownAfter, "shutdown-timeout", 0, "after SIGTERM, interrupt running jobs after this long (0: wait for them)")
	fl.DurationVar(&f.checkout, "checkout-timeout", 10*time.Minute, "fail a run whose code could not be checked out within this long")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	_ = cmd.MarkFlagRequired("server")
	exclusive(cmd, "private-key", "private-key-file")
	cmd.AddCommand(a.workerDrain())
	return cmd
}

// secretFiles names where the worker read secrets from files
// (GANTRY_TOKEN_FILE, --private-key-file), not the files' paths: the log
// may be where the runs can read it.
func secretFiles(cmd *cobra.Command) []string {
	var out []string
	if flagFile(cmd.Flags(), "token") != "" {
		out = append(out, "the pool token (GANTRY_TOKEN_FILE)")
	}
	if f := cmd.Flags().Lookup("private-key-file"); f != nil && f.Value.String() != "" {
		out = append(out, "the private key (--private-key-file)")
	}
	return out
}

func (a *app) runWorker(ctx context.Context, f workerFlags, files []string) error {
	if !strings.HasPrefix(a.token, "gpt_") {
		msg := "--token (or GANTRY_TOKEN, or GANTRY_TOKEN_FILE) must be a worker pool token (gpt_...): create one with `gantry workerpool create`"
		if os.Getenv("GANTRY_TOKEN") != "" && os.Getenv("GANTRY_TOKEN_FILE") != "" {
			msg += "; GANTRY_TOKEN is set and wins over GANTRY_TOKEN_FILE: unset it"
		}
		return usageErrorf("%s", msg)
	}
	if f.concurrency < 1 || f.concurrency > 256 {
		return usageErrorf("--concurrency must be from 1 to 256")
	}
	labels := map[string]string{}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return usageErrorf("--label %q: want KEY=VALUE", l)
		}
		labels[k] = v
	}
	if err := checkMirrors(f.opentofuMirror, f.terraformMirror); err != nil {
		return err
	}
	log, err := newLogger(a.stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	// The runs this worker executes run as the same user: keep them from
	// reading its memory and environment (GANTRY_TOKEN, GANTRY_PRIVATE_KEY).
	// Its command line stays readable: hence no --token, no --private-key.
	if err := hideSecrets(); err != nil {
		log.Warn("could not hide this process's memory and environment from the runs it executes", "err", err)
	}
	// Read: nothing this process starts (git) inherits them.
	dropGantryEnv()
	if len(files) > 0 {
		log.Warn("secrets read from files the runs this worker executes can read too (they run as the same user): pass them in GANTRY_TOKEN and GANTRY_PRIVATE_KEY instead (see docs/workers.md#security)",
			"files", strings.Join(files, ", "))
	}
	// What the jobs start must not outlive them (package jobprocs).
	jobprocs.Subreap(log)
	if f.name == "" {
		f.name, _ = os.Hostname()
	}
	if f.workDir == "" {
		// The user's own cache directory, not a shared /tmp path another
		// user could prepare (with a planted tool binary) in advance.
		base, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("no --work-dir and no user cache directory ($XDG_CACHE_HOME or $HOME): %w", err)
		}
		f.workDir = filepath.Join(base, "gantry", "worker-"+strings.ReplaceAll(f.name, string(filepath.Separator), "_"))
	}
	// Absolute, as the server's --data-dir: the tool is started, and the
	// workspaces are found, from a job's own directory.
	for _, dir := range []*string{&f.workDir, &f.toolsDir} {
		if *dir == "" {
			continue
		}
		if *dir, err = filepath.Abs(*dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(f.workDir, 0o700); err != nil {
		return err
	}
	// One worker per work directory: two would share (and break) the git
	// cache, and one's start-up cleaning would kill the other's jobs.
	unlock, err := dirlock.Lock(f.workDir)
	if errors.Is(err, dirlock.ErrInUse) {
		return fmt.Errorf("work directory %s is in use by another gantry worker: give each worker its own --work-dir", f.workDir)
	}
	if err != nil {
		return err
	}
	defer unlock()
	// What a killed worker left: processes its jobs started (provisioners,
	// hooks) and workspaces holding code and secret files.
	workspaces := filepath.Join(f.workDir, "workspaces")
	if pids := worker.KillLeftovers(workspaces); len(pids) > 0 {
		log.Warn("killed processes left running by jobs of a previous worker process", "pids", pids)
	}
	if err := os.RemoveAll(workspaces); err != nil {
		return fmt.Errorf("removing the workspaces of a previous worker process: %w", err)
	}
	if err := os.MkdirAll(workspaces, 0o700); err != nil {
		return err
	}
	resolver := &tofu.Resolver{ToolsDir: f.toolsDir}
	if resolver.ToolsDir == "" {
		resolver.ToolsDir = filepath.Join(f.workDir, "tools")
	}
	if f.opentofuMirror != "" || f.terraformMirror != "" {
		resolver.BaseURLs = map[tofu.Tool]string{}
		if f.opentofuMirror != "" {
			resolver.BaseURLs[tofu.OpenTofu] = f.opentofuMirror
		}
		if f.terraformMirror != "" {
			resolver.BaseURLs[tofu.Terraform] = f.terraformMirror
		}
	}
	removed, err := resolver.CleanDownloads()
	if len(removed) > 0 {
		log.Info("removed what interrupted tool downloads left", "dirs", removed)
	}
	if err != nil {
		log.Warn("could not remove what interrupted tool downloads left", "err", err)
	}
	key, err := f.readPrivateKey(a)
	if err != nil {
		return err
	}
	c := workerapi.NewClient(f.server, a.token)
	w := worker.New(worker.Config{
		Name: f.name, ServerURL: strings.TrimRight(f.server, "/"), WorkDir: filepath.Join(f.workDir, "workspaces"), RescueDir: filepath.Join(f.workDir, "rescued"),
		GitCache: filepath.Join(f.workDir, "git-cache"), Resolver: resolver, Log: log.With("worker", f.name),
		HeartbeatEvery: f.heartbeat, ClaimWait: f.claimWait, CheckoutTimeout: f.checkout, Concurrency: f.concurrency, Labels: labels,
		PrivateKey: key,
	}, c)
	kill, cancelKill := context.WithCancel(context.Background())
	defer cancelKill()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return // the worker stopped by itself
		}
		log.Info("draining: no new jobs; waiting for the running ones (send the signal again to interrupt them)")
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(again)
		var timeout <-chan time.Time
		if f.shutdownAfter > 0 {
			timeout = time.After(f.shutdownAfter)
		}
		select {
		case <-again:
		case <-timeout:
		case <-kill.Done():
		}
		cancelKill()
	}()
	log.Info("worker starting", "version", release.String(), "server", redact.URL(f.server), "name", f.name, "concurrency", f.concurrency, "work_dir", f.workDir,
		"opentofu_mirror", redact.URL(f.opentofuMirror), "terraform_mirror", redact.URL(f.terraformMirror))
	fmt.Fprintf(a.stderr, "Gantry worker %s connecting to %s\n", f.name, redact.URL(f.server))
	err = w.Run(ctx, kill)
	log.Info("worker stopped")
	return err
}

// readPrivateKey reads the pool's private key from --private-key
// (GANTRY_PRIVATE_KEY) or --private-key-file; nil when neither is given.
func (f workerFlags) readPrivateKey(a *app) (*seal.PrivateKey, error) {
	raw, from := f.privateKey, a.given("private-key")
	if f.privateKeyFile != "" {
		b, err := os.ReadFile(f.privateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--private-key-file: %w", err)
		}
		raw, from = string(b), "--private-key-file"
	}
	if raw == "" {
		return nil, nil
	}
	k, err := seal.ParsePrivateKey(raw)
	if err != nil {
		// The error never quotes the key.
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return &k, nil
}

// workerDrain is `gantry worker drain --pool P --id W`.
func (a *app) workerDrain() *cobra.Command {
	var pool, id string
	cmd := &cobra.Command{
		Use:   "drain --pool P --id W",
		Short: "Stop a worker from taking new jobs (its running jobs go on)",
		Args:  cobra.NoArgs,
		RunE: a.withClient(func(ctx context.Context, c *client.Client, _ []string) error {
			if err := c.DrainWorker(ctx, pool, id); err != nil {
				return err
			}
			if a.output == "json" {
				return a.printJSON(map[string]any{"pool": pool, "worker": id, "status": "DRAINED"})
			}
			fmt.Fprintf(a.stdout, "Worker %s of pool %s is drained: it takes no new jobs.\n", id, pool)
			return nil
		}),
	}
	cmd.Flags().StringVar(&pool, "pool", "", "worker pool id")
	cmd.Flags().StringVar(&id, "id", "", "worker id (see gantry workerpool workers)")
	required(cmd, "pool", "id")
	return cmd
}

// checkMirrors checks --opentofu-mirror and --terraform-mirror (empty:
// the official releases).
func checkMirrors(opentofu, terraform string) error {
	for _, m := range []struct{ flag, value string }{{"opentofu-mirror", opentofu}, {"terraform-mirror", terraform}} {
		if m.value == "" {
			continue
		}
		if err := tofu.CheckMirror(m.value); err != nil {
			return fmt.Errorf("--%s (%s): %v", m.flag, envName(m.flag), err)
		}
	}
	return nil
}
