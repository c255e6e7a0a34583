package worker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// backendRE finds a backend or cloud block in HCL source.
var backendRE = regexp.MustCompile(`(?m)^\s*(backend\s+"([^"]+)"|cloud)\s*\{`)

// blockCommentRE finds /* */ comments, which may hide a backend block.
var blockCommentRE = regexp.MustCompile(`(?s)/\*.*?\*/`)

// checkNoBackend refuses code that declares its own backend while the
// stack's state is managed by Gantry: in the native syntax (.tf, .tofu)
// and in the JSON syntax (.tf.json, .tofu.json), which OpenTofu reads too;
// and a committed file of the name Gantry writes its backend to.
func checkNoBackend(root string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return fail("reading the project root: %v", err)
	}
	// The name is reserved: the run writes that file (a link so named is
	// refused earlier, by resolveProjectRoot).
	if _, err := os.Lstat(filepath.Join(root, overrideFile)); err == nil {
		return fail("%s is in the repository: Gantry writes this file during the run (the name is reserved); rename it in the repository", overrideFile)
	}
	for _, e := range entries {
		name := e.Name()
		native := strings.HasSuffix(name, ".tf") || strings.HasSuffix(name, ".tofu")
		jsonSyntax := strings.HasSuffix(name, ".tf.json") || strings.HasSuffix(name, ".tofu.json")
		if e.IsDir() || !(native || jsonSyntax) {
			continue
		}
		src, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return fail("reading %s: %v", name, err)
		}
		what := ""
		if native {
			if m := backendRE.FindSubmatch(blockCommentRE.ReplaceAll(src, nil)); m != nil {
				what = "a cloud block"
				if len(m[2]) > 0 {
					what = fmt.Sprintf("a backend %q block", m[2])
				}
			}
		} else if what, err = jsonBackend(src); err != nil {
			return fail("reading %s: it is not valid JSON (%v), so it cannot be checked for a backend block", name, err)
		}
		if what != "" {
			return fail("this stack's state is managed by Gantry, but %s declares %s: remove it, or turn managed state off for the stack", name, what)
		}
	}
	return nil
}

// jsonBackend finds a backend or cloud block in a file of OpenTofu's JSON
// syntax: a "backend" or "cloud" property of the top-level "terraform"
// object, or of one of the objects of a "terraform" array (a block may be
// written either way, and a name may repeat: every occurrence counts). It
// says what it found as checkNoBackend names it, "" for nothing.
func jsonBackend(src []byte) (string, error) {
	found := ""
	err := eachProperty(src, func(key string, val json.RawMessage) error {
		if key != "terraform" {
			return nil
		}
		return eachBody(val, func(body json.RawMessage) error {
			return eachProperty(body, func(key string, val json.RawMessage) error {
				switch {
				case found != "":
				case key == "cloud":
					found = "a cloud block"
				case key == "backend":
					found = "a backend block"
					if label := firstKey(val); label != "" {
						found = fmt.Sprintf("a backend %q block", label)
					}
				}
				return nil
			})
		})
	})
	return found, err
}

// firstKey is the first property name of val, or of its first element if
// it is an array: the label of a block ("s3" in {"s3": {...}}).
func firstKey(val json.RawMessage) string {
	key := ""
	_ = eachBody(val, func(body json.RawMessage) error {
		return eachProperty(body, func(k string, _ json.RawMessage) error {
			if key == "" {
				key = k
			}
			return nil
		})
	})
	return key
}

// eachBody calls fn with val, or with each element of val if it is an
// array.
func eachBody(val json.RawMessage, fn func(json.RawMessage) error) error {
	var list []json.RawMessage
	if json.Unmarshal(val, &list) != nil {
		return fn(val)
	}
	for _, v := range list {
		if err := fn(v); err != nil {
			return err
		}
	}
	return nil
}

// eachProperty calls fn with every property of the JSON object data, in
// order and repeated names included. A value that is not an object has
// none; data that is not JSON is an error.
func eachProperty(data []byte, fn func(key string, val json.RawMessage) error) error {
	if !json.Valid(data) {
		var v any
		return json.Unmarshal(data, &v) // the reason
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return err
		}
		if err := fn(key, val); err != nil {
			return err
		}
	}
	return nil
}

