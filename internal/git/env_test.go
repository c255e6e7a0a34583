package git

import (
	"strings"
	"testing"
)

// git gets what reaching a remote needs, not the worker's secrets, nor a
// variable pointing it at another repository.
func TestGitEnv(t *testing.T) {
	t.Setenv("GANTRY_TOKEN", "gpt_secret")
	t.Setenv("GIT_DIR", "/tmp/elsewhere")
	t.Setenv("GIT_SSH_COMMAND", "ssh -i key")
	t.Setenv("GIT_CONFIG_COUNT", "1")
	t.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	t.Setenv("GIT_CONFIG_VALUE_0", "X-Test: 1")
	t.Setenv("GIT_CONFIG_GLOBAL", "/tmp/some.gitconfig")
	ReloadConfig(t)
	env := "\n" + strings.Join(gitEnv(), "\n") + "\n"
	for _, want := range []string{"PATH=", "GIT_SSH_COMMAND=ssh -i key", "=http.extraHeader\n", "GIT_TERMINAL_PROMPT=0", "\nGIT_CONFIG_GLOBAL=/dev/null\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("git's environment lacks %s", want)
		}
	}
	for _, not := range []string{"gpt_secret", "GIT_DIR=", "some.gitconfig"} {
		if strings.Contains(env, not) {
			t.Errorf("git's environment has %s", not)
		}
	}
}
