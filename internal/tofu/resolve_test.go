package tofu

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-iac/gantry/internal/errs"
)

// fakeReleases serves release files the way GitHub / releases.hashicorp.com
// lay them out, and records what was requested.
type fakeReleases struct {
	srv *httptest.Server

	mu       sync.Mutex
	files    map[string][]byte
	requests []string
}

func newFakeReleases(t *testing.T) *fakeReleases {
	t.Helper()
	f := &fakeReleases{files: make(map[string][]byte)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.URL.Path)
		body, ok := f.files[r.URL.Path]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeReleases) set(path string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = body
}

func (f *fakeReleases) remove(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, path)
}

func (f *fakeReleases) requestCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// fakeToolScript is a shell script answering `version -json` like the real tools.
func fakeToolScript(version string) []byte {
	return fmt.Appendf(nil, "#!/bin/sh\nif [ \"$1\" = version ]; then\n  echo '{\"terraform_version\":\"%s\",\"platform\":\"%s_%s\"}'\nfi\n",
		version, runtime.GOOS, runtime.GOARCH)
}

func makeZip(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range files {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(0o755)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func platform() string { return runtime.GOOS + "_" + runtime.GOARCH }

// addRelease publishes a release of tool whose binary is script; sums
// rewrites the SHA256SUMS text when not nil. It returns the zip's name.
func (f *fakeReleases) addRelease(t *testing.T, tool Tool, version string, script []byte, sums func(string) string) string {
	t.Helper()
	bin := tool.Binary()
	zipName := fmt.Sprintf("%s_%s_%s.zip", bin, version, platform())
	zipBody := makeZip(t, map[string][]byte{bin: script, "LICENSE": []byte("license text\n")})
	text := fmt.Sprintf("%s  %s_%s_plan9_mips.zip\n%s  %s\n",
		strings.Repeat("ab", 32), bin, version, sha256Hex(zipBody), zipName)
	if sums != nil {
		text = sums(text)
	}
	dir := "/v" + version
	if tool == Terraform {
		dir = "/terraform/" + version
	}
	f.set(dir+"/"+zipName, zipBody)
	f.set(fmt.Sprintf("%s/%s_%s_SHA256SUMS", dir, bin, version), []byte(text))
	return zipName
}

func notOnPath(string) (string, error) { return "", exec.ErrNotFound }

func (f *fakeReleases) resolver(t *testing.T, toolsDir string) *Resolver {
	return &Resolver{
		ToolsDir:   toolsDir,
		BaseURLs:   map[Tool]string{OpenTofu: f.srv.URL, Terraform: f.srv.URL + "/terraform/"},
		HTTPClient: f.srv.Client(),
		LookPath:   notOnPath,
	}
}

func writeExecutable(t *testing.T, path string, body []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// assertNoDownloadLeftovers checks that no temporary directories remain.
func assertNoDownloadLeftovers(t *testing.T, toolsDir string) {
	t.Helper()
	leftovers, _ := filepath.Glob(filepath.Join(toolsDir, "*", "*", ".download-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}

func TestResolveDownloads(t *testing.T) {
	for _, tool := range []Tool{OpenTofu, Terraform} {
		t.Run(string(tool), func(t *testing.T) {
			f := newFakeReleases(t)
			zipName := f.addRelease(t, tool, "1.2.3", fakeToolScript("1.2.3"), nil)
			dir := t.TempDir()
			r := f.resolver(t, dir)
			var log bytes.Buffer

			got, err := r.Resolve(context.Background(), tool, "1.2.3", &log)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			want := filepath.Join(dir, string(tool), "1.2.3", tool.Binary())
			if got != want {
				t.Errorf("Resolve = %q, want %q", got, want)
			}
			fi, err := os.Stat(got)
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Fatalf("installed binary: %v, %v; want mode 0755", fi, err)
			}
			if v, err := binaryVersion(context.Background(), got); err != nil || v != "1.2.3" {
				t.Errorf("installed binary reports %q, %v; want 1.2.3", v, err)
			}
			for _, line := range []string{
				"Downloading " + tool.DisplayName() + " 1.2.3 from " + f.srv.URL,
				"Verified SHA256 ",
				zipName,
			} {
				if !strings.Contains(log.String(), line) {
					t.Errorf("log lacks %q:\n%s", line, log.String())
				}
			}
			assertNoDownloadLeftovers(t, dir)

			// Remembered: no more requests.
			n := f.requestCount()
			if again, err := r.Resolve(context.Background(), tool, "v1.2.3", nil); err != nil || again != got {
				t.Errorf("second Resolve = %q, %v; want %q", again, err, got)
			}
			if f.requestCount() != n {
				t.Errorf("second Resolve made %d more requests", f.requestCount()-n)
			}
			// A fresh resolver finds it in ToolsDir without downloading.
			if again, err := f.resolver(t, dir).Resolve(context.Background(), tool, "1.2.3", nil); err != nil || again != got {
				t.Errorf("Resolve with another resolver = %q, %v; want %q", again, err, got)
			}
			if f.requestCount() != n {
				t.Errorf("Resolve from tools dir made %d requests", f.requestCount()-n)
			}
		})
	}
}

func TestResolveRedownloadsRemovedBinary(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	r := f.resolver(t, t.TempDir())
	p, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if p2, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", nil); err != nil || p2 != p || !isExecutableFile(p2) {
		t.Errorf("Resolve after removal = %q, %v; want %q reinstalled", p2, err, p)
	}
}

func TestResolveDownloadFailures(t *testing.T) {
	f := newFakeReleases(t)
	badHash := strings.Repeat("0f", 32)
	var goodHash string
	zipName := f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), func(s string) string {
		for _, line := range strings.Split(s, "\n") {
			if strings.HasSuffix(line, "_"+platform()+".zip") {
				goodHash = strings.Fields(line)[0]
				return strings.Replace(s, goodHash, badHash, 1)
			}
		}
		return s
	})
	f.addRelease(t, OpenTofu, "1.2.4", fakeToolScript("1.2.4"), func(s string) string {
		return strings.Split(s, "\n")[0] + "\n" // only the other platform's line
	})
	f.addRelease(t, OpenTofu, "1.2.5", fakeToolScript("1.2.5"), nil)
	f.remove("/v1.2.5/tofu_1.2.5_" + platform() + ".zip") // listed in the sums, not published

	tests := []struct {
		name     string
		version  string
		wantErr  []string
		wantKind errs.Kind
	}{
		{"checksum mismatch", "1.2.3", []string{"checksum mismatch for " + zipName, badHash, goodHash}, errs.Internal},
		{"missing sums line", "1.2.4", []string{"no SHA256 for tofu_1.2.4_" + platform() + ".zip", "tofu_1.2.4_SHA256SUMS"}, errs.Internal},
		{"unknown version", "9.9.9", []string{"opentofu version 9.9.9 not found at " + f.srv.URL + "/v9.9.9/tofu_9.9.9_SHA256SUMS: 404"}, errs.NotFound},
		{"archive missing", "1.2.5", []string{"opentofu version 1.2.5 not found at " + f.srv.URL + "/v1.2.5/tofu_1.2.5_" + platform() + ".zip: 404"}, errs.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := f.resolver(t, dir).Resolve(context.Background(), OpenTofu, tt.version, nil)
			if err == nil {
				t.Fatal("Resolve succeeded")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if k := errs.KindOf(err); k != tt.wantKind {
				t.Errorf("error kind = %v, want %v", k, tt.wantKind)
			}
			if _, err := os.Stat(filepath.Join(dir, "opentofu", tt.version, "tofu")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a binary was installed despite the failure (stat: %v)", err)
			}
			assertNoDownloadLeftovers(t, dir)
		})
	}
}

// A mirror's credentials (user information, query parameters) appear in
// neither the run's log nor the errors, whether the download works, finds
// nothing, or cannot connect.
func TestResolveHidesMirrorCredentials(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	withCredentials := strings.Replace(f.srv.URL, "http://", "http://mirror:hunter2@", 1)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name, mirror, version, want string
		wantErr                     bool
	}{
		{"downloaded", withCredentials, "1.2.3", "Downloading OpenTofu 1.2.3 from http://redacted@" + strings.TrimPrefix(f.srv.URL, "http://") + "/v1.2.3/", false},
		{"not found", withCredentials, "9.9.9", "not found at http://redacted@", true},
		{"token alone", strings.Replace(f.srv.URL, "http://", "http://hunter2@", 1), "9.9.9", "not found at http://redacted@", true},
		{"refused", strings.Replace(closed.URL, "http://", "http://mirror:hunter2@", 1) + "/?token=hunter2", "1.2.3", "downloading http://redacted@", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.resolver(t, t.TempDir())
			r.BaseURLs = map[Tool]string{OpenTofu: tt.mirror}
			var log bytes.Buffer
			_, err := r.Resolve(context.Background(), OpenTofu, tt.version, &log)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Resolve: %v, want an error: %v", err, tt.wantErr)
			}
			out := log.String()
			if err != nil {
				out += "\n" + err.Error()
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("log and error lack %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("log or error shows the mirror's credentials:\n%s", out)
			}
		})
	}
}

