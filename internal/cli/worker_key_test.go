package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-iac/gantry/internal/seal"
)

// The pool's private key can come from GANTRY_PRIVATE_KEY (the worker's
// environment, which the runs cannot read), from --private-key (warned
// about: the command line is readable) or from --private-key-file (warned
// about: the runs can read the file); not two of them. A key that does not
// parse is refused by where it came from, never quoted. The server here
// refuses the pool token, after the registration carried the key's public
// half, and the worker dropped its secrets from its environment.
func TestWorkerPrivateKeySources(t *testing.T) {
	private, public, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "pool.key")
	if err := os.WriteFile(keyFile, []byte(private+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var registered []string // the public keys the registrations carried
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			PublicKey string `json:"public_key"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		registered = append(registered, req.PublicKey)
		mu.Unlock()
		http.Error(w, `{"error":{"code":"unauthenticated","message":"bad token"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	const bad = "gantry-pool-private-v1:sEcReT!!"
	tests := []struct {
		name               string
		env                map[string]string
		args               []string
		wantErr, wantWarn  string
		wantRegisteredWith bool
	}{
		{name: "GANTRY_PRIVATE_KEY", env: map[string]string{"GANTRY_PRIVATE_KEY": private}, wantRegisteredWith: true},
		{name: "--private-key", args: []string{"--private-key", private}, wantRegisteredWith: true,
			wantWarn: "a private key given with --private-key is visible"},
		{name: "--private-key-file", args: []string{"--private-key-file", keyFile}, wantRegisteredWith: true,
			wantWarn: "secrets read from files the runs this worker executes can read too"},
		{name: "GANTRY_PRIVATE_KEY_FILE", env: map[string]string{"GANTRY_PRIVATE_KEY_FILE": keyFile}, wantRegisteredWith: true,
			wantWarn: "secrets read from files the runs this worker executes can read too"},
		{name: "both", env: map[string]string{"GANTRY_PRIVATE_KEY": private}, args: []string{"--private-key-file", keyFile},
			wantErr: "GANTRY_PRIVATE_KEY and --private-key-file cannot be combined"},
		{name: "not a key", env: map[string]string{"GANTRY_PRIVATE_KEY": bad}, wantErr: "GANTRY_PRIVATE_KEY: pool private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			t.Setenv("GANTRY_TOKEN", "gpt_not-a-known-token")
			t.Setenv("GANTRY_PRIVATE_KEY", "")
			t.Setenv("GANTRY_PRIVATE_KEY_FILE", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			mu.Lock()
			registered = nil
			mu.Unlock()
			code, _, errOut := runMain(append([]string{"worker", "--server", srv.URL, "--work-dir", t.TempDir()}, tt.args...)...)
			if code == 0 {
				t.Fatalf("worker exited 0 though the server refuses its token:\n%s", errOut)
			}
			if tt.wantErr != "" && !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("output lacks %q:\n%s", tt.wantErr, errOut)
			}
			if tt.wantWarn != "" && !strings.Contains(errOut, tt.wantWarn) {
				t.Errorf("output lacks the warning %q:\n%s", tt.wantWarn, errOut)
			}
			if tt.wantWarn == "" && (strings.Contains(errOut, "is visible to every process") || strings.Contains(errOut, "secrets read from files")) {
				t.Errorf("unexpected warning:\n%s", errOut)
			}
			if tt.wantRegisteredWith && (os.Getenv("GANTRY_TOKEN") != "" || os.Getenv("GANTRY_PRIVATE_KEY") != "") {
				t.Error("the worker left its secrets in its environment, for git to inherit")
			}
			mu.Lock()
			got := strings.Join(registered, ",")
			mu.Unlock()
			if tt.wantRegisteredWith && got != public {
				t.Errorf("registered with public keys %q, want %q", got, public)
			}
			if strings.Contains(errOut, keyFile) {
				t.Errorf("the log names the key file, for the runs to find:\n%s", errOut)
			}
			if strings.Contains(errOut, "sEcReT") || strings.Contains(errOut, strings.TrimPrefix(private, "gantry-pool-private-v1:")) {
				t.Errorf("the output shows the private key:\n%s", errOut)
			}
		})
	}
}
