package tofu

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-iac/gantry/internal/dirlock"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/redact"
)

// Download time limits (Resolver's fields override them) and attempts.
const (
	DefaultHeaderTimeout   = time.Minute      // connect, TLS and the response's headers
	DefaultStallTimeout    = time.Minute      // no data received
	DefaultDownloadTimeout = 30 * time.Minute // one version, retries included
	DefaultRetryWait       = 2 * time.Second  // before the first retry, doubled for the next
	downloadAttempts       = 3
)

// downloadDirPrefix names the temporary directories of downloads.
const downloadDirPrefix = ".download-"

// Size limits for what we download and unpack.
const (
	maxSumsSize   = 1 << 20 // SHA256SUMS
	maxZipSize    = 1 << 30 // release archive
	maxBinarySize = 2 << 30 // binary inside it
)

// release names the files of one release of a tool for this platform. The
// URLs may carry the mirror's credentials: what is printed (logs, errors)
// goes through redact.URL.
type release struct {
	tool     Tool
	version  string
	zipName  string
	zipURL   string
	sumsURL  string
	platform string
}

func (r *Resolver) release(tool Tool, version string) release {
	base := r.BaseURLs[tool]
	if base == "" {
		base = DefaultOpenTofuBaseURL
		if tool == Terraform {
			base = DefaultTerraformBaseURL
		}
	}
	platform := runtime.GOOS + "_" + runtime.GOARCH
	bin := tool.Binary()
	dir := version
	if tool == OpenTofu {
		dir = "v" + version // GitHub release tags carry a "v"
	}
	zipName := fmt.Sprintf("%s_%s_%s.zip", bin, version, platform)
	return release{
		tool:     tool,
		version:  version,
		zipName:  zipName,
		zipURL:   joinURL(base, dir, zipName),
		sumsURL:  joinURL(base, dir, fmt.Sprintf("%s_%s_SHA256SUMS", bin, version)),
		platform: platform,
	}
}

// CheckMirror checks a mirror's base URL: http or https, with a host. The
// error shows the value (its credentials redacted) and what is wrong.
func CheckMirror(raw string) error {
	u, err := url.Parse(raw)
	shown := strconv.Quote(raw)
	if strings.ContainsAny(raw, "@?") {
		shown = strconv.Quote(redact.URL(raw))
		if shown == `"redacted"` {
			shown = "(the value, not shown: it may hold credentials)"
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s is not a URL (%v): want http:// or https://<host>/<path>", shown, unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%s is not an http:// or https:// URL", shown)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%s has no host", shown)
	}
	return nil
}

// joinURL appends elems to the path of base, keeping its query (a mirror
// may want a token there: http://host/path?token=x) and fragment. A base
// that does not parse is joined as text; the request then reports it.
func joinURL(base string, elems ...string) string {
	u, err := url.Parse(base)
	if err != nil {
		return strings.TrimRight(base, "/") + "/" + strings.Join(elems, "/")
	}
	return u.JoinPath(elems...).String()
}

// download fetches, verifies and installs a release, returning the
// installed binary's path. Concurrent downloads of the same version (in this
// or other processes) each unpack into their own temporary directory and
// rename the binary into place, so the last rename wins with an identical,
// complete file and nobody ever sees a partial one.
//
// It is bounded: no answer within the header timeout, or no data for the
// stall timeout, fails the attempt, and the whole download (retries
// included) has the download timeout. A transient failure (a 5xx or 429
// answer, a connection refused or reset) is retried twice, waiting
// RetryWait, then twice that.
func (r *Resolver) download(ctx context.Context, tool Tool, version string, logw io.Writer) (path string, err error) {
	rel := r.release(tool, version)
	limit := durationOr(r.DownloadTimeout, DefaultDownloadTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, limit, &timeoutError{fmt.Sprintf("downloading %s took longer than %s", toolVersionString(tool, version), limit)})
	defer cancel()
	writeLog(logw, "Downloading %s from %s", toolVersionString(tool, version), redact.URL(rel.zipURL))

	dest := r.installedPath(tool, version)
	defer func() {
		if err != nil {
			// A failure leaves no empty version directory (another
			// process's download in it keeps it: it is not empty).
			_ = os.Remove(filepath.Dir(dest))
		}
	}()
	var want string
	err = r.retry(ctx, logw, func() (err error) {
		want, err = r.expectedSum(ctx, rel)
		return err
	})
	if err != nil {
		return "", err
	}

	tmp, unlockTmp, err := makeDownloadDir(filepath.Dir(dest))
	if err != nil {
		return "", err
	}
	defer func() {
		os.RemoveAll(tmp)
		unlockTmp()
	}()

	zipPath := filepath.Join(tmp, rel.zipName)
	var got string
	err = r.retry(ctx, logw, func() (err error) {
		got, err = r.fetchToFile(ctx, rel, zipPath)
		return err
	})
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(got, want) {
		return "", fmt.Errorf("checksum mismatch for %s: SHA256SUMS says %s, downloaded file has %s", rel.zipName, want, got)
	}
	writeLog(logw, "Verified SHA256 %s for %s", got, rel.zipName)

	binTmp := filepath.Join(tmp, tool.Binary())
	if err := extractFile(zipPath, tool.Binary(), binTmp); err != nil {
		return "", fmt.Errorf("unpacking %s: %w", rel.zipName, err)
	}
	if err := os.Chmod(binTmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(binTmp, dest); err != nil {
		return "", fmt.Errorf("installing %s: %w", dest, err)
	}
	writeLog(logw, "Installed %s at %s", toolVersionString(tool, version), dest)
	return dest, nil
}

// makeDownloadDir creates the version directory and a .download-*
// directory in it, locked (dirlock) while the download uses it, so that
// CleanDownloads in another process leaves it alone.
func makeDownloadDir(versionDir string) (string, func(), error) {
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(versionDir, 0o755); err != nil {
			return "", nil, fmt.Errorf("creating tools directory: %w", err)
		}
		tmp, err := os.MkdirTemp(versionDir, downloadDirPrefix)
		if errors.Is(err, os.ErrNotExist) && attempt == 0 {
			continue // removed by another process's failed download meanwhile
		}
		if err != nil {
			return "", nil, fmt.Errorf("creating download directory: %w", err)
		}
		unlock, err := dirlock.Lock(tmp)
		if err != nil {
			os.RemoveAll(tmp)
			return "", nil, fmt.Errorf("locking download directory: %w", err)
		}
		return tmp, unlock, nil
	}
}

// retry runs fetch up to downloadAttempts times while it fails with a
// transient error, logging each retry.
func (r *Resolver) retry(ctx context.Context, logw io.Writer, fetch func() error) error {
	wait := durationOr(r.RetryWait, DefaultRetryWait)
	for attempt := 1; ; attempt++ {
		err := fetch()
		if err == nil || attempt == downloadAttempts || !isTransient(err) || ctx.Err() != nil {
			return err
		}
		writeLog(logw, "%v; retrying in %s (attempt %d of %d)", err, wait, attempt+1, downloadAttempts)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r.timeoutCause(ctx, err)
		}
		wait *= 2
	}
}