func TestResolveRejectsBadVersions(t *testing.T) {
	f := newFakeReleases(t)
	r := f.resolver(t, t.TempDir())
	for _, v := range []string{"1.2", "../1.2.3", "1.2.3/../../x", "1.2.3-", "1.2.3 ", "1.2.3-rc1/..", "latest", "~> 1.6",
		"1.2.3-..", "01.2.3", "1.02.3", "1.2.3-01", "1.2.3-a..b"} {
		_, err := r.Resolve(context.Background(), OpenTofu, v, nil)
		if !errs.Is(err, errs.Invalid) {
			t.Errorf("Resolve(%q) error = %v, want an Invalid error", v, err)
		}
	}
	if _, err := r.Resolve(context.Background(), Tool("pulumi"), "1.2.3", nil); !errs.Is(err, errs.Invalid) {
		t.Errorf("Resolve(pulumi) error = %v, want an Invalid error", err)
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("made %d requests for invalid input", n)
	}
}

func TestResolveUsesMatchingBinaryOnPath(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	pathDir := t.TempDir()
	onPath := writeExecutable(t, filepath.Join(pathDir, "tofu"), fakeToolScript("1.2.3-dev"))

	r := f.resolver(t, t.TempDir())
	var looked []string
	r.LookPath = func(name string) (string, error) {
		looked = append(looked, name)
		return onPath, nil
	}
	var log bytes.Buffer
	got, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", &log)
	if err != nil || got != onPath {
		t.Fatalf("Resolve = %q, %v; want %q", got, err, onPath)
	}
	if len(looked) != 1 || looked[0] != "tofu" {
		t.Errorf("LookPath called with %v, want [tofu]", looked)
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("made %d requests although PATH had the version", n)
	}
	if !strings.Contains(log.String(), "Using OpenTofu 1.2.3 ("+onPath+")") {
		t.Errorf("log does not say the binary on PATH is used: %q", log.String())
	}

	// A different version on PATH is not used: the release is downloaded.
	r2 := f.resolver(t, t.TempDir())
	r2.LookPath = func(string) (string, error) {
		return writeExecutable(t, filepath.Join(t.TempDir(), "tofu"), fakeToolScript("1.2.2")), nil
	}
	got, err = r2.Resolve(context.Background(), OpenTofu, "1.2.3", nil)
	if err != nil || got != filepath.Join(r2.ToolsDir, "opentofu", "1.2.3", "tofu") {
		t.Errorf("Resolve with 1.2.2 on PATH = %q, %v; want the downloaded 1.2.3", got, err)
	}
}

