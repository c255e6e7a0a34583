package tofu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/dirlock"
	"github.com/gantry-iac/gantry/internal/errs"
)

// Default release locations, used when Resolver.BaseURLs has no entry.
const (
	DefaultOpenTofuBaseURL  = "https://github.com/opentofu/opentofu/releases/download"
	DefaultTerraformBaseURL = "https://releases.hashicorp.com/terraform"
)

// versionProbeTimeout bounds `<bin> version -json` on a binary found on PATH.
const versionProbeTimeout = 30 * time.Second

// Resolver finds the binary for a tool version: in ToolsDir, on PATH, or by
// downloading an official release into ToolsDir. Installed binaries live at
// <ToolsDir>/<tool>/<version>/<binary>, e.g. tools/opentofu/1.10.7/tofu
// (scripts/ensure-tofu.sh builds into the same layout).
//
// The zero value only looks on PATH. A Resolver is safe for concurrent use
// and must not be copied after first use.
type Resolver struct {
	// ToolsDir holds installed versions; downloads go here. Empty disables
	// both the lookup and downloads.
	ToolsDir string
	// BaseURLs overrides the release location per tool; see the Default*BaseURL constants.
	BaseURLs map[Tool]string
	// HTTPClient downloads releases; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Download limits; zero means the Default* constant: the time for
	// an answer's headers, without data while reading its body, for a
	// whole download (retries included), and before the first retry.
	HeaderTimeout, StallTimeout, DownloadTimeout, RetryWait time.Duration
	// LookPath finds a binary on PATH; nil means exec.LookPath.
	LookPath func(string) (string, error)

	mu    sync.Mutex
	found map[string]found         // "tool@version" -> what was found
	locks map[string]chan struct{} // one resolution per key at a time
}

// found is a resolved binary: its path and version ("" if unknown).
type found struct{ path, version string }

// Resolve returns the path of the binary for tool at version, writing
// progress lines to logw (which may be nil), and last, every time, the
// binary used: "Using OpenTofu 1.10.7 (<path>)".
//
// With an empty version it takes the binary on PATH, else the newest version
// in ToolsDir. With a version it takes ToolsDir's copy, else the binary on
// PATH if `version -json` reports exactly that version, else it downloads
// the release, checks it against the release's SHA256SUMS and installs it
// into ToolsDir. Results are remembered, so repeated calls are cheap.
func (r *Resolver) Resolve(ctx context.Context, tool Tool, version string, logw io.Writer) (string, error) {
	if logw == nil {
		logw = io.Discard
	}
	f, err := r.find(ctx, tool, version, logw)
	if err != nil {
		return "", err
	}
	v := f.version
	if v == "" {
		v = "(version unknown)"
	}
	writeLog(logw, "Using %s %s (%s)", tool.DisplayName(), v, f.path)
	return f.path, nil
}

func (r *Resolver) find(ctx context.Context, tool Tool, version string, logw io.Writer) (found, error) {
	if err := checkTool(tool); err != nil {
		return found{}, err
	}
	version = strings.TrimPrefix(version, "v")
	if version != "" {
		if err := checkVersion(tool, version); err != nil {
			return found{}, err
		}
	}
	key := string(tool) + "@" + version
	if f, ok := r.cached(key); ok {
		return f, nil
	}
	unlock, err := r.lock(ctx, key, func() {
		if version != "" {
			writeLog(logw, "Waiting for another job finding or downloading %s", toolVersionString(tool, version))
		}
	})
	if err != nil {
		return found{}, err
	}
	defer unlock()
	if f, ok := r.cached(key); ok { // resolved while we waited
		return f, nil
	}

	f := found{version: version}
	if version == "" {
		f, err = r.resolveAny(ctx, tool)
	} else {
		f.path, err = r.resolveVersion(ctx, tool, version, logw)
	}
	if err != nil {
		return found{}, err
	}
	r.mu.Lock()
	if r.found == nil {
		r.found = make(map[string]found)
	}
	r.found[key] = f
	r.mu.Unlock()
	return f, nil
}

// cached returns a remembered binary if the file is still there.
func (r *Resolver) cached(key string) (found, bool) {
	r.mu.Lock()
	f, ok := r.found[key]
	r.mu.Unlock()
	if !ok {
		return found{}, false
	}
	if !isExecutableFile(f.path) {
		r.mu.Lock()
		if r.found[key] == f {
			delete(r.found, key)
		}
		r.mu.Unlock()
		return found{}, false
	}
	return f, true
}

