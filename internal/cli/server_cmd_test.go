package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The configuration logged at start shows neither the database password
// (in the URL's user information or its password parameter) nor a mirror's
// credentials. The database refuses the connection, so the server stops
// right after logging it.
func TestServerConfigurationLogRedacts(t *testing.T) {
	tests := []struct {
		name, databaseURL, want string
	}{
		{"password in user information", "postgres://gantry:Pw9QzX@127.0.0.1:1/gantry?sslmode=disable", "postgres://gantry:redacted@127.0.0.1:1/gantry"},
		// PostgreSQL would split it at the first '@', other parsers at the
		// last: the whole URL is hidden, and the database refuses it.
		{"password with an @", "postgres://gantry:Pw9@QzX@127.0.0.1:1/gantry?sslmode=disable", "database_url=redacted"},
		{"password parameter", "postgres://gantry@127.0.0.1:1/gantry?sslmode=disable&password=Pw9QzX", "password=redacted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			code, _, errOut := runMain("server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--builtin-workers", "0",
				"--database-url", tt.databaseURL,
				"--opentofu-mirror", "http://mirror:hunter2@127.0.0.1:1/tofu?token=hunter2",
				"--terraform-mirror", "https://ghp_hunter2@127.0.0.1:1/terraform")
			if code == 0 {
				t.Fatalf("server started on a database that refuses connections:\n%s", errOut)
			}
			config, _, _ := strings.Cut(errOut, "\n")
			if !strings.Contains(config, "msg=configuration") {
				t.Fatalf("first line is not the configuration:\n%s", errOut)
			}
			for _, want := range []string{tt.want, "opentofu_mirror=\"http://redacted@127.0.0.1:1/tofu?token=redacted\"", "terraform_mirror=https://redacted@127.0.0.1:1/terraform"} {
				if !strings.Contains(config, want) {
					t.Errorf("configuration lacks %s:\n%s", want, config)
				}
			}
			if strings.Contains(errOut, "Pw9") || strings.Contains(errOut, "QzX") {
				t.Errorf("the log shows the database password:\n%s", errOut)
			}
			if strings.Contains(errOut, "hunter2") {
				t.Errorf("the log shows a mirror's credentials:\n%s", errOut)
			}
		})
	}
}

// A key read from GANTRY_ENCRYPTION_KEY_FILE is known to the server by its
// file: one that other users can read is warned about, by name. The
// database refuses the connection, so the server stops after that.
func TestServerKeyFileFromEnvironment(t *testing.T) {
	isolate(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GANTRY_ENCRYPTION_KEY_FILE", keyFile)
	t.Setenv("GANTRY_ENCRYPTION_KEY", "")
	code, _, errOut := runMain("server", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--builtin-workers", "0",
		"--database-url", "postgres://gantry@127.0.0.1:1/gantry?sslmode=disable")
	if code == 0 {
		t.Fatalf("server started on a database that refuses connections:\n%s", errOut)
	}
	if !strings.Contains(errOut, "the encryption key file can be read by other users") || !strings.Contains(errOut, "path="+keyFile) {
		t.Errorf("no warning naming %s:\n%s", keyFile, errOut)
	}
}

// A GANTRY_<FLAG>_FILE that cannot be read (a missing key file) is a clear
// error, not followed by the whole usage text: the command line was right.
func TestUnreadableFlagFile(t *testing.T) {
	isolate(t)
	missing := filepath.Join(t.TempDir(), "missing-key")
	t.Setenv("GANTRY_ENCRYPTION_KEY_FILE", missing)
	t.Setenv("GANTRY_ENCRYPTION_KEY", "")
	code, _, errOut := runMain("server", "--data-dir", t.TempDir())
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := "Error: GANTRY_ENCRYPTION_KEY_FILE: open " + missing + ": no such file or directory\n"; errOut != want {
		t.Errorf("stderr:\n%s\nwant only:\n%s", errOut, want)
	}
}

// gantry server refuses, before it opens anything, a subject template that
// would give every stack's token the same sub.
func TestServerRefusesSubjectTemplate(t *testing.T) {
	isolate(t)
	t.Setenv("GANTRY_TOKEN_SUBJECT_TEMPLATE", "")
	dir := t.TempDir()
	code, _, errOut := runMain("server", "--data-dir", dir, "--listen", "127.0.0.1:0", "--token-subject-template", "x:{foo}:{stackid}")
	if code == 0 || !strings.Contains(errOut, "--token-subject-template") || !strings.Contains(errOut, "unknown placeholder {foo}") {
		t.Errorf("gantry server = %d, stderr %s", code, errOut)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the refused server wrote its data directory: %v", entries)
	}
}

// Retention settings that make no sense stop the server before it writes
// anything, naming the flag (GANTRY_RUN_RETENTION sets it too).
func TestServerRefusesRetention(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--run-retention", "10m"}, "", "--run-retention must be 0 (keep every run) or at least 1h0m0s, got 10m0s"},
		{nil, "30s", "--run-retention must be 0"},
		{[]string{"--state-retention-versions", "-1"}, "", "--state-retention-versions must be 0 (keep every version) or at least 1, got -1"},
	} {
		isolate(t)
		t.Setenv("GANTRY_RUN_RETENTION", tc.env)
		dir := t.TempDir()
		code, _, errOut := runMain(append([]string{"server", "--data-dir", dir, "--listen", "127.0.0.1:0"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("gantry server %v (GANTRY_RUN_RETENTION=%q) = %d, stderr %s, want %q", tc.args, tc.env, code, errOut, tc.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the refused server wrote its data directory: %v", entries)
		}
	}
}

// A mirror that is not an http(s) URL with a host stops the server and the
// worker at start, naming the flag and the value (credentials hidden).
func TestMirrorsCheckedAtStart(t *testing.T) {
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"--opentofu-mirror", "127.0.0.1:19401/x", `--opentofu-mirror (GANTRY_OPENTOFU_MIRROR): "127.0.0.1:19401/x" is not a URL`},
		{"--opentofu-mirror", "not a url", `--opentofu-mirror (GANTRY_OPENTOFU_MIRROR): "not a url" is not an http:// or https:// URL`},
		{"--terraform-mirror", "ftp://mirror.example.com/terraform", `--terraform-mirror (GANTRY_TERRAFORM_MIRROR): "ftp://mirror.example.com/terraform" is not an http:// or https:// URL`},
		{"--terraform-mirror", "https:///terraform", `"https:///terraform" has no host`},
		{"--opentofu-mirror", "ftp://user:hunter2@mirror/x", `"ftp://redacted@mirror/x" is not an http`},
		{"--opentofu-mirror", "user:hunter2@mirror:x/y", "(the value, not shown: it may hold credentials) is not an http"},
	} {
		isolate(t)
		t.Setenv("GANTRY_TOKEN", "gpt_x")
		dir := t.TempDir()
		for _, args := range [][]string{
			{"server", "--data-dir", dir, "--listen", "127.0.0.1:0", tc.flag, tc.value},
			{"worker", "--server", "http://127.0.0.1:9", "--work-dir", dir, tc.flag, tc.value},
		} {
			code, _, errOut := runMain(args...)
			if code == 0 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "hunter2") {
				t.Errorf("gantry %s %s %q = %d, stderr %s, want %q", args[0], tc.flag, tc.value, code, errOut, tc.want)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the refused server or worker wrote its directory: %v", entries)
		}
	}
}