// transientError marks a failure worth retrying.
type transientError struct{ error }

func (e transientError) Unwrap() error { return e.error }

func isTransient(err error) bool {
	var t transientError
	return errors.As(err, &t)
}

// transient marks err transient if it is a refused or reset connection,
// or a body cut short.
func transient(err error) error {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return transientError{err}
	}
	return err
}

// timeoutError is the cause a download's context is cancelled with when
// one of its time limits is reached: it says which.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string { return e.msg }

// timeoutCause returns the time limit ctx was cancelled for, or err.
func (r *Resolver) timeoutCause(ctx context.Context, err error) error {
	var te *timeoutError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return err
}

// get starts a GET and returns the body of a 200 response. The response
// must start within the header timeout; the body, read, fails once no
// data came for the stall timeout.
func (r *Resolver) get(ctx context.Context, rel release, addr string) (io.ReadCloser, error) {
	reqCtx, cancel := context.WithCancelCause(ctx)
	headerTimeout := durationOr(r.HeaderTimeout, DefaultHeaderTimeout)
	timer := time.AfterFunc(headerTimeout, func() {
		cancel(&timeoutError{fmt.Sprintf("downloading %s: no answer within %s", redact.URL(addr), headerTimeout)})
	})
	fail := func(err error) (io.ReadCloser, error) {
		timer.Stop()
		err = r.timeoutCause(reqCtx, err)
		cancel(nil)
		return nil, err
	}
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, addr, nil)
	if err != nil {
		return fail(fmt.Errorf("downloading %s: %w", redact.URL(addr), unwrapURLError(err)))
	}
	client := r.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail(transient(fmt.Errorf("downloading %s: %w", redact.URL(addr), unwrapURLError(err))))
	}
	if !timer.Stop() {
		resp.Body.Close()
		return fail(errors.New("timed out"))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		stall := durationOr(r.StallTimeout, DefaultStallTimeout)
		b := &watchedBody{body: resp.Body, ctx: reqCtx, cancel: cancel, stall: stall}
		b.timer = time.AfterFunc(stall, func() {
			cancel(&timeoutError{fmt.Sprintf("downloading %s: no data received for %s", redact.URL(addr), stall)})
		})
		return b, nil
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return fail(errs.E(errs.NotFound, "%s version %s not found at %s: %d", rel.tool, rel.version, redact.URL(addr), resp.StatusCode))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		resp.Body.Close()
		return fail(transientError{fmt.Errorf("downloading %s: %s", redact.URL(addr), resp.Status)})
	default:
		resp.Body.Close()
		return fail(fmt.Errorf("downloading %s: %s", redact.URL(addr), resp.Status))
	}
}

