package git

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestNetEnv(t *testing.T) {
	bounded := []string{"GIT_SSH_COMMAND=" + sshCommand, "GIT_HTTP_LOW_SPEED_LIMIT=1000", "GIT_HTTP_LOW_SPEED_TIME=60"}
	tests := []struct {
		name string
		env  map[string]string
		set  map[string]bool
		want []string
	}{
		{name: "nothing set", want: bounded},
		{name: "GIT_SSH_COMMAND set", env: map[string]string{"GIT_SSH_COMMAND": "ssh -i key"}, want: bounded[1:]},
		{name: "GIT_SSH set", env: map[string]string{"GIT_SSH": "/usr/bin/plink"}, want: bounded[1:]},
		{name: "core.sshCommand configured", set: map[string]bool{"core.sshcommand": true}, want: bounded[1:]},
		{name: "http.lowSpeedTime configured", set: map[string]bool{"http.lowspeedtime": true}, want: bounded[:1]},
		{name: "GIT_HTTP_LOW_SPEED_LIMIT set", env: map[string]string{"GIT_HTTP_LOW_SPEED_LIMIT": "10"}, want: bounded[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := netEnv(func(k string) string { return tt.env[k] }, tt.set)
			if !slices.Equal(got, tt.want) {
				t.Errorf("netEnv = %q, want %q", got, tt.want)
			}
		})
	}
}

// The configuration read at start is what git gets: included files
// resolved (not named again, or git would read them again), a key without
// a value true, the process's own GIT_CONFIG_COUNT entries after (they
// win); and netEnv defers to what it sets, not to what is written later.
func TestReadConfig(t *testing.T) {
	home := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(home, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(".gitconfig", "[include]\n\tpath = more\n[core]\n\tsshCommand = ssh -i key\n[credential]\n\thelper = store\n[http]\n\tsslVerify\n")
	write("more", "[user]\n\tname = Someone\n")
	environ := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=user.name", "GIT_CONFIG_VALUE_0=Env"}
	c := readConfig(environ)
	write(".gitconfig", "[http]\n\tlowSpeedLimit = 1\n")
	if c.err != nil {
		t.Fatal(c.err)
	}
	want := []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_COUNT=5",
		"GIT_CONFIG_KEY_0=user.name", "GIT_CONFIG_VALUE_0=Someone",
		"GIT_CONFIG_KEY_1=core.sshcommand", "GIT_CONFIG_VALUE_1=ssh -i key",
		"GIT_CONFIG_KEY_2=credential.helper", "GIT_CONFIG_VALUE_2=store",
		"GIT_CONFIG_KEY_3=http.sslverify", "GIT_CONFIG_VALUE_3=true",
		"GIT_CONFIG_KEY_4=user.name", "GIT_CONFIG_VALUE_4=Env"}
	if !slices.Equal(c.env, want) || c.entries != 4 {
		t.Errorf("env = %q (%d entries), want %q (4)", c.env, c.entries, want)
	}
	if !c.set["core.sshcommand"] || c.set["http.lowspeedlimit"] {
		t.Errorf("netEnv defers to %v, want core.sshcommand only", c.set)
	}
	cmd := exec.Command("git", "config", "user.name")
	cmd.Env, cmd.Dir = append(baseEnv(environ), c.env...), "/"
	if out, err := cmd.Output(); err != nil || string(out) != "Env\n" {
		t.Errorf("git config user.name = %q, %v; want the environment's", out, err)
	}

	// What is logged at start holds no value (they may be credentials).
	var logged bytes.Buffer
	logConfig(slog.New(slog.NewTextHandler(&logged, nil)), c)
	if s := logged.String(); !strings.Contains(s, "entries=4") || strings.Contains(s, "ssh -i key") || strings.Contains(s, "store") {
		t.Errorf("logged %q", s)
	}
}