func TestResolveToolsDirBeforePath(t *testing.T) {
	dir := t.TempDir()
	installed := writeExecutable(t, filepath.Join(dir, "terraform", "1.5.7", "terraform"), fakeToolScript("1.5.7"))
	r := &Resolver{
		ToolsDir: dir,
		BaseURLs: map[Tool]string{Terraform: "http://127.0.0.1:1/unused"},
		LookPath: func(string) (string, error) {
			t.Error("LookPath called although ToolsDir has the version")
			return "", exec.ErrNotFound
		},
	}
	got, err := r.Resolve(context.Background(), Terraform, "1.5.7", nil)
	if err != nil || got != installed {
		t.Errorf("Resolve = %q, %v; want %q", got, err, installed)
	}
}

func TestResolveWithoutVersion(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"1.2.3", "1.10.0-rc1", "1.10.0", "1.9.9"} {
		writeExecutable(t, filepath.Join(dir, "opentofu", v, "tofu"), fakeToolScript(v))
	}
	// Neither a version without a binary nor a directory that is not a version counts.
	if err := os.MkdirAll(filepath.Join(dir, "opentofu", "1.99.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeExecutable(t, filepath.Join(dir, "opentofu", "9.0.0.bak", "tofu"), fakeToolScript("9.0.0"))
	if err := os.WriteFile(filepath.Join(dir, "opentofu", "1.50.0"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	onPath := writeExecutable(t, filepath.Join(t.TempDir(), "tofu"), fakeToolScript("1.0.0"))

	tests := []struct {
		name     string
		toolsDir string
		lookPath func(string) (string, error)
		want     string
		wantErr  string
	}{
		{"PATH first", dir, func(string) (string, error) { return onPath, nil }, onPath, ""},
		{"newest in tools dir", dir, notOnPath, filepath.Join(dir, "opentofu", "1.10.0", "tofu"), ""},
		{"nothing", t.TempDir(), notOnPath, "", "no opentofu binary found on PATH or in "},
		{"nothing and no tools dir", "", notOnPath, "", "no opentofu binary found on PATH; set a tool version to download one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{ToolsDir: tt.toolsDir, LookPath: tt.lookPath}
			var log bytes.Buffer
			got, err := r.Resolve(context.Background(), OpenTofu, "", &log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errs.Is(err, errs.NotFound) {
					t.Errorf("Resolve = %q, %v; want a NotFound error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Resolve = %q, %v; want %q", got, err, tt.want)
			}
			// The version used is in the log, the binary's own for PATH.
			if want := "Using OpenTofu " + filepath.Base(filepath.Dir(tt.want)) + " (" + tt.want + ")\n"; tt.want == onPath {
				if want = "Using OpenTofu 1.0.0 (" + onPath + ")\n"; log.String() != want {
					t.Errorf("log = %q, want %q", log.String(), want)
				}
			} else if log.String() != want {
				t.Errorf("log = %q, want %q", log.String(), want)
			}
			// Every call says it, remembered or not.
			log.Reset()
			if _, err := r.Resolve(context.Background(), OpenTofu, "", &log); err != nil || !strings.HasPrefix(log.String(), "Using OpenTofu ") {
				t.Errorf("second Resolve: %v, log %q", err, log.String())
			}
		})
	}
}

func TestResolveConcurrent(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	dir := t.TempDir()
	shared := f.resolver(t, dir)
	want := filepath.Join(dir, "opentofu", "1.2.3", "tofu")

	const n = 8
	var wg sync.WaitGroup
	results := make([]string, n)
	failures := make([]error, n)
	for i := range n {
		r := shared
		if i%2 == 1 { // separate resolvers share only the directory, like separate processes
			r = f.resolver(t, dir)
		}
		wg.Go(func() {
			results[i], failures[i] = r.Resolve(context.Background(), OpenTofu, "1.2.3", nil)
		})
	}
	wg.Wait()
	for i := range n {
		if failures[i] != nil || results[i] != want {
			t.Errorf("resolver %d: %q, %v; want %q", i, results[i], failures[i], want)
		}
	}
	if v, err := binaryVersion(context.Background(), want); err != nil || v != "1.2.3" {
		t.Errorf("installed binary reports %q, %v", v, err)
	}
	assertNoDownloadLeftovers(t, dir)
}

func TestResolveCancelledWhileWaiting(t *testing.T) {
	r := &Resolver{LookPath: notOnPath}
	unlock, err := r.lock(context.Background(), "opentofu@1.2.3", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Resolve(ctx, OpenTofu, "1.2.3", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Resolve error = %v, want context.Canceled", err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.2.3", "1.2.3", 0},
		{"1.10.0", "1.9.9", 1},
		{"1.2.3", "1.2.10", -1},
		{"2.0.0", "10.0.0", -1},
		{"1.10.0-rc1", "1.10.0", -1},
		{"1.10.0-alpha", "1.10.0-beta", -1},
		{"1.10.0-beta2", "1.10.0-beta10", 1}, // alphanumeric identifiers compare as text
		{"1.10.0-rc.2", "1.10.0-rc.10", -1},
		{"1.10.0-rc.1", "1.10.0-rc.1.1", -1},
		{"1.10.0-1", "1.10.0-rc", -1},
	}
	for _, tt := range tests {
		if got := compareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := compareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestFindSum(t *testing.T) {
	good := strings.Repeat("ab", 32)
	sums := good + "  tofu_1.0.0_linux_amd64.zip\n" +
		strings.ToUpper(good) + " *tofu_1.0.0_darwin_arm64.zip\n" +
		"nothex  tofu_1.0.0_windows_amd64.zip\n" +
		good + "  tofu_1.0.0_linux_amd64.zip.sig\n"
	tests := []struct {
		file   string
		want   string
		wantOK bool
	}{
		{"tofu_1.0.0_linux_amd64.zip", good, true},
		{"tofu_1.0.0_darwin_arm64.zip", good, true},
		{"tofu_1.0.0_windows_amd64.zip", "", false},
		{"tofu_1.0.0_linux_arm64.zip", "", false},
		{"linux_amd64.zip", "", false},
	}
	for _, tt := range tests {
		got, ok := findSum([]byte(sums), tt.file)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("findSum(%q) = %q, %v; want %q, %v", tt.file, got, ok, tt.want, tt.wantOK)
		}
	}
}

// A mirror whose address carries a query (a token) gets the release paths
// appended to its path, the query kept on every request.
func TestResolveMirrorWithQuery(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	f.addRelease(t, Terraform, "1.5.7", fakeToolScript("1.5.7"), nil)
	var mu sync.Mutex
	var seen []string
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Query().Get("token") != "x" || !strings.HasPrefix(r.URL.Path, "/mirror/") {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(r.URL.Path, "/mirror")
		f.srv.Config.Handler.ServeHTTP(w, r2)
	}))
	t.Cleanup(mirror.Close)

	for _, tc := range []struct {
		tool    Tool
		version string
		base    string
	}{
		{OpenTofu, "1.2.3", mirror.URL + "/mirror?token=x"},
		{Terraform, "1.5.7", mirror.URL + "/mirror/terraform/?token=x"},
	} {
		r := f.resolver(t, t.TempDir())
		r.BaseURLs = map[Tool]string{tc.tool: tc.base}
		r.HTTPClient = mirror.Client()
		path, err := r.Resolve(context.Background(), tc.tool, tc.version, &bytes.Buffer{})
		if err != nil {
			mu.Lock()
			t.Fatalf("Resolve %s from %s: %v (requests: %q)", tc.tool, tc.base, err, seen)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("installed binary: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if !strings.HasSuffix(s, "?token=x") {
			t.Errorf("request %q does not keep the mirror's query", s)
		}
	}
}
