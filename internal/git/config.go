package git

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The user's global git configuration (~/.gitconfig and
// $XDG_CONFIG_HOME/git/config, or the file GIT_CONFIG_GLOBAL names) is read
// once, when the process starts (LoadConfig), kept in memory and handed to
// every git command through the environment (GIT_CONFIG_COUNT,
// GIT_CONFIG_KEY_n, GIT_CONFIG_VALUE_n), with GIT_CONFIG_GLOBAL=/dev/null:
// run code runs as the worker's user and may write those files, and what it
// writes there must not reach the git commands of later runs (an
// url.<base>.insteadOf would choose the commit another stack's run
// applies; a credential.helper, core.sshCommand or
// uploadpack.packObjectsHook would run its command). The system
// configuration (/etc/gitconfig, root's) is read by git as before.
//
// Entries given so come after the repository's own configuration and
// before the -c options of safeConfig, which still win. Include
// directives are resolved when the configuration is read; conditional
// ones (includeIf) are not (the configuration is read outside any
// repository).

// userConfig is what git commands get of the user's configuration.
type userConfig struct {
	env     []string        // GIT_CONFIG_GLOBAL=/dev/null, GIT_CONFIG_COUNT...
	set     map[string]bool // which of the keys netEnv defers to are configured
	entries int             // entries read from the global configuration
	err     error           // reading it failed: git gets none of it
}

var (
	loadOnce sync.Once
	loaded   atomic.Pointer[userConfig]
)

// config returns the configuration read at the first call in the process.
func config() *userConfig {
	loadOnce.Do(func() { loaded.Store(readConfig(os.Environ())) })
	return loaded.Load()
}

// LoadConfig reads the user's git configuration if this process has not
// yet, and then logs how many entries it holds (not their values: they may
// hold credentials). Call it when the process starts, before any run: a
// change to the configuration has no effect until the process restarts.
func LoadConfig(log *slog.Logger) {
	read := false
	loadOnce.Do(func() { loaded.Store(readConfig(os.Environ())); read = true })
	if !read {
		return
	}
	logConfig(log, loaded.Load())
}

func logConfig(log *slog.Logger, c *userConfig) {
	if c.err != nil {
		log.Warn("could not read the user's git configuration: git commands run without it", "err", c.err)
		return
	}
	log.Info("read the user's git configuration once (restart to apply a change to it)", "entries", c.entries)
}

// readConfig reads the global configuration that environ (the process's
// environment) points git at, and the GIT_CONFIG_COUNT entries it sets.
func readConfig(environ []string) *userConfig {
	c := &userConfig{}
	var keys, values []string
	add := func(k, v string) { keys, values = append(keys, k), append(values, v) }

	env := baseEnv(environ)
	for _, kv := range environ {
		if strings.HasPrefix(kv, "GIT_CONFIG_GLOBAL=") {
			env = append(env, kv)
		}
	}
	// --show-scope lists every scope (a missing global file is no error):
	// only the global one is kept.
	cmd := exec.Command("git", "config", "--list", "--show-scope", "--includes", "-z")
	var errb bytes.Buffer
	cmd.Env, cmd.Dir, cmd.Stderr = env, "/", &errb
	out, err := cmd.Output()
	if err != nil {
		c.err = fmt.Errorf("git config --list: %v: %s", err, strings.TrimSpace(errb.String()))
	} else {
		fields := strings.Split(string(out), "\x00")
		for i := 0; i+1 < len(fields); i += 2 {
			if fields[i] != "global" {
				continue
			}
			k, v, hasValue := strings.Cut(fields[i+1], "\n")
			if section, _, _ := strings.Cut(k, "."); section == "include" || section == "includeif" {
				continue // already resolved; given again, git would read the file again
			}
			if !hasValue {
				v = "true" // "[core] bare": a boolean; an empty value would be false
			}
			add(k, v)
		}
		c.entries = len(keys)
	}
	// The user's own GIT_CONFIG_COUNT entries come after: they win, as before.
	get := envLookup(environ)
	if s := get("GIT_CONFIG_COUNT"); s != "" {
		n, err := strconv.Atoi(s)
		for i := 0; err == nil && i < n; i++ {
			k := get("GIT_CONFIG_KEY_" + strconv.Itoa(i))
			if k == "" {
				err = fmt.Errorf("GIT_CONFIG_KEY_%d is not set", i)
				break
			}
			add(k, get("GIT_CONFIG_VALUE_"+strconv.Itoa(i)))
		}
		if err != nil && c.err == nil {
			c.err = fmt.Errorf("GIT_CONFIG_COUNT=%s: %v", s, err)
		}
	}
	c.env = []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_COUNT=" + strconv.Itoa(len(keys))}
	for i := range keys {
		c.env = append(c.env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, keys[i]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, values[i]))
	}
	c.set = netConfigured(append(baseEnv(environ), c.env...))
	return c
}

// netConfigured returns which of the keys netEnv defers to the
// configuration git reads in env (the system's and env's) sets.
func netConfigured(env []string) map[string]bool {
	set := map[string]bool{}
	cmd := exec.Command("git", "config", "--name-only", "--get-regexp", `^(core\.sshcommand|http\.lowspeed(limit|time))$`)
	cmd.Env, cmd.Dir = env, "/"
	out, _ := cmd.Output() // exit code 1: none set
	for _, k := range strings.Fields(string(out)) {
		set[strings.ToLower(k)] = true
	}
	return set
}

// envLookup returns a getenv over environ.
func envLookup(environ []string) func(string) string {
	m := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return func(k string) string { return m[k] }
}
