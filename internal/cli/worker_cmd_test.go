package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// The warning about a pool token on the command line is for --token only,
// not for a token from GANTRY_TOKEN or GANTRY_TOKEN_FILE. (The token here
// is not a pool token, so the worker stops before it starts.)
func TestWorkerTokenWarning(t *testing.T) {
	const warning = "a pool token given with --token is visible"
	file := t.TempDir() + "/token"
	if err := os.WriteFile(file, []byte("not-a-pool-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantWarn bool
	}{
		{name: "--token", args: []string{"--token", "not-a-pool-token"}, wantWarn: true},
		{name: "GANTRY_TOKEN", env: map[string]string{"GANTRY_TOKEN": "not-a-pool-token"}},
		{name: "GANTRY_TOKEN_FILE", env: map[string]string{"GANTRY_TOKEN_FILE": file}},
		{name: "--token and GANTRY_TOKEN_FILE", env: map[string]string{"GANTRY_TOKEN_FILE": file}, args: []string{"--token", "not-a-pool-token"}, wantWarn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			t.Setenv("GANTRY_TOKEN_FILE", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, errOut := runMain(append([]string{"worker", "--server", "http://127.0.0.1:9"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, "must be a worker pool token") {
				t.Fatalf("exit %d, want 2 for a token that is not a pool token:\n%s", code, errOut)
			}
			if got := strings.Contains(errOut, warning); got != tt.wantWarn {
				t.Errorf("warning printed: %v, want %v:\n%s", got, tt.wantWarn, errOut)
			}
		})
	}
}

// `gantry worker` logs its server and mirrors without their credentials.
// The server refuses the pool token, so the worker stops after logging.
func TestWorkerLogHidesCredentials(t *testing.T) {
	isolate(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"code":"unauthenticated","message":"bad token"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	t.Setenv("GANTRY_TOKEN", "gpt_not-a-known-token")
	withCredentials := strings.Replace(srv.URL, "http://", "http://worker:hunter2@", 1)
	code, _, errOut := runMain("worker", "--server", withCredentials, "--work-dir", t.TempDir(),
		"--opentofu-mirror", "http://mirror:hunter2@127.0.0.1:1/tofu?token=hunter2",
		"--terraform-mirror", "https://ghp_hunter2@127.0.0.1:1/terraform")
	if code == 0 {
		t.Fatalf("worker exited 0 though the server refuses its token:\n%s", errOut)
	}
	for _, want := range []string{
		"server=http://redacted@" + strings.TrimPrefix(srv.URL, "http://"),
		`opentofu_mirror="http://redacted@127.0.0.1:1/tofu?token=redacted"`,
		"terraform_mirror=https://redacted@127.0.0.1:1/terraform",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("log lacks %s:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "hunter2") {
		t.Errorf("log shows a credential:\n%s", errOut)
	}
}