// lock takes the per-key lock, giving up when ctx is done; waiting, if it
// must wait, is called first.
func (r *Resolver) lock(ctx context.Context, key string, waiting func()) (func(), error) {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = make(map[string]chan struct{})
	}
	ch, ok := r.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		r.locks[key] = ch
	}
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	default:
	}
	if waiting != nil {
		waiting()
	}
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Resolver) resolveAny(ctx context.Context, tool Tool) (found, error) {
	if p, ok := r.onPath(tool); ok {
		v, _ := binaryVersion(ctx, p) // only for the log: unknown if it does not say
		return found{path: p, version: v}, nil
	}
	if v, p, ok := r.newestInstalled(tool); ok {
		return found{path: p, version: v}, nil
	}
	where := "PATH"
	if r.ToolsDir != "" {
		where = "PATH or in " + filepath.Join(r.ToolsDir, string(tool))
	}
	return found{}, errs.E(errs.NotFound, "no %s binary found on %s; set a tool version to download one", tool, where)
}

func (r *Resolver) resolveVersion(ctx context.Context, tool Tool, version string, logw io.Writer) (string, error) {
	if r.ToolsDir != "" {
		if p := r.installedPath(tool, version); isExecutableFile(p) {
			return p, nil
		}
	}
	if p, ok := r.onPath(tool); ok {
		if v, err := binaryVersion(ctx, p); err == nil && v == version {
			return p, nil
		}
	}
	if r.ToolsDir == "" {
		return "", errs.E(errs.NotFound, "%s is not on PATH and no tools directory is configured to download it", toolVersionString(tool, version))
	}
	return r.download(ctx, tool, version, logw)
}

func (r *Resolver) installedPath(tool Tool, version string) string {
	return filepath.Join(r.ToolsDir, string(tool), version, tool.Binary())
}

func (r *Resolver) onPath(tool Tool) (string, bool) {
	look := r.LookPath
	if look == nil {
		look = exec.LookPath
	}
	p, err := look(tool.Binary())
	if err != nil || p == "" {
		return "", false
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return p, isExecutableFile(p)
}

// newestInstalled returns the highest version in <ToolsDir>/<tool> that has
// an executable binary.
func (r *Resolver) newestInstalled(tool Tool) (version, path string, ok bool) {
	if r.ToolsDir == "" {
		return "", "", false
	}
	entries, err := os.ReadDir(filepath.Join(r.ToolsDir, string(tool)))
	if err != nil {
		return "", "", false
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !ValidVersion(name) {
			continue
		}
		p := r.installedPath(tool, name)
		if !isExecutableFile(p) {
			continue
		}
		if !ok || compareVersions(name, version) > 0 {
			version, path, ok = name, p, true
		}
	}
	return version, path, ok
}

// binaryVersion asks a binary for its version; both tools answer
// `version -json` with {"terraform_version": "1.10.7", ...}. A "-dev"
// suffix (source builds) is dropped.
func binaryVersion(ctx context.Context, bin string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, versionProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "version", "-json")
	// No update check (Terraform's checkpoint) while probing.
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	var v struct {
		TerraformVersion string `json:"terraform_version"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(v.TerraformVersion, "-dev"), nil
}

func isExecutableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// CleanDownloads removes what killed downloads left in ToolsDir: their
// temporary .download-* directories (up to the size of a release archive
// and its binary) and the empty version directories. A download in
// progress, in this process or another one sharing the directory, holds
// a lock on its directory and is left alone; a directory without its lock
// file (created a moment ago) is left alone for an hour. It returns the
// directories it removed.
func (r *Resolver) CleanDownloads() ([]string, error) {
	if r.ToolsDir == "" {
		return nil, nil
	}
	var removed []string
	var firstErr error
	for _, tool := range []Tool{OpenTofu, Terraform} {
		versions, err := os.ReadDir(filepath.Join(r.ToolsDir, string(tool)))
		if err != nil {
			continue
		}
		for _, v := range versions {
			if !v.IsDir() {
				continue
			}
			vdir := filepath.Join(r.ToolsDir, string(tool), v.Name())
			entries, err := os.ReadDir(vdir)
			if err != nil {
				continue
			}
			for _, e := range entries {
				if !e.IsDir() || !strings.HasPrefix(e.Name(), downloadDirPrefix) {
					continue
				}
				dir := filepath.Join(vdir, e.Name())
				ok, err := removeStaleDownload(dir)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if ok {
					removed = append(removed, dir)
				}
			}
			if os.Remove(vdir) == nil { // only if empty
				removed = append(removed, vdir)
			}
		}
	}
	return removed, firstErr
}

// staleWithoutLock is how old a download directory without its lock file
// must be to be removed (a download creates the file right after it).
const staleWithoutLock = time.Hour

// removeStaleDownload removes a download directory nobody holds.
func removeStaleDownload(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, ".lock")); errors.Is(err, os.ErrNotExist) {
		fi, err := os.Stat(dir)
		if err != nil || time.Since(fi.ModTime()) < staleWithoutLock {
			return false, nil
		}
	}
	unlock, err := dirlock.Lock(dir)
	if errors.Is(err, dirlock.ErrInUse) || errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unlock()
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	return true, nil
}