const overrideFile = "gantry_backend_override.tf"

// planFile is the saved plan, in the project root.
const planFile = "gantry.tfplan"

// writeBackendOverride points the configuration at the server's state
// backend. Neither the addresses nor the credential are written: they are
// in the environment (TF_HTTP_ADDRESS, TF_HTTP_LOCK_ADDRESS,
// TF_HTTP_UNLOCK_ADDRESS, TF_HTTP_PASSWORD), so that a saved plan, which
// keeps the backend's configuration, is applied through the server the
// applying worker reaches (another replica when the one that planned is
// gone), not the address it was planned with.
func writeBackendOverride(root string) error {
	src := `# Written by Gantry: this stack's state is managed by the Gantry server
# (where it is and the credential come from the environment: TF_HTTP_*).
terraform {
  backend "http" {
    lock_method   = "LOCK"
    unlock_method = "UNLOCK"
    username      = "gantry"
  }
}
`
	return os.WriteFile(filepath.Join(root, overrideFile), []byte(src), 0o600)
}

// inheritedEnv is the worker's environment minus what belongs to Gantry or
// the tool (a run must never see the server's own secrets).
func inheritedEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "GANTRY_") || strings.HasPrefix(name, "TF_") || strings.HasPrefix(name, "SPACELIFT_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// buildEnv is the run's environment for the read stages: inherited, then
// Gantry's, then the stack's variables.
func buildEnv(job *workerapi.Job, cliConfig, toolDir, stateAddress string) []string {
	return buildStageEnv(job, cliConfig, toolDir, stateAddress, false)
}

// buildStageEnv is the run's environment for the read (write false) or
// the write stage: inherited, then Gantry's (the run's facts also under
// Spacelift's TF_VAR_spacelift_* names), then the stack's variables, of
// which ro_/wo_ ones reach only their stage, without the prefix.
func buildStageEnv(job *workerapi.Job, cliConfig, toolDir, stateAddress string, write bool) []string {
	env, _ := stageEnvironment(job, cliConfig, toolDir, stateAddress, write)
	return env
}

// stageEnvironment is buildStageEnv, and the run's variables whose values
// interpolation changed (see interpolate), as they end up.
func stageEnvironment(job *workerapi.Job, cliConfig, toolDir, stateAddress string, write bool) ([]string, []stageVar) {
	env := inheritedEnv()
	// The resolved tool comes first on PATH, so hooks and tasks run the same
	// binary as the run.
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + toolDir + string(os.PathListSeparator) + kv[len("PATH="):]
		}
	}
	set := map[string]string{
		"TF_IN_AUTOMATION":       "1",
		"TF_INPUT":               "0",
		"CHECKPOINT_DISABLE":     "1",
		"TF_CLI_CONFIG_FILE":     cliConfig,
		"GANTRY_RUN_ID":          job.RunID,
		"GANTRY_STACK_ID":        job.StackID,
		"GANTRY_SPACE_ID":        job.SpaceID,
		"GANTRY_RUN_TYPE":        job.RunType,
		"GANTRY_COMMIT_SHA":      job.CommitSHA,
		"TF_VAR_gantry_run_id":   job.RunID,
		"TF_VAR_gantry_stack_id": job.StackID,
		"TF_VAR_gantry_space_id": job.SpaceID,
		"TF_VAR_gantry_run_type": job.RunType,
	}
	addRunVars(set, job, filepath.Dir(cliConfig))
	if job.OIDCToken != "" {
		set["GANTRY_OIDC_TOKEN"] = job.OIDCToken
		set["SPACELIFT_OIDC_TOKEN"] = job.OIDCToken // configurations written for Spacelift
		set["GANTRY_OIDC_TOKEN_FILE"] = oidcTokenFile(filepath.Dir(cliConfig))
	}
	if job.ManagedState {
		set["TF_HTTP_ADDRESS"] = stateAddress
		set["TF_HTTP_LOCK_ADDRESS"] = stateAddress
		set["TF_HTTP_UNLOCK_ADDRESS"] = stateAddress
		set["TF_HTTP_PASSWORD"] = job.StateToken
		// Defaults the run's own variables may change (they come after).
		maps.Copy(set, stateRetryEnv())
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	vars := job.Env
	if len(job.CredentialFiles) > 0 {
		// The integrations' variables may name their files.
		dir := credentialsDir(filepath.Dir(cliConfig))
		vars = make([]workerapi.EnvVar, len(job.Env))
		for i, v := range job.Env {
			if v.Rank == -1 {
				v.Value = strings.ReplaceAll(v.Value, "{credentials_dir}", dir)
			}
			vars[i] = v
		}
	}
	picked, changedNames := interpolate(env, pickStageVars(vars, write))
	var changed []stageVar
	for _, v := range picked {
		if job.ManagedState && stateBackendVars[v.name] {
			continue // Gantry's state backend settings win over the run's variables
		}
		env = append(env, v.name+"="+v.value)
		if slices.Contains(changedNames, v.name) {
			changed = append(changed, v)
		}
	}
	return env, changed
}

