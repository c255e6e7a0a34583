package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/id"
	"github.com/gantry-iac/gantry/internal/tofu"
	"github.com/gantry-iac/gantry/internal/worker"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// Resolver builds the tool resolver from the configuration.
func (c Config) Resolver() *tofu.Resolver {
	r := &tofu.Resolver{ToolsDir: c.ToolsDir}
	if r.ToolsDir == "" {
		r.ToolsDir = filepath.Join(c.DataDir, "tools")
	}
	if c.OpenTofuMirror != "" || c.TerraformMirror != "" {
		r.BaseURLs = map[tofu.Tool]string{}
		if c.OpenTofuMirror != "" {
			r.BaseURLs[tofu.OpenTofu] = c.OpenTofuMirror
		}
		if c.TerraformMirror != "" {
			r.BaseURLs[tofu.Terraform] = c.TerraformMirror
		}
	}
	return r
}

// startWorkers runs the built-in pool: workers that speak the worker
// protocol to this server over loopback, exactly like remote workers.
func (s *Server) startWorkers(stop, kill context.Context, wg *sync.WaitGroup) (closeIdle func()) {
	var clients []*workerapi.Client
	closeIdle = func() {
		for _, c := range clients {
			c.HTTP.CloseIdleConnections()
		}
	}
	if s.cfg.BuiltinWorkers <= 0 {
		return closeIdle
	}
	s.poolTok = "gpt_builtin_" + id.Secret(32)
	resolver := s.cfg.Resolver()
	cleanDownloads(resolver, s.log)
	workDir := filepath.Join(s.cfg.DataDir, "workspaces")
	if pids := worker.KillLeftovers(workDir); len(pids) > 0 {
		s.log.Warn("killed processes left running by jobs of a previous server process", "pids", pids)
	}
	_ = os.RemoveAll(workDir) // leftovers of a killed process
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		s.log.Error("cannot create the workspace directory", "err", err)
		return closeIdle
	}
	// Replicas on one database each have builtin-1, builtin-2...: the
	// labels tell whose they are (the instance-id of the data directory,
	// and the host).
	labels := map[string]string{"server": s.instance}
	if host, err := os.Hostname(); err == nil && host != "" {
		labels["host"] = host
	}
	for i := 1; i <= s.cfg.BuiltinWorkers; i++ {
		name := fmt.Sprintf("builtin-%d", i)
		c := workerapi.NewClient(s.url, s.poolTok)
		clients = append(clients, c)
		w := worker.New(worker.Config{
			Name: name, Instance: s.instance, ServerURL: s.url, WorkDir: workDir, RescueDir: filepath.Join(s.cfg.DataDir, "rescued"), Resolver: resolver,
			GitCache: filepath.Join(s.cfg.DataDir, "git-cache", name), CheckoutTimeout: s.cfg.CheckoutTimeout,
			Log: s.log.With("worker", name), HeartbeatEvery: min(max(s.cfg.WorkerTimeout/4, 100*time.Millisecond), 2*time.Second),
			Running: s.holding, Labels: labels,
		}, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(stop, kill); err != nil {
				s.log.Error("built-in worker stopped", "worker", name, "err", err)
			}
		}()
	}
	return closeIdle
}

// cleanDownloads removes what killed downloads left in the tools
// directory (downloads in progress in other processes are left alone).
func cleanDownloads(r *tofu.Resolver, log *slog.Logger) {
	removed, err := r.CleanDownloads()
	if len(removed) > 0 {
		log.Info("removed what interrupted tool downloads left", "dirs", removed)
	}
	if err != nil {
		log.Warn("could not remove what interrupted tool downloads left", "err", err)
	}
}

// urlHost is the host (with its port, if any) of a URL, "" if it has none:
// the runs' account name (TF_VAR_spacelift_account_name), as Spacelift's is
// the account's host (<account>.app.spacelift.io).
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
