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
	t.Setenv("GIT_CONFIG_KEY_0", "http.extraHeader")
	env := strings.Join(gitEnv(), "\n")
	for _, want := range []string{"PATH=", "GIT_SSH_COMMAND=ssh -i key", "GIT_CONFIG_KEY_0=", "GIT_TERMINAL_PROMPT=0"} {
		if !strings.Contains(env, want) {
			t.Errorf("git's environment lacks %s", want)
		}
	}
	for _, not := range []string{"gpt_secret", "GIT_DIR="} {
		if strings.Contains(env, not) {
			t.Errorf("git's environment has %s", not)
		}
	}
}
