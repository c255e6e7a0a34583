package tofu

import (
	"archive/zip"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/dirlock"
)

// hangingMirror serves the release of fakeReleases, except that the
// paths in hang get their handler instead.
func hangingMirror(t *testing.T, f *fakeReleases, hang map[string]http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for suffix, h := range hang {
			if strings.HasSuffix(r.URL.Path, suffix) {
				h(w, r)
				return
			}
		}
		f.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func fastResolver(dir, mirror string) *Resolver {
	return &Resolver{ToolsDir: dir, BaseURLs: map[Tool]string{OpenTofu: mirror}, LookPath: notOnPath,
		HeaderTimeout: 300 * time.Millisecond, StallTimeout: 300 * time.Millisecond, DownloadTimeout: 10 * time.Second,
		RetryWait: 10 * time.Millisecond}
}

// assertNoVersionDir checks that a failed download left nothing behind.
func assertNoVersionDir(t *testing.T, dir, version string) {
	t.Helper()
	assertNoDownloadLeftovers(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "opentofu", version)); !os.IsNotExist(err) {
		t.Errorf("the version directory is left behind (stat: %v)", err)
	}
}

// A mirror that accepts and never answers, or stops sending, or sends too
// slowly, fails the download with a reason saying so, in bounded time, and
// frees the version for the next job.
func TestDownloadTimeLimits(t *testing.T) {
	f := newFakeReleases(t)
	zipName := f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	block := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	stall := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write([]byte("PK"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	trickle := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		for {
			if _, err := w.Write([]byte("P")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	tests := []struct {
		name     string
		hang     map[string]http.HandlerFunc
		deadline time.Duration
		want     string
	}{
		{"no answer to SHA256SUMS", map[string]http.HandlerFunc{"SHA256SUMS": block}, 0, "/v1.2.3/tofu_1.2.3_SHA256SUMS: no answer within 300ms"},
		{"no answer to the archive", map[string]http.HandlerFunc{".zip": block}, 0, "/v1.2.3/" + zipName + ": no answer within 300ms"},
		{"archive stalls", map[string]http.HandlerFunc{".zip": stall}, 0, "/v1.2.3/" + zipName + ": no data received for 300ms"},
		{"archive too slow", map[string]http.HandlerFunc{".zip": trickle}, time.Second, "downloading OpenTofu 1.2.3 took longer than 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := hangingMirror(t, f, tt.hang)
			dir := t.TempDir()
			r := fastResolver(dir, srv.URL)
			if tt.deadline > 0 {
				r.DownloadTimeout = tt.deadline
			}
			var log bytes.Buffer
			start := time.Now()
			_, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", &log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Resolve error = %v, want %q", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("failing took %s", d)
			}
			if !strings.Contains(log.String(), "Downloading OpenTofu 1.2.3 from "+srv.URL+"/v1.2.3/"+zipName) {
				t.Errorf("the log does not say what is downloaded before it fails:\n%s", log.String())
			}
			if strings.Contains(log.String(), "retrying") {
				t.Errorf("a time limit was retried:\n%s", log.String())
			}
			assertNoVersionDir(t, dir, "1.2.3")
			// The version is free again: a working mirror installs it.
			r.BaseURLs[OpenTofu] = f.srv.URL
			if _, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", nil); err != nil {
				t.Errorf("Resolve after the failure: %v", err)
			}
		})
	}
}

// reset answers the start of a large body, then resets the connection.
func reset(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nPK"))
	time.Sleep(50 * time.Millisecond)
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
}

// A 5xx answer or a reset connection is retried twice with a growing wait.
func TestDownloadRetriesTransientFailures(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	var sums, zips atomic.Int32
	srv := hangingMirror(t, f, map[string]http.HandlerFunc{
		"SHA256SUMS": func(w http.ResponseWriter, r *http.Request) {
			if sums.Add(1) <= 2 {
				http.Error(w, "busy", http.StatusBadGateway)
				return
			}
			f.srv.Config.Handler.ServeHTTP(w, r)
		},
		".zip": func(w http.ResponseWriter, r *http.Request) {
			if zips.Add(1) == 1 {
				reset(w, r)
				return
			}
			f.srv.Config.Handler.ServeHTTP(w, r)
		},
	})
	dir := t.TempDir()
	var log bytes.Buffer
	if _, err := fastResolver(dir, srv.URL).Resolve(context.Background(), OpenTofu, "1.2.3", &log); err != nil {
		t.Fatalf("Resolve: %v\n%s", err, log.String())
	}
	for _, want := range []string{"502 Bad Gateway; retrying in 10ms (attempt 2 of 3)", "502 Bad Gateway; retrying in 20ms (attempt 3 of 3)",
		"connection reset by peer; retrying in 10ms (attempt 2 of 3)"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if sums.Load() != 3 || zips.Load() != 2 {
		t.Errorf("requests: %d SHA256SUMS, %d archives; want 3 and 2", sums.Load(), zips.Load())
	}

	// Failing every time: three attempts, then the last failure.
	sums.Store(-100)
	dir = t.TempDir()
	_, err := fastResolver(dir, srv.URL).Resolve(context.Background(), OpenTofu, "1.2.3", nil)
	if err == nil || !strings.Contains(err.Error(), "502 Bad Gateway") || sums.Load() != -97 {
		t.Errorf("Resolve = %v after %d requests, want the 502 after 3", err, sums.Load()+100)
	}
	assertNoVersionDir(t, dir, "1.2.3")
}

// A job waiting for another job's download of the same version says so.
func TestResolveSaysItWaits(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), nil)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv := hangingMirror(t, f, map[string]http.HandlerFunc{".zip": func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		f.srv.Config.Handler.ServeHTTP(w, r)
	}})
	r := fastResolver(t.TempDir(), srv.URL)
	r.HeaderTimeout = 10 * time.Second
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", nil); err != nil {
			t.Errorf("first Resolve: %v", err)
		}
	})
	<-started
	var log bytes.Buffer
	wg.Go(func() {
		if _, err := r.Resolve(context.Background(), OpenTofu, "1.2.3", &log); err != nil {
			t.Errorf("second Resolve: %v", err)
		}
	})
	time.Sleep(100 * time.Millisecond) // let the second one block (only a log line depends on it)
	close(release)
	wg.Wait()
	if !strings.Contains(log.String(), "Waiting for another job finding or downloading OpenTofu 1.2.3") {
		t.Errorf("the waiting job's log:\n%s", log.String())
	}
}

