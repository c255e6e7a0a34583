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
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/redact"
)

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
func (r *Resolver) download(ctx context.Context, tool Tool, version string, logw io.Writer) (string, error) {
	rel := r.release(tool, version)
	want, err := r.expectedSum(ctx, rel)
	if err != nil {
		return "", err
	}

	dest := r.installedPath(tool, version)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("creating tools directory: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), ".download-")
	if err != nil {
		return "", fmt.Errorf("creating download directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	writeLog(logw, "Downloading %s from %s", toolVersionString(tool, version), redact.URL(rel.zipURL))
	zipPath := filepath.Join(tmp, rel.zipName)
	got, err := r.fetchToFile(ctx, rel, zipPath)
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

// get starts a GET and returns the body of a 200 response.
func (r *Resolver) get(ctx context.Context, rel release, addr string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", redact.URL(addr), unwrapURLError(err))
	}
	client := r.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", redact.URL(addr), unwrapURLError(err))
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, errs.E(errs.NotFound, "%s version %s not found at %s: %d", rel.tool, rel.version, redact.URL(addr), resp.StatusCode)
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("downloading %s: %s", redact.URL(addr), resp.Status)
	}
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
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", redact.URL(rel.sumsURL), unwrapURLError(err))
	}
	if len(data) > maxSumsSize {
		return "", fmt.Errorf("%s is larger than %d bytes", redact.URL(rel.sumsURL), maxSumsSize)
	}
	sum, ok := findSum(data, rel.zipName)
	if !ok {
		return "", fmt.Errorf("no SHA256 for %s in %s (is %s built for %s?)", rel.zipName, redact.URL(rel.sumsURL), toolVersionString(rel.tool, rel.version), rel.platform)
	}
	return sum, nil
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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, maxZipSize+1))
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
		if f.Name != name || !f.Mode().IsRegular() {
			continue
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