// State requests that fail for a network error or a 5xx answer (a server
// restarting, its database down) are retried by the tool's http backend,
// waiting stateRetryWaitMin, twice that, and so on up to stateRetryWaitMax
// between attempts. Its own default (2 retries over 3 s) gives up on a
// server outage the worker itself survives: the state the apply made would
// be left in errored.tfstate.
const (
	stateRetryWaitMin = time.Second
	stateRetryWaitMax = 5 * time.Second
)

// stateRetryEnv sets the http backend's retries so that a state request
// outlasts an outage as long as the worker's own reports do
// (reportRetryFor): TF_HTTP_RETRY_MAX, TF_HTTP_RETRY_WAIT_MIN and
// TF_HTTP_RETRY_WAIT_MAX (in seconds), which OpenTofu and Terraform read
// when the backend configuration does not set retry_max, retry_wait_min
// and retry_wait_max (Gantry's override does not).
func stateRetryEnv() map[string]string {
	n, waited := 0, time.Duration(0)
	for wait := stateRetryWaitMin; waited < reportRetryFor; wait = min(wait*2, stateRetryWaitMax) {
		waited += wait
		n++
	}
	return map[string]string{
		"TF_HTTP_RETRY_MAX":      strconv.Itoa(n),
		"TF_HTTP_RETRY_WAIT_MIN": strconv.Itoa(int(stateRetryWaitMin / time.Second)),
		"TF_HTTP_RETRY_WAIT_MAX": strconv.Itoa(int(stateRetryWaitMax / time.Second)),
	}
}

// stateBackendVars are the variables of OpenTofu's http backend that the
// managed state sets: the addresses and TF_HTTP_PASSWORD in the
// environment, the others in the backend override (where an unset update
// method means POST). On a stack
// with managed state the run's own variables of these names are ignored.
var stateBackendVars = map[string]bool{
	"TF_HTTP_ADDRESS":        true,
	"TF_HTTP_UPDATE_METHOD":  true,
	"TF_HTTP_LOCK_ADDRESS":   true,
	"TF_HTTP_LOCK_METHOD":    true,
	"TF_HTTP_UNLOCK_ADDRESS": true,
	"TF_HTTP_UNLOCK_METHOD":  true,
	"TF_HTTP_USERNAME":       true,
	"TF_HTTP_PASSWORD":       true,
}

// cliArgsVars are the variables OpenTofu (and Terraform) read extra
// arguments of `init` from: TF_CLI_ARGS for every command, TF_CLI_ARGS_init
// for init alone.
var cliArgsVars = []string{"TF_CLI_ARGS", "TF_CLI_ARGS_init"}

