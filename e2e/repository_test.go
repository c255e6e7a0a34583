package e2e

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

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// serveHTTP serves repo over git's smart HTTP protocol (git http-backend)
// to user with password only, and returns its URL without credentials.
func serveHTTP(t *testing.T, repo *Repo, user, password string) string {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("no git-http-backend: %v", err)
	}
	h := &cgi.Handler{Path: backend, Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(repo.Dir), "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(repo.Dir)
}

// A password in a stack's repository URL is used to clone, and shown to
// nobody: not in the run's log, the stack, the audit trail or the server's
// log; a read-only key sees the URL with it hidden.
func TestRepositoryCredentialHidden(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	const password = "S3cretPassw0rd"
	plain := serveHTTP(t, repo, "alice", password)
	withCreds := strings.Replace(plain, "http://", "http://alice:"+password+"@", 1)
	shown := strings.Replace(plain, "http://", "http://*****@", 1)

	st := s.CreateStack(t, "creds", withCreds)
	if st.Repository != shown {
		t.Fatalf("stack create answered repository %q, want %q", st.Repository, shown)
	}
	r := s.StartRun(t, "preview", "creds")
	s.WaitRun(t, r.ID, "FINISHED")

	var reader struct {
		Token string `json:"token"`
	}
	s.MustJSON(t, &reader, "apikey", "create", "--name", "reader")
	s.MustGantry(t, "role", "bind", "--role", "space-reader", "--apikey", "reader")
	logs := s.MustGantry(t, "--token", reader.Token, "stack", "logs", "--id", "creds", "--run", r.ID)
	if want := "Cloning " + shown + " (branch main)"; !strings.Contains(logs, want) {
		t.Errorf("the run's log does not say %q:\n%s", want, logs)
	}
	var got apiv1.Stack
	s.MustJSON(t, &got, "--token", reader.Token, "stack", "show", "--id", "creds")
	if got.Repository != shown {
		t.Errorf("stack show: repository %q, want %q", got.Repository, shown)
	}
	// A read-modify-write of the repository as shown keeps the credential.
	s.MustJSON(t, &got, "stack", "update", "--id", "creds", "--repository", shown, "--description", "rewritten")
	r2 := s.StartRun(t, "preview", "creds")
	s.WaitRun(t, r2.ID, "FINISHED")
	// Shown with ***** elsewhere, it is refused.
	if res := s.Gantry(t, "stack", "update", "--id", "creds", "--repository", "http://*****@evil.invalid/infra.git"); res.Code == 0 ||
		!strings.Contains(res.Stderr, "in place of its credential") {
		t.Errorf("a URL with ***** for another host was taken: %s", res)
	}

	everything := logs + s.MustGantry(t, "stack", "show", "--id", "creds", "-o", "json") +
		s.MustGantry(t, "stack", "list", "-o", "json") +
		s.MustGantry(t, "audit", "list", "-o", "json") +
		s.MustGantry(t, "stack", "logs", "--id", "creds", "--run", r2.ID) + s.Log()
	if strings.Contains(everything, password) {
		t.Errorf("the password shows in the logs, the stack, the audit trail or the server's log")
	}
}
