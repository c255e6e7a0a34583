package worker

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// writeFiles writes name -> content under dir, making directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckNoBackend(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string // substring; empty: no error
	}{
		{
			name:  "no backend",
			files: map[string]string{"main.tf": "terraform {\n  required_version = \">= 1.6\"\n}\nresource \"terraform_data\" \"x\" {}\n"},
		},
		{
			name:  "no configuration files",
			files: map[string]string{"README.md": "backend \"s3\" {\n"},
		},
		{
			name:    "s3 backend",
			files:   map[string]string{"main.tf": "resource \"terraform_data\" \"x\" {}\n", "backend.tf": "terraform {\n  backend \"s3\" {\n    bucket = \"b\"\n  }\n}\n"},
			wantErr: `backend.tf declares a backend "s3" block`,
		},
		{
			name:    "backend without space before the brace",
			files:   map[string]string{"main.tf": "terraform {\n\tbackend \"gcs\"{\n\t}\n}\n"},
			wantErr: `main.tf declares a backend "gcs" block`,
		},
		{
			name:    "cloud block",
			files:   map[string]string{"main.tf": "terraform {\n  cloud {\n    organization = \"o\"\n  }\n}\n"},
			wantErr: "main.tf declares a cloud block",
		},
		{
			name:    "backend in a .tofu file",
			files:   map[string]string{"main.tofu": "terraform {\n  backend \"local\" {\n  }\n}\n"},
			wantErr: `main.tofu declares a backend "local" block`,
		},
		{
			name:  "hash comment",
			files: map[string]string{"main.tf": "terraform {\n  # backend \"s3\" {\n  #   bucket = \"b\"\n  # }\n}\n"},
		},
		{
			name:  "slash comment",
			files: map[string]string{"main.tf": "terraform {\n  // backend \"s3\" {}\n  // cloud {}\n}\n"},
		},
		{
			name:  "backend in a subdirectory (a child module) is ignored",
			files: map[string]string{"main.tf": "module \"m\" { source = \"./m\" }\n", "m/main.tf": "terraform {\n  backend \"s3\" {\n  }\n}\n"},
		},
		{
			name:  "the word backend in a string",
			files: map[string]string{"main.tf": "locals {\n  note = \"backend \\\"s3\\\" is not used\"\n}\n"},
		},
		{
			name:    "backend in a .tf.json file",
			files:   map[string]string{"main.tf.json": `{"terraform": {"backend": {"local": {"path": "/tmp/elsewhere.tfstate"}}}}`},
			wantErr: `main.tf.json declares a backend "local" block`,
		},
		{
			name:    "backend in a .tofu.json file, terraform as an array",
			files:   map[string]string{"main.tofu.json": `{"terraform": [{"required_version": ">= 1.6"}, {"backend": [{"s3": {"bucket": "b"}}]}]}`},
			wantErr: `main.tofu.json declares a backend "s3" block`,
		},
		{
			name:    "backend in a JSON override file, after a repeated terraform",
			files:   map[string]string{"backend_override.tf.json": `{"terraform": {"required_version": ">= 1.6"}, "terraform": {"backend": {"http": {}}}}`},
			wantErr: `backend_override.tf.json declares a backend "http" block`,
		},
		{
			name:    "cloud block in JSON",
			files:   map[string]string{"main.tf.json": `{"//": "comment", "terraform": {"cloud": {"organization": "o"}}}`},
			wantErr: "main.tf.json declares a cloud block",
		},
		{
			name: "JSON without a backend",
			files: map[string]string{"main.tf.json": `{"terraform": {"required_version": ">= 1.6"}, "resource": {"terraform_data": {"backend": {"input": "cloud"}}},
				"locals": {"backend": "s3", "cloud": 1e400}}`},
		},
		{
			name:    "JSON that is not JSON",
			files:   map[string]string{"main.tf.json": `{"terraform": {"backend": `},
			wantErr: "main.tf.json: it is not valid JSON",
		},
		{
			name:    "a committed gantry_backend_override.tf without a backend",
			files:   map[string]string{"main.tf": "# code\n", "gantry_backend_override.tf": "locals {\n  x = 1\n}\n"},
			wantErr: "gantry_backend_override.tf is in the repository: Gantry writes this file",
		},
		{
			name:    "a committed gantry_backend_override.tf with a backend",
			files:   map[string]string{"gantry_backend_override.tf": "terraform {\n  backend \"s3\" {}\n}\n"},
			wantErr: "gantry_backend_override.tf is in the repository: Gantry writes this file",
		},
		{
			name:  "other JSON files are not configuration",
			files: map[string]string{"package.json": `{"terraform": {"backend": {"s3": {}}}}`, "main.json": `{"terraform": {"backend": {"s3": {}}}}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			err := checkNoBackend(dir)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkNoBackend = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("checkNoBackend = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("checkNoBackend = %q, want it to contain %q", err, tt.wantErr)
			}
			var f *failure
			if err != nil && !errors.As(err, &f) {
				t.Errorf("checkNoBackend error %T is not a failure (its reason would not reach the run)", err)
			}
		})
	}
}

// A backend commented out with a block comment is not a backend.
func TestCheckNoBackendBlockComment(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.tf": "terraform {\n/*\n  backend \"s3\" {\n    bucket = \"old\"\n  }\n*/\n}\n"})
	if err := checkNoBackend(dir); err != nil {
		t.Errorf("checkNoBackend = %v, want nil: the backend block is inside /* */", err)
	}
}

func TestCheckNoBackendMissingRoot(t *testing.T) {
	if err := checkNoBackend(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("checkNoBackend of a missing directory = nil, want an error")
	}
}

func TestWriteBackendOverride(t *testing.T) {
	dir := t.TempDir()
	if err := writeBackendOverride(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "gantry_backend_override.tf")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("override mode = %v, want 0600", perm)
	}
	// Writing again (an apply job re-points a restored workspace saved
	// with addresses in it) replaces the older override.
	writeFiles(t, dir, map[string]string{overrideFile: `address = "http://gone:8080/stale"`})
	if err := writeBackendOverride(dir); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	src := string(raw)
	for _, want := range []string{`backend "http" {`, `lock_method   = "LOCK"`, `unlock_method = "UNLOCK"`, `username      = "gantry"`} {
		if !strings.Contains(src, want) {
			t.Errorf("override lacks %q:\n%s", want, src)
		}
	}
	// The addresses and the credential are in the environment: a saved
	// plan keeps the backend's configuration, and must not keep the
	// address of the server that planned.
	if strings.Contains(src, "address =") || strings.Contains(src, "http://") || strings.Contains(src, "password") || strings.Contains(src, "stale") {
		t.Errorf("override holds an address, a password or old content:\n%s", src)
	}
}

// envMap reads an environment list the way exec does: the last entry of a
// name wins.
func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestBuildEnv(t *testing.T) {
	t.Setenv("GANTRY_ADMIN_TOKEN", "gnt_server_admin_secret")
	t.Setenv("GANTRY_ENCRYPTION_KEY", "0123")
	t.Setenv("TF_LOG", "TRACE")
	t.Setenv("TF_HTTP_PASSWORD", "server-own-password")
	t.Setenv("TF_VAR_leak", "x")
	t.Setenv("SPACELIFT_API_KEY_SECRET", "sl")
	t.Setenv("KEEP_ME", "kept")
	t.Setenv("PATH", "/usr/bin:/bin")

	job := &workerapi.Job{
		RunID: "run-1", StackID: "stk", SpaceID: "root", RunType: "TRACKED", CommitSHA: strings.Repeat("a", 40),
		Token: "gjt_run-1_jobsecret", StateToken: "gst_run-1_statesecret", ManagedState: true,
		Env: []workerapi.EnvVar{{Name: "AWS_REGION", Value: "eu-west-1"}, {Name: "DB_PASSWORD", Value: "pw-1234", Secret: true}, {Name: "TF_LOG", Value: "DEBUG"}},
	}
	env := buildEnv(job, "/job/cli.tfrc", "/tools/opentofu/1.10.7", "http://gantry:8080/api/v1/stacks/s/tfstate")
	m := envMap(env)

	for _, name := range []string{"GANTRY_ADMIN_TOKEN", "GANTRY_ENCRYPTION_KEY", "TF_VAR_leak", "SPACELIFT_API_KEY_SECRET"} {
		if v, ok := m[name]; ok {
			t.Errorf("%s=%q reached the run's environment", name, v)
		}
	}
	for _, kv := range env {
		_, v, _ := strings.Cut(kv, "=")
		if v == "gnt_server_admin_secret" || v == "server-own-password" || v == "TRACE" {
			t.Errorf("the worker's own variable leaked: %q", kv)
		}
		if strings.Contains(kv, job.Token) {
			t.Errorf("the job token is in the environment: %q", kv)
		}
	}
	want := map[string]string{
		"KEEP_ME":                "kept",
		"TF_IN_AUTOMATION":       "1",
		"TF_INPUT":               "0",
		"CHECKPOINT_DISABLE":     "1",
		"TF_CLI_CONFIG_FILE":     "/job/cli.tfrc",
		"GANTRY_RUN_ID":          "run-1",
		"GANTRY_STACK_ID":        "stk",
		"GANTRY_SPACE_ID":        "root",
		"GANTRY_RUN_TYPE":        "TRACKED",
		"GANTRY_COMMIT_SHA":      job.CommitSHA,
		"TF_VAR_gantry_run_id":   "run-1",
		"TF_VAR_gantry_stack_id": "stk",
		"TF_VAR_gantry_space_id": "root",
		"TF_VAR_gantry_run_type": "TRACKED",
		"TF_HTTP_PASSWORD":       job.StateToken,
		"AWS_REGION":             "eu-west-1",
		"DB_PASSWORD":            "pw-1234",
		"TF_LOG":                 "DEBUG", // the stack's own TF_ variables are passed
		"PATH":                   "/tools/opentofu/1.10.7" + string(os.PathListSeparator) + "/usr/bin:/bin",
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}

	t.Run("a reserved variable stored before it was reserved does not override Gantry's", func(t *testing.T) {
		j := *job
		j.OIDCToken = "the.run.token"
		j.Env = append(slices.Clone(job.Env), workerapi.EnvVar{Name: "SPACELIFT_OIDC_TOKEN", Value: "forged"},
			workerapi.EnvVar{Name: "ro_GANTRY_RUN_ID", Value: "forged"})
		m := envMap(buildEnv(&j, "/job/cli.tfrc", "/tools", "http://gantry:8080/api/v1/stacks/s/tfstate"))
		if m["SPACELIFT_OIDC_TOKEN"] != j.OIDCToken || m["GANTRY_RUN_ID"] != "run-1" {
			t.Errorf("SPACELIFT_OIDC_TOKEN = %q, GANTRY_RUN_ID = %q; want Gantry's", m["SPACELIFT_OIDC_TOKEN"], m["GANTRY_RUN_ID"])
		}
	})

	t.Run("unmanaged state has no state credential", func(t *testing.T) {
		j := *job
		j.ManagedState = false
		m := envMap(buildEnv(&j, "/job/cli.tfrc", "/tools", "http://gantry:8080/api/v1/stacks/s/tfstate"))
		if v, ok := m["TF_HTTP_PASSWORD"]; ok {
			t.Errorf("TF_HTTP_PASSWORD = %q without managed state", v)
		}
	})
}

// On a stack with managed state, the run's own variables for the state
// backend (stack, context, ro_/wo_ forms) do not replace Gantry's; with
// managed state off they are the run's.
func TestBuildEnvStateBackendVars(t *testing.T) {
	job := &workerapi.Job{
		RunID: "run-1", StackID: "stk", RunType: "TRACKED", StateToken: "gst_run-1_statesecret", ManagedState: true,
		Env: []workerapi.EnvVar{
			{Name: "TF_HTTP_PASSWORD", Value: "user-password", Secret: true},
			{Name: "TF_HTTP_USERNAME", Value: "user", Rank: 1},
			{Name: "wo_TF_HTTP_PASSWORD", Value: "user-write-password", Rank: 1},
			{Name: "ro_TF_HTTP_UPDATE_METHOD", Value: "PUT", Rank: 1},
			{Name: "TF_HTTP_RETRY_MAX", Value: "5"},
			{Name: "TF_LOG", Value: "DEBUG"},
		},
	}
	for _, write := range []bool{false, true} {
		env := buildStageEnv(job, "/job/cli.tfrc", "/tools", "http://replica-2:8080/api/v1/stacks/stk/tfstate", write)
		m := envMap(env)
		if m["TF_HTTP_PASSWORD"] != job.StateToken {
			t.Errorf("write %v: TF_HTTP_PASSWORD = %q, want the state token", write, m["TF_HTTP_PASSWORD"])
		}
		// The addresses are in the environment, not in the saved plan: the
		// apply goes through the server this worker reaches.
		for _, name := range []string{"TF_HTTP_ADDRESS", "TF_HTTP_LOCK_ADDRESS", "TF_HTTP_UNLOCK_ADDRESS"} {
			if m[name] != "http://replica-2:8080/api/v1/stacks/stk/tfstate" {
				t.Errorf("write %v: %s = %q, want the state's address at this worker's server", write, name, m[name])
			}
		}
		for _, name := range []string{"TF_HTTP_USERNAME", "TF_HTTP_UPDATE_METHOD"} {
			if v, ok := m[name]; ok {
				t.Errorf("write %v: %s = %q, want it left out", write, name, v)
			}
		}
		if m["TF_HTTP_RETRY_MAX"] != "5" || m["TF_LOG"] != "DEBUG" {
			t.Errorf("write %v: other TF_ variables changed: %v", write, m)
		}
		for _, kv := range env {
			if strings.Contains(kv, "user-password") || strings.Contains(kv, "user-write-password") {
				t.Errorf("write %v: the user's password is in the environment: %q", write, kv)
			}
		}
	}
	want := []string{"TF_HTTP_PASSWORD", "TF_HTTP_USERNAME", "ro_TF_HTTP_UPDATE_METHOD", "wo_TF_HTTP_PASSWORD"}
	if got := ignoredStateVars(job); !slices.Equal(got, want) {
		t.Errorf("ignoredStateVars = %q, want %q", got, want)
	}

	unmanaged := *job
	unmanaged.ManagedState = false
	if m := envMap(buildStageEnv(&unmanaged, "/job/cli.tfrc", "/tools", "http://replica-2:8080/api/v1/stacks/stk/tfstate", true)); m["TF_HTTP_PASSWORD"] != "user-password" || m["TF_HTTP_USERNAME"] != "user" {
		t.Errorf("without managed state the run's TF_HTTP_ variables are not used: %v", m)
	}
	if got := ignoredStateVars(&unmanaged); got != nil {
		t.Errorf("ignoredStateVars without managed state = %q", got)
	}
}

// tarEntry describes one entry of a crafted archive.
type tarEntry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func craftTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarNames lists the entry names of a packed workspace.
func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, hdr.Name)
	}
	return names
}

func TestPackUnpackWorkspace(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"main.tf":                                      "resource \"terraform_data\" \"x\" {}\n",
		"modules/net/main.tf":                          "# module\n",
		"gantry.tfplan":                                "binary plan \x00\x01",
		".terraform.lock.hcl":                          "# lock\n",
		".terraform/modules/modules.json":              "{}",
		".terraform/terraform.tfstate":                 "{\"backend\":{}}",
		".terraform/providers/registry/x/terraform-pr": "PROVIDER BINARY",
		".git/HEAD":                                    "ref: refs/heads/main\n",
		".git/objects/ab/cdef":                         "object",
	})
	if err := os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("main.tf", filepath.Join(src, "link.tf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../modules/net", filepath.Join(src, "empty", "net")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/share/provider-cache", filepath.Join(src, "abs-link")); err != nil {
		t.Fatal(err)
	}
	// Committed links leading out of the checkout: to where mounted files
	// land (the workspace root's kube/config), or anywhere (unused).
	if err := os.Symlink("../kube/config", filepath.Join(src, "kubeconfig")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../etc", filepath.Join(src, "modules", "etcrel")); err != nil {
		t.Fatal(err)
	}

	planSum := sha256.Sum256([]byte("binary plan \x00\x01"))
	changed := func(name string) error { return fmt.Errorf("%s changed", name) }
	var packed bytes.Buffer
	err := packWorkspace(src, &packed, map[string][]byte{"gantry.tfplan": planSum[:]}, changed)
	data := packed.Bytes()
	if err != nil {
		t.Fatalf("packWorkspace: %v", err)
	}
	for _, name := range tarNames(t, data) {
		if name == ".git" || strings.HasPrefix(name, ".git/") || strings.HasPrefix(name, ".terraform/providers") {
			t.Errorf("packed %q, which must be left out", name)
		}
	}

	dst := filepath.Join(t.TempDir(), "src")
	sums, err := unpackWorkspace(data, dst)
	if err != nil {
		t.Fatalf("unpackWorkspace: %v", err)
	}
	if !bytes.Equal(sums["gantry.tfplan"], planSum[:]) || sums["modules/net/main.tf"] == nil {
		t.Errorf("unpackWorkspace sums = %x", sums)
	}
	for _, name := range []string{"main.tf", "modules/net/main.tf", "gantry.tfplan", ".terraform.lock.hcl", ".terraform/modules/modules.json", ".terraform/terraform.tfstate", "run.sh"} {
		want, _ := os.ReadFile(filepath.Join(src, name))
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after round trip = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{".git", ".terraform/providers", "abs-link"} {
		if _, err := os.Lstat(filepath.Join(dst, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists after the round trip (err %v), want it left out", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh lost its executable bit: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not restored: %v", err)
	}
	for link, target := range map[string]string{"link.tf": "main.tf", "empty/net": "../modules/net",
		"kubeconfig": "../kube/config", "modules/etcrel": "../../../../../../../etc"} {
		got, err := os.Readlink(filepath.Join(dst, link))
		if err != nil || got != target {
			t.Errorf("symlink %s -> %q, %v; want -> %q", link, got, err, target)
		}
	}
	if got, err := os.ReadFile(filepath.Join(dst, "empty", "net", "main.tf")); err != nil || string(got) != "# module\n" {
		t.Errorf("reading through the restored symlink = %q, %v", got, err)
	}

	// A file checked while packed must be packed as it was when its sum
	// was taken, as a regular file.
	if err := packWorkspace(src, io.Discard, map[string][]byte{"main.tf": planSum[:]}, changed); err == nil || err.Error() != "main.tf changed" {
		t.Errorf("packWorkspace of a changed file = %v, want main.tf changed", err)
	}
	if err := packWorkspace(src, io.Discard, map[string][]byte{"link.tf": planSum[:]}, changed); err == nil || err.Error() != "link.tf changed" {
		t.Errorf("packWorkspace of a file replaced by a link = %v, want link.tf changed", err)
	}
	if err := packWorkspace(src, io.Discard, map[string][]byte{"gone.tfplan": planSum[:]}, changed); err == nil || err.Error() != "gone.tfplan changed" {
		t.Errorf("packWorkspace of a file gone = %v, want gone.tfplan changed", err)
	}
}

func TestUnpackWorkspaceRefusesEscapes(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
	}{
		{"dot-dot file", []tarEntry{{name: "../evil", body: "x", typ: tar.TypeReg}}},
		{"nested dot-dot file", []tarEntry{{name: "a/../../evil", body: "x", typ: tar.TypeReg}}},
		{"dot-dot directory", []tarEntry{{name: "../evil", typ: tar.TypeDir, mode: 0o755}}},
		{"dot-dot symlink", []tarEntry{{name: "../evil", link: "x", typ: tar.TypeSymlink}}},
		{"absolute path", []tarEntry{{name: "/tmp/evil-" + strconv.Itoa(os.Getpid()), body: "x", typ: tar.TypeReg}}},
		{"write through a symlink leading out", []tarEntry{
			{name: "escape", link: "../outside", typ: tar.TypeSymlink},
			{name: "escape/evil", body: "x", typ: tar.TypeReg},
		}},
		{"overwrite a symlink leading out", []tarEntry{
			{name: "escape", link: "../outside/evil", typ: tar.TypeSymlink},
			{name: "escape", body: "x", typ: tar.TypeReg},
		}},
		{"write through a symlink to an outer directory", []tarEntry{
			{name: "etcrel", link: "../../../../../../../" + "tmp", typ: tar.TypeSymlink},
			{name: "etcrel/evil-" + strconv.Itoa(os.Getpid()), body: "x", typ: tar.TypeReg},
		}},
		{"directory through a symlink leading out", []tarEntry{
			{name: "escape", link: "../outside", typ: tar.TypeSymlink},
			{name: "escape", typ: tar.TypeDir, mode: 0o755},
			{name: "escape/evil", body: "x", typ: tar.TypeReg},
		}},
		{"write through a chain of symlinks", []tarEntry{
			{name: "a", link: "b", typ: tar.TypeSymlink},
			{name: "b", link: "../outside", typ: tar.TypeSymlink},
			{name: "a/evil", body: "x", typ: tar.TypeReg},
		}},
		{"nested directory through a symlink", []tarEntry{
			{name: "escape", link: "../outside", typ: tar.TypeSymlink},
			{name: "escape/sub/evil", typ: tar.TypeDir, mode: 0o755},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "ws", "src")
			outside := filepath.Join(base, "ws", "outside")
			if err := os.MkdirAll(outside, 0o700); err != nil {
				t.Fatal(err)
			}
			_, err := unpackWorkspace(craftTar(t, tt.entries), dst)
			if err == nil {
				t.Errorf("unpackWorkspace accepted an archive whose entries leave the workspace")
			}
			var escaped []string
			_ = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == "evil" {
					escaped = append(escaped, p)
				}
				return nil
			})
			if abs := tt.entries[0].name; filepath.IsAbs(abs) {
				if _, err := os.Lstat(abs); err == nil {
					escaped = append(escaped, abs)
					os.Remove(abs)
				}
			}
			for _, p := range escaped {
				if rel, _ := filepath.Rel(dst, p); rel == ".." || strings.HasPrefix(rel, "../") {
					t.Errorf("a file was written outside the workspace: %s", p)
				}
			}
		})
	}
}

func TestUnpackWorkspaceRejectsGarbage(t *testing.T) {
	if _, err := unpackWorkspace([]byte("not a gzip stream"), t.TempDir()); err == nil {
		t.Error("unpackWorkspace of garbage = nil, want an error")
	}
}

func TestPackWorkspaceSkipsOnlyProviderDirs(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"sub/.terraform/providers/p":  "binary",
		"sub/.terraform/modules/m.tf": "module",
		"providers/keep.tf":           "kept",
	})
	var packed bytes.Buffer
	err := packWorkspace(src, &packed, nil, nil)
	data := packed.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, data)
	for _, want := range []string{"sub/.terraform/modules/m.tf", "providers/keep.tf"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not packed; entries %v", want, names)
		}
	}
	for _, n := range names {
		if strings.Contains(n, ".terraform/providers") {
			t.Errorf("packed %s", n)
		}
	}
}

func TestBackendFlag(t *testing.T) {
	tests := []struct{ value, want string }{
		{"", ""},
		{"-upgrade -no-color", ""},
		{"-backend-config=address=http://elsewhere", "-backend-config"},
		{"-upgrade --backend-config=key=x", "-backend-config"},
		{"-backend-config backend.hcl", "-backend-config"},
		{"-backend=false", "-backend"},
		{"--backend=0", "-backend"},
		{`"-backend-config=address=http://x"`, "-backend-config"},
		{`'-back'"end"-config=address=x`, "-backend-config"},
		{`-var=a\ -backend-config=x`, "-backend-config"},
		{"-upgrade;-backend-config=x", "-backend-config"}, // a false alarm at worst
		{"-var=name=my-backend-config", ""},
		{"-var-file=backend.tfvars", ""},
		{"backend-config=x", ""},
		{"---backend=false", ""}, // not a flag Go's flag package reads
	}
	for _, tt := range tests {
		if got := backendFlag(tt.value); got != tt.want {
			t.Errorf("backendFlag(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

// The check looks at what the run gets: a variable shadowed by one of a
// higher-precedence source does not count, and without managed state
// nothing does.
func TestCheckBackendArgs(t *testing.T) {
	bad := workerapi.EnvVar{Name: "TF_CLI_ARGS_init", Value: "-backend-config=address=http://elsewhere", Rank: 2}
	tests := []struct {
		name    string
		managed bool
		env     []workerapi.EnvVar
		want    string // substring of the failure; empty: none
	}{
		{"managed", true, []workerapi.EnvVar{bad}, "variable TF_CLI_ARGS_init passes -backend-config"},
		{"not managed", false, []workerapi.EnvVar{bad}, ""},
		{"shadowed by the stack's own", true, []workerapi.EnvVar{bad, {Name: "TF_CLI_ARGS_init", Value: "-upgrade"}}, ""},
		{"write stage only", true, []workerapi.EnvVar{{Name: "wo_TF_CLI_ARGS", Value: "-backend=false"}}, "variable wo_TF_CLI_ARGS passes -backend"},
		{"another command's", true, []workerapi.EnvVar{{Name: "TF_CLI_ARGS_plan", Value: "-backend-config=x"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkBackendArgs(&workerapi.Job{ManagedState: tt.managed, Env: tt.env})
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("checkBackendArgs = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("checkBackendArgs = %v, want an error containing %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "http://elsewhere"):
				t.Errorf("checkBackendArgs shows the value: %v", err)
			}
		})
	}
}

// With managed state, the tool's http backend retries a failed state
// request (a server restarting, its database down) for at least as long
// as the worker's own reports survive an outage (reportRetryFor): its
// default, 2 retries over 3 s, gave up on the state an apply had made. The
// run's own TF_HTTP_RETRY_* variables still win; without managed state
// nothing is set.
func TestBuildEnvStateRetries(t *testing.T) {
	job := &workerapi.Job{RunID: "run-1", StackID: "stk", RunType: "TRACKED", StateToken: "gst_run-1_s", ManagedState: true}
	for _, write := range []bool{false, true} {
		m := envMap(buildStageEnv(job, "/job/cli.tfrc", "/tools", "http://srv/api/v1/stacks/stk/tfstate", write))
		retries, err1 := strconv.Atoi(m["TF_HTTP_RETRY_MAX"])
		lo, err2 := strconv.Atoi(m["TF_HTTP_RETRY_WAIT_MIN"])
		hi, err3 := strconv.Atoi(m["TF_HTTP_RETRY_WAIT_MAX"])
		if err := errors.Join(err1, err2, err3); err != nil || lo < 1 || hi < lo {
			t.Fatalf("write %v: TF_HTTP_RETRY_* = %q, %q, %q (%v)", write, m["TF_HTTP_RETRY_MAX"], m["TF_HTTP_RETRY_WAIT_MIN"], m["TF_HTTP_RETRY_WAIT_MAX"], err)
		}
		// The backend's client (go-retryablehttp) waits min·2^i, at most
		// max, before retry i+1.
		var waited time.Duration
		for i := range retries {
			waited += min(time.Duration(lo)*time.Second<<i, time.Duration(hi)*time.Second)
		}
		if got := [3]int{retries, lo, hi}; reportRetryFor == time.Minute && got != [3]int{14, 1, 5} {
			t.Errorf("write %v: retries, wait min, wait max = %v; docs/state.md says 14, 1, 5", write, got)
		}
		if waited < reportRetryFor || waited > 2*reportRetryFor {
			t.Errorf("write %v: %d retries wait %s in all, want about the %s the worker's reports retry", write, retries, waited, reportRetryFor)
		}
	}
	own := *job
	own.Env = []workerapi.EnvVar{{Name: "TF_HTTP_RETRY_MAX", Value: "0"}, {Name: "TF_HTTP_RETRY_WAIT_MAX", Value: "1"}}
	env := buildStageEnv(&own, "/job/cli.tfrc", "/tools", "http://srv/api/v1/stacks/stk/tfstate", true)
	if m := envMap(env); m["TF_HTTP_RETRY_MAX"] != "0" || m["TF_HTTP_RETRY_WAIT_MAX"] != "1" {
		t.Errorf("the run's own retry settings were replaced: %v", m)
	}
	unmanaged := *job
	unmanaged.ManagedState = false
	for _, kv := range buildStageEnv(&unmanaged, "/job/cli.tfrc", "/tools", "", true) {
		if strings.HasPrefix(kv, "TF_HTTP_RETRY_") {
			t.Errorf("%s set without managed state", kv)
		}
	}
}

// A variable holding NUL (stored before the API refused it) fails the run
// naming the variable, not with exec's anonymous error; its value is not
// shown.
func TestCheckEnvNUL(t *testing.T) {
	if err := checkEnvNUL(&workerapi.Job{Env: []workerapi.EnvVar{{Name: "A", Value: "plain"}}}); err != nil {
		t.Errorf("checkEnvNUL without NUL = %v", err)
	}
	err := checkEnvNUL(&workerapi.Job{Env: []workerapi.EnvVar{{Name: "A", Value: "x"}, {Name: "TOKEN", Value: "hunter2\x00", Secret: true}}})
	if err == nil || !strings.Contains(err.Error(), "variable TOKEN holds a NUL") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("checkEnvNUL = %v, want a failure naming TOKEN", err)
	}
}