// checkEnvNUL refuses a run with a variable whose value holds a NUL
// character, which no process environment can carry, naming it (the API
// refuses such values; one stored before it did may remain).
func checkEnvNUL(job *workerapi.Job) error {
	for _, v := range job.Env {
		if strings.IndexByte(v.Value, 0) >= 0 {
			return fail("the environment variable %s holds a NUL character, which no process environment can carry: set it again without one", v.Name)
		}
	}
	return nil
}

// checkBackendArgs refuses a run of a stack with managed state whose
// TF_CLI_ARGS or TF_CLI_ARGS_init, as the run gets them in either stage
// (from the stack, a context, in their ro_/wo_ forms), passes -backend-config
// or -backend to init: they would point the run's state, and its state
// token, at another backend, or keep it off Gantry's. The refusal names the
// variable, never its value.
func checkBackendArgs(job *workerapi.Job) error {
	if !job.ManagedState {
		return nil
	}
	for _, write := range []bool{false, true} {
		// As the tool gets them: interpolated (a value may take the flag
		// from another variable).
		env, _ := stageEnvironment(job, "", "", "", write)
		for _, kv := range env {
			name, value, _ := strings.Cut(kv, "=")
			if !slices.Contains(cliArgsVars, name) {
				continue
			}
			flag := backendFlag(value)
			if flag == "" {
				continue
			}
			source := name // the variable it came from, maybe in a stage form
			for _, v := range job.Env {
				if v.Value == value && (v.Name == name || v.Name == readOnlyPrefix+name || v.Name == writeOnlyPrefix+name) {
					source = v.Name
					break
				}
			}
			return fail("this stack's state is managed by Gantry, but the variable %s passes %s to init, which would take the run's state "+
				"elsewhere: remove the flag from it (Gantry sets the backend), or turn managed state off for the stack", source, flag)
		}
	}
	return nil
}

// backendFlag returns the -backend-config or -backend flag that the value
// of TF_CLI_ARGS gives OpenTofu, "" if none. OpenTofu splits the value into
// words as a shell does (github.com/mattn/go-shellwords); here quotes and
// backslashes are dropped and shell operators taken as spaces first, so no
// quoting can hide a flag (a quoted space may make a false alarm, never a
// miss).
func backendFlag(value string) string {
	plain := strings.Map(func(r rune) rune {
		switch r {
		case '"', '\'', '\\', '`':
			return -1
		case ';', '&', '|', '<', '>', '(', ')':
			return ' '
		}
		return r
	}, value)
	for _, word := range strings.Fields(plain) {
		name, _, _ := strings.Cut(word, "=")
		if !strings.HasPrefix(name, "-") {
			continue
		}
		// -flag or --flag, as Go's flag package reads them.
		switch flag := strings.TrimPrefix(name[1:], "-"); flag {
		case "backend-config", "backend":
			return "-" + flag
		}
	}
	return ""
}

// ignoredStateVars are the names of the job's variables (with their ro_ or
// wo_ prefix, if any) that managed state overrides, sorted, each once.
func ignoredStateVars(job *workerapi.Job) []string {
	if !job.ManagedState {
		return nil
	}
	var out []string
	for _, v := range job.Env {
		name := v.Name
		if n, ok := strings.CutPrefix(name, readOnlyPrefix); ok {
			name = n
		} else if n, ok := strings.CutPrefix(name, writeOnlyPrefix); ok {
			name = n
		}
		if stateBackendVars[name] && !slices.Contains(out, v.Name) {
			out = append(out, v.Name)
		}
	}
	slices.Sort(out)
	return out
}