// watchedBody is a response body whose reads fail once no data came for
// stall, or the download's deadline passed, with an error saying so.
type watchedBody struct {
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	stall  time.Duration
	timer  *time.Timer
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.timer.Reset(b.stall)
	}
	if err != nil && err != io.EOF {
		var te *timeoutError
		if errors.As(context.Cause(b.ctx), &te) {
			return n, te
		}
		return n, transient(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

func durationOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// unwrapURLError returns the cause of a *url.Error, whose message repeats
// the URL with its user name and query (net/http hides only the password).
func unwrapURLError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// expectedSum fetches the release's SHA256SUMS and returns the line for
// this platform's archive.
func (r *Resolver) expectedSum(ctx context.Context, rel release) (string, error) {
	body, err := r.get(ctx, rel, rel.sumsURL)
	if err != nil {
		return "", err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, maxSumsSize+1))
	var te *timeoutError
	if errors.As(err, &te) {
		return "", te
	}
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", redact.URL(rel.sumsURL), unwrapURLError(err))
	}
	if len(data) > maxSumsSize {
		return "", fmt.Errorf("%s is larger than %d bytes", redact.URL(rel.sumsURL), maxSumsSize)
	}
	sum, ok := findSum(data, rel.zipName)
	if !ok && !looksLikeSums(data) {
		return "", fmt.Errorf("%s is not a checksums file (it starts %q): check the mirror's URL and layout", redact.URL(rel.sumsURL), preview(data))
	}
	if !ok {
		return "", fmt.Errorf("no SHA256 for %s in %s (is %s built for %s?)", rel.zipName, redact.URL(rel.sumsURL), toolVersionString(rel.tool, rel.version), rel.platform)
	}
	return sum, nil
}

// looksLikeSums reports whether data has at least one sha256sum line.
func looksLikeSums(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		if b, err := hex.DecodeString(fields[0]); err == nil && len(b) == sha256.Size {
			return true
		}
	}
	return false
}

// preview is the start of data, for an error message: its first line, at
// most 40 bytes of it.
func preview(data []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(data), []byte("\n"))
	if len(line) > 40 {
		return string(line[:40]) + "..."
	}
	return string(line)
}

// findSum returns the hash on the line naming file in sha256sum output
// ("<hex>  <name>", or "<hex> *<name>" for binary mode).
func findSum(sums []byte, file string) (string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		hash, name := fields[0], strings.TrimPrefix(fields[1], "*")
		if name != file {
			continue
		}
		if b, err := hex.DecodeString(hash); err != nil || len(b) != sha256.Size {
			return "", false
		}
		return strings.ToLower(hash), true
	}
	return "", false
}

// fetchToFile downloads the release archive to path and returns its SHA-256.
func (r *Resolver) fetchToFile(ctx context.Context, rel release, path string) (string, error) {
	body, err := r.get(ctx, rel, rel.zipURL)
	if err != nil {
		return "", err
	}
	defer body.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // a retry starts over
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, maxZipSize+1))
	var te *timeoutError
	if errors.As(err, &te) {
		return "", te
	}
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", redact.URL(rel.zipURL), unwrapURLError(err))
	}
	if n > maxZipSize {
		return "", fmt.Errorf("%s is larger than %d bytes", redact.URL(rel.zipURL), maxZipSize)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// extractFile copies the archive member called name (at the archive's root)
// to dest. Nothing else is unpacked, so member paths cannot escape.
func extractFile(zipPath, name, dest string) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		if f.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("the archive's %s is a symbolic link, not the binary", name)
		}
		if !f.Mode().IsRegular() {
			return fmt.Errorf("the archive's %s is not a regular file (mode %s)", name, f.Mode())
		}
		src, err := f.Open()
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		if err != nil {
			return err
		}
		n, err := io.Copy(out, io.LimitReader(src, maxBinarySize+1))
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && n > maxBinarySize {
			err = fmt.Errorf("%s is larger than %d bytes", name, maxBinarySize)
		}
		return err
	}
	return errors.New("archive has no file " + name)
}

func writeLog(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}