// CleanDownloads removes what killed downloads left, never a download in
// progress (whose directory is locked) nor a fresh directory.
func TestCleanDownloads(t *testing.T) {
	dir := t.TempDir()
	mk := func(parts ...string) string {
		p := filepath.Join(append([]string{dir}, parts...)...)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := mk("opentofu", "1.2.3", ".download-dead")
	if unlock, err := dirlock.Lock(dead); err != nil {
		t.Fatal(err)
	} else {
		unlock() // its process died
	}
	os.WriteFile(filepath.Join(dead, "tofu_1.2.3.zip"), []byte("partial"), 0o600)
	live := mk("opentofu", "1.2.4", ".download-live")
	unlock, err := dirlock.Lock(live)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	fresh := mk("opentofu", "1.2.5", ".download-fresh") // no lock file yet
	old := mk("terraform", "1.5.7", ".download-old")
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	empty := mk("terraform", "1.0.0")
	installed := writeExecutable(t, filepath.Join(dir, "opentofu", "1.10.7", "tofu"), fakeToolScript("1.10.7"))

	removed, err := (&Resolver{ToolsDir: dir}).CleanDownloads()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dead, filepath.Dir(dead), old, filepath.Dir(old), empty} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not removed (stat: %v)", p, err)
		}
	}
	for _, p := range []string{live, fresh, installed} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if len(removed) != 5 {
		t.Errorf("removed = %v, want 5 directories", removed)
	}
}

// A page where SHA256SUMS should be, and a binary that is a symbolic
// link, are named for what they are.
func TestDownloadMessages(t *testing.T) {
	f := newFakeReleases(t)
	f.addRelease(t, OpenTofu, "1.2.3", fakeToolScript("1.2.3"), func(string) string {
		return "<!DOCTYPE html>\n<html><body>Sign in to the mirror</body></html>\n"
	})
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "tofu"}
	h.SetMode(os.ModeSymlink | 0o777)
	w, _ := zw.CreateHeader(h)
	w.Write([]byte("/bin/sh"))
	zw.Close()
	zipName := "tofu_1.2.4_" + platform() + ".zip"
	f.set("/v1.2.4/"+zipName, buf.Bytes())
	f.set("/v1.2.4/tofu_1.2.4_SHA256SUMS", []byte(sha256Hex(buf.Bytes())+"  "+zipName+"\n"))
	for version, want := range map[string]string{
		"1.2.3": `/v1.2.3/tofu_1.2.3_SHA256SUMS is not a checksums file (it starts "<!DOCTYPE html>")`,
		"1.2.4": "unpacking " + zipName + ": the archive's tofu is a symbolic link, not the binary",
	} {
		dir := t.TempDir()
		_, err := f.resolver(t, dir).Resolve(context.Background(), OpenTofu, version, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve(%s) = %v, want %q", version, err, want)
		}
		assertNoVersionDir(t, dir, version)
	}
}
