package e2e

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// releaseMirror serves OpenTofu releases laid out like the official ones
// (/v<ver>/tofu_<ver>_<os>_<arch>.zip and /v<ver>/tofu_<ver>_SHA256SUMS),
// with the real tofu binary inside; badSums versions publish a wrong sum.
func releaseMirror(t *testing.T, good, badSums string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	bin, err := os.ReadFile(tofuBin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	hdr := &zip.FileHeader{Name: "tofu", Method: zip.Deflate}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()
	sum := sha256.Sum256(archive)
	platform := runtime.GOOS + "_" + runtime.GOARCH
	var zipHits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range []string{good, badSums} {
			zipName := fmt.Sprintf("tofu_%s_%s.zip", v, platform)
			switch r.URL.Path {
			case "/v" + v + "/" + zipName:
				zipHits.Add(1)
				_, _ = w.Write(archive)
				return
			case fmt.Sprintf("/v%s/tofu_%s_SHA256SUMS", v, v):
				s := hex.EncodeToString(sum[:])
				if v == badSums {
					s = strings.Repeat("0", 64)
				}
				fmt.Fprintf(w, "%s  tofu_%s_darwin_arm64.zip\n%s  %s\n", strings.Repeat("1", 64), v, s, zipName)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &zipHits
}

// A stack pinned to a tool version that is not installed gets it from the
// (mirrored) release site, checked against SHA256SUMS; a wrong checksum or
// an unknown version fails the run with the reason.
func TestToolVersionDownload(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	mirror, zipHits := releaseMirror(t, "1.99.0", "1.98.0")
	tools := t.TempDir()
	s := StartServer(t, ServerConfig{Args: []string{"--opentofu-mirror", mirror.URL, "--tools-dir", tools}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("pinned")})

	s.CreateStack(t, "pinned", repo.URL, "--autodeploy", "--tool-version", "1.99.0")
	r := s.WaitRun(t, s.Deploy(t, "pinned").ID, "FINISHED")
	logs := s.Logs(t, "pinned", r.ID)
	for _, want := range []string{"Downloading", "1.99.0", "Apply complete"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	installed := filepath.Join(tools, "opentofu", "1.99.0", "tofu")
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("downloaded tool not installed at %s: %v", installed, err)
	}
	// A second run uses the installed copy.
	s.WaitRun(t, s.Deploy(t, "pinned").ID, "FINISHED")
	if n := zipHits.Load(); n != 1 {
		t.Errorf("release archive downloaded %d times, want once", n)
	}

	s.CreateStack(t, "badsum", repo.URL, "--autodeploy", "--tool-version", "1.98.0")
	r = s.WaitRun(t, s.Deploy(t, "badsum").ID, "FAILED")
	if !strings.Contains(strings.ToLower(r.Reason), "sha") {
		t.Errorf("checksum mismatch reason = %q, want it to mention the SHA-256 check", r.Reason)
	}
	if _, err := os.Stat(filepath.Join(tools, "opentofu", "1.98.0", "tofu")); err == nil {
		t.Error("a binary with a wrong checksum was installed")
	}

	s.CreateStack(t, "unknown", repo.URL, "--autodeploy", "--tool-version", "9.9.9")
	r = s.WaitRun(t, s.Deploy(t, "unknown").ID, "FAILED")
	if !strings.Contains(r.Reason, "9.9.9") || !strings.Contains(r.Reason, "not found") {
		t.Errorf("unknown version reason = %q, want it to name the version and say not found", r.Reason)
	}
}

// A relative --tools-dir, on the server and on a worker, names a
// directory in the process's working directory: the tool it downloads
// there is started from a run's own directory all the same.
func TestRelativeToolsDir(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	mirror, _ := releaseMirror(t, "1.99.0", "1.98.0")
	dir := t.TempDir()
	s := StartServer(t, ServerConfig{Dir: dir, Args: []string{"--opentofu-mirror", mirror.URL, "--tools-dir", "tools"}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("relative")})
	s.CreateStack(t, "builtin", repo.URL, "--autodeploy", "--tool-version", "1.99.0")
	s.WaitRun(t, s.Deploy(t, "builtin").ID, "FINISHED")
	if _, err := os.Stat(filepath.Join(dir, "tools", "opentofu", "1.99.0", "tofu")); err != nil {
		t.Errorf("the server's tool is not in <its working directory>/tools: %v", err)
	}

	var pool poolCreated
	s.MustJSON(t, &pool, "workerpool", "create", "--id", "rel", "--space", "root")
	w := s.StartWorker(t, "r1", pool.Token, "--work-dir", "work", "--tools-dir", "wtools", "--opentofu-mirror", mirror.URL)
	s.workerID(t, "rel", "r1")
	s.CreateStack(t, "private", repo.URL, "--autodeploy", "--tool-version", "1.99.0", "--worker-pool", "rel")
	s.WaitRun(t, s.Deploy(t, "private").ID, "FINISHED")
	if _, err := os.Stat(filepath.Join(filepath.Dir(w.logPath), "wtools", "opentofu", "1.99.0", "tofu")); err != nil {
		t.Errorf("the worker's tool is not in <its working directory>/wtools: %v", err)
	}
}

// Stacks may use Terraform instead of OpenTofu where it is installed.
func TestTerraformStack(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	tf, err := exec.LookPath("terraform")
	if err != nil {
		t.Skip("terraform is not installed on this machine")
	}
	s := StartServer(t, ServerConfig{Env: []string{"PATH=" + filepath.Dir(tofuBin) + string(os.PathListSeparator) + filepath.Dir(tf) + string(os.PathListSeparator) + os.Getenv("PATH")}})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("tf")})
	s.CreateStack(t, "tf", repo.URL, "--autodeploy", "--tool", "terraform")
	r := s.WaitRun(t, s.Deploy(t, "tf").ID, "FINISHED")
	logs := s.Logs(t, "tf", r.ID)
	if !strings.Contains(logs, "$ terraform plan") || !strings.Contains(logs, "Apply complete") {
		t.Errorf("run did not use terraform:\n%s", logs)
	}
	if out := s.Outputs(t, "tf"); out["value"].Value != "tf" {
		t.Errorf("outputs = %+v", out)
	}
}

// A run waiting for confirmation applies with the tool and version that
// made its plan, even after the stack was switched to Terraform (whose
// apply could not read OpenTofu's plan file, or is not installed); the
// log says which binary each job used, and the run shows it.
func TestApplyKeepsThePlansTool(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("kept")})
	s.CreateStack(t, "kept", repo.URL)
	r := s.WaitRun(t, s.Deploy(t, "kept").ID, "UNCONFIRMED")
	s.MustGantry(t, "stack", "update", "--id", "kept", "--tool", "terraform")
	s.MustGantry(t, "stack", "confirm", "--id", "kept", "--run", r.ID)
	r = s.WaitRun(t, r.ID, "FINISHED")
	logs := s.Logs(t, "kept", r.ID)
	if n := strings.Count(logs, "Using OpenTofu "+r.ToolVersion+" ("); n != 2 || r.ToolVersion == "" {
		t.Errorf("the log says %d times which OpenTofu %q it uses, want 2 (plan and apply job):\n%s", n, r.ToolVersion, logs)
	}
	if !strings.Contains(logs, "Apply complete") {
		t.Errorf("no apply:\n%s", logs)
	}
	if shown := s.ShowRun(t, r.ID); shown.Tool != "opentofu" || shown.ToolVersion == "" {
		t.Errorf("run show: tool %q %q, want opentofu and its version", shown.Tool, shown.ToolVersion)
	}
}