// packWorkspace writes a gzipped tar of dir to w, leaving out provider
// binaries (init restores them from the lock file) and git metadata. Each
// file named in want (by its slash-separated path in dir) must be packed
// with that SHA-256, as a regular file: what goes into the tar is checked
// as it is read, so a file changed by its path after a check is not
// packed instead (errChanged(name) is the error then).
func packWorkspace(dir string, w io.Writer, want map[string][]byte, errChanged func(name string) error) error {
	packed := map[string]bool{}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (d.Name() == ".git" || strings.HasSuffix(rel, ".terraform/providers")) {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		sum, checked := want[rel]
		if checked && !info.Mode().IsRegular() {
			return errChanged(rel)
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(io.MultiWriter(tw, h), f)
			f.Close()
			if err == nil && checked && !bytes.Equal(h.Sum(nil), sum) {
				err = errChanged(rel)
			}
			packed[rel] = checked
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	for name := range want {
		if !packed[name] {
			return errChanged(name)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// resolveProjectRoot is the directory of the project root rel inside the
// checkout src, with every symbolic link along the way resolved. A root
// that is, or passes through, a link leading out of the checkout is
// refused: the tool, the hooks and the files Gantry writes there (backend
// override, .terraform, the plan) must stay in the job's directory. Links
// that stay inside the checkout are followed.
func resolveProjectRoot(src, rel string) (string, error) {
	base, err := filepath.EvalSymlinks(src)
	if err != nil {
		return "", fail("reading the checkout: %v", err)
	}
	root, err := filepath.EvalSymlinks(filepath.Join(base, filepath.FromSlash(rel)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fail("project root %q does not exist in the repository", rel)
		}
		return "", fail("project root %q: %v", rel, err)
	}
	if root != base && !strings.HasPrefix(root, base+string(filepath.Separator)) {
		return "", fail("project root %q leads outside the repository through a symbolic link: a project root must be a directory inside the repository", rel)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return "", fail("project root %q does not exist in the repository", rel)
	}
	// What Gantry and the tool write in the root must not be a link either.
	for _, name := range []string{overrideFile, planFile, ".terraform"} {
		if fi, err := os.Lstat(filepath.Join(root, name)); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return "", fail("%s in the project root is a symbolic link: Gantry writes it during the run; remove it from the repository", name)
		}
	}
	return root, nil
}

// noSymlinkBetween checks that no directory from dir down to sub (both
// inside dir) is a symbolic link, so an entry cannot be written through one.
func noSymlinkBetween(dir, sub string) error {
	rel, err := filepath.Rel(dir, sub)
	if err != nil || rel == "." {
		return err
	}
	p := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link", p)
		}
	}
	return nil
}

// unpackWorkspace extracts a packed workspace into dir, refusing entries
// that would land outside it. It returns the SHA-256 of each regular file
// as extracted, by its slash-separated path in dir.
func unpackWorkspace(data []byte, dir string) (map[string][]byte, error) {
	dir = filepath.Clean(dir)
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	sums := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return sums, nil
		}
		if err != nil {
			return nil, err
		}
		name := filepath.FromSlash(hdr.Name)
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) || strings.Contains(name, string(filepath.Separator)+".."+string(filepath.Separator)) {
			return nil, fmt.Errorf("workspace entry %q is outside the workspace", hdr.Name)
		}
		target := filepath.Join(dir, name)
		if err := noSymlinkBetween(dir, filepath.Dir(target)); err != nil {
			return nil, fmt.Errorf("workspace entry %q: %w", hdr.Name, err)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return nil, fmt.Errorf("workspace entry %q would be created through a symbolic link", hdr.Name)
			}
			if err := os.MkdirAll(target, 0o700); err != nil {
				return nil, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return nil, err
			}
			if fi, err := os.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				return nil, fmt.Errorf("workspace entry %q would be written through a symbolic link", hdr.Name)
			}
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fs.FileMode(hdr.Mode)&0o755|0o600)
			if err != nil {
				return nil, err
			}
			h := sha256.New()
			_, err = io.Copy(io.MultiWriter(f, h), tr)
			sums[path.Clean(hdr.Name)] = h.Sum(nil)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, err
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(hdr.Linkname) {
				// Absolute links (e.g. to a provider cache) are left out;
				// init recreates what it needs.
				continue
			}
			// A relative link is restored as the checkout had it, even one
			// leading out of the workspace (kubeconfig -> ../kube/config,
			// where mounted files land): git keeps such links, and the plan
			// ran with it. Nothing is ever written through a link here: an
			// entry below one, or over one, is refused above and below.
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return nil, err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return nil, err
			}
		}
	}
}
