package git_test

import (
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/git"
)

// httpRepo serves r over git's smart HTTP protocol (git http-backend)
// behind basic authentication as alice with password and returns the
// repository's URL without credentials.
func httpRepo(t *testing.T, r testRepo, password string) string {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("no git-http-backend: %v", err)
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(r.path), "GIT_HTTP_EXPORT_ALL=1"}, Stderr: io.Discard}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if u, p, ok := req.BasicAuth(); !ok || u != "alice" || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(r.path)
}

// The password of a repository URL is used to clone, and kept neither in
// the clone's configuration nor in the errors Checkout and Head return.
func TestCheckoutCredentialsNotKept(t *testing.T) {
	r := newTestRepo(t)
	const password = "S3cretPassw0rd"
	plain := httpRepo(t, r, password)
	repo := strings.Replace(plain, "http://", "http://alice:"+password+"@", 1)
	dir := filepath.Join(t.TempDir(), "src")
	got, err := git.Checkout(ctx(t), repo, "main", "", dir)
	if err != nil || got.SHA != r.second {
		t.Fatalf("Checkout = %+v, %v; want %s", got, err, r.second)
	}
	config, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(config), password) {
		t.Errorf("the clone's .git/config keeps the password:\n%s", config)
	}
	// A commit of another branch is still fetched, with the credential.
	if got, err := git.Checkout(ctx(t), repo, "main", r.feature, filepath.Join(t.TempDir(), "src")); err != nil || got.SHA != r.feature {
		t.Errorf("Checkout(feature commit) = %+v, %v; want %s", got, err, r.feature)
	}
	_, err = git.Checkout(ctx(t), repo, "main", strings.Repeat("1", 40), filepath.Join(t.TempDir(), "src"))
	if err == nil || strings.Contains(err.Error(), password) || !strings.Contains(err.Error(), "not found in http://*****@") {
		t.Errorf("Checkout(unknown commit) = %v; want an error without the password, naming the repository hidden", err)
	}
	_, err = git.Head(ctx(t), repo, "nope")
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("Head(missing branch) = %v; want an error without the password", err)
	}
	_, err = git.Head(ctx(t), strings.Replace(repo, password, "wrong-"+password, 1), "main")
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("Head(wrong password) = %v; want an error without the password", err)
	}
}
