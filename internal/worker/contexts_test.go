package worker

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// TestJobStageVariables checks Spacelift's ro_/wo_ prefixes: ro_X reaches
// init and plan as X, wo_X reaches only apply as X, and a prefixed
// variable wins over a plain one of the same name in its stage.
func TestJobStageVariables(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Env = append(job.Env,
		workerapi.EnvVar{Name: "TOKEN", Value: "plain"},
		workerapi.EnvVar{Name: "ro_TOKEN", Value: "read-token"},
		workerapi.EnvVar{Name: "wo_TOKEN", Value: "write-token-secret", Secret: true},
		workerapi.EnvVar{Name: "ro_ONLY_READ", Value: "r"},
		workerapi.EnvVar{Name: "wo_ONLY_WRITE", Value: "w"},
		workerapi.EnvVar{Name: "wo_GANTRY_RUN_ID", Value: "spoofed"},
	)
	job.Hooks.BeforeApply = []string{`env > "$RECORD/before_apply.env"`}
	job.Hooks.BeforePlan = []string{`env > "$RECORD/before_plan.env"`}
	fx.proto.next = "apply"
	fx.worker.execute(context.Background(), job, 0)
	if len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
		t.Fatalf("Finish = %+v; log:\n%s", fx.proto.finishes, fx.proto.log(t, 0))
	}
	for _, stage := range []struct {
		cmd                string
		token, read, write string
	}{
		{"init", "read-token", "r", ""},
		{"before_plan", "read-token", "r", ""},
		{"plan", "read-token", "r", ""},
		{"before_apply", "write-token-secret", "", "w"},
		{"apply", "write-token-secret", "", "w"},
	} {
		env := fx.env(t, stage.cmd)
		if env["TOKEN"] != stage.token || env["ONLY_READ"] != stage.read || env["ONLY_WRITE"] != stage.write {
			t.Errorf("%s: TOKEN=%q ONLY_READ=%q ONLY_WRITE=%q, want %q %q %q", stage.cmd,
				env["TOKEN"], env["ONLY_READ"], env["ONLY_WRITE"], stage.token, stage.read, stage.write)
		}
		for k := range env {
			if strings.HasPrefix(k, "ro_") || strings.HasPrefix(k, "wo_") {
				t.Errorf("%s: the prefixed name %s reached the tool", stage.cmd, k)
			}
		}
		if env["GANTRY_RUN_ID"] != job.RunID {
			t.Errorf("%s: GANTRY_RUN_ID = %q, a wo_ variable overrode it", stage.cmd, env["GANTRY_RUN_ID"])
		}
	}
	if log := fx.proto.log(t, 0); strings.Contains(log, "write-token-secret") {
		t.Errorf("a secret wo_ value is in the log")
	}
}

func TestJobSpaceliftVariables(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.StackLabels = []string{"prod", "team:net"}
	job.ProjectRoot = ""
	job.AccountName, job.RunTrigger, job.RunState = "gantry.example.com", "user::alice", "PREPARING"
	fx.proto.next = "done"
	fx.worker.execute(context.Background(), job, 0)
	env := fx.env(t, "plan")
	for name, want := range map[string]string{
		"run_id": job.RunID, "stack_id": "stk", "space_id": "root", "run_type": "TRACKED",
		"commit_sha": fx.head, "commit_branch": "main", "repository": fx.repo,
		"stack_labels": "prod,team:net", "stack_labels_list": `["prod","team:net"]`,
		"account_name": "gantry.example.com", "run_trigger": "user::alice", "run_state": "PREPARING", "local_preview": "false",
	} {
		for _, prefix := range []string{"TF_VAR_gantry_", "TF_VAR_spacelift_"} {
			if got := env[prefix+name]; got != want {
				t.Errorf("%s%s = %q, want %q", prefix, name, got, want)
			}
		}
	}
	root := env["TF_VAR_spacelift_workspace_root"]
	if root == "" || env["GANTRY_WORKSPACE_ROOT"] != root || !strings.HasPrefix(root, fx.work) {
		t.Errorf("workspace root %q / %q, want the job directory under %s", root, env["GANTRY_WORKSPACE_ROOT"], fx.work)
	}
}

// Without the server's public host (an older server, or no --public-url),
// the account name is the host the worker reaches the server at.
func TestJobAccountNameFallback(t *testing.T) {
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	fx.proto.next = "done"
	fx.worker.execute(context.Background(), job, 0)
	u, err := url.Parse(fx.worker.cfg.ServerURL)
	if got := fx.env(t, "plan")["TF_VAR_spacelift_account_name"]; err != nil || got == "" || got != u.Host {
		t.Errorf("TF_VAR_spacelift_account_name = %q, want %q", got, u.Host)
	}
}

func TestJobMountedFiles(t *testing.T) {
	fx := newJobFixture(t, map[string]string{"main.tf": "resource \"terraform_data\" \"x\" {}\n", "link": "x"})
	job := fx.job("plan")
	secretJSON := "{\n  \"private_key\": \"-----BEGIN KEY-----abcdefgh\",\n  \"client\": \"svc@example.com\"\n}\n"
	job.Files = []workerapi.File{
		{Path: "src/extra.auto.tfvars", Content: []byte("region = \"eu\"\n")},
		{Path: "creds/key.json", Content: []byte(secretJSON), Secret: true},
		{Path: "src/main.tf", Content: []byte("# overridden by a mounted file\nresource \"terraform_data\" \"x\" {}\n")},
	}
	// The hooks see the files where the paths say, and print the secret.
	job.Hooks.BeforeInit = []string{
		`test -f extra.auto.tfvars && grep -q overridden main.tf && test -f "$GANTRY_WORKSPACE_ROOT/creds/key.json"`,
		`cat "$TF_VAR_spacelift_workspace_root/creds/key.json"`,
		`grep private_key "$GANTRY_WORKSPACE_ROOT/creds/key.json"`,
	}
	fx.proto.next = "save"
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	log := p.log(t, 0)
	if p.handoffs != 1 {
		t.Fatalf("handoffs = %d, finishes %+v; log:\n%s", p.handoffs, p.finishes, log)
	}
	for _, leak := range []string{"-----BEGIN KEY-----abcdefgh", "svc@example.com"} {
		if strings.Contains(log, leak) {
			t.Errorf("the secret file's content %q is in the log:\n%s", leak, log)
		}
	}
	if !strings.Contains(log, "Mounted secret file creds/key.json") {
		t.Errorf("log lacks the mount line:\n%s", log)
	}
	// The masked content keeps its trailing newline: the next hook's line
	// starts a line of its own.
	if !strings.Contains(log, "*****\n[gantry] Hook before_init: grep private_key") {
		t.Errorf("the masked file content swallowed its newline:\n%s", log)
	}
	// The saved workspace holds no mounted file (secret or not).
	for _, n := range tarNames(t, p.artifacts["workspace"]) {
		if n == "extra.auto.tfvars" {
			t.Errorf("the saved workspace holds the mounted file %s", n)
		}
	}
	// The apply job mounts them again.
	apply := fx.job("apply")
	apply.Files = job.Files
	apply.Hooks.BeforeApply = []string{`test -f extra.auto.tfvars && grep -q overridden main.tf`}
	apply.LogOffset = int64(len(log))
	fx.worker.execute(context.Background(), apply, 0)
	if len(p.finishes) != 1 || !p.finishes[0].OK {
		t.Errorf("apply Finish = %+v; log:\n%s", p.finishes, p.log(t, 0))
	}
}

func TestWriteMountedRefusesEscapes(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "src"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "src", "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "target"), filepath.Join(root, "src", "file-link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../x", "/etc/x", "src/../../x", "src/out/x", "src/.git/config", "", "a\\..\\x"} {
		if err := writeMounted(root, workerapi.File{Path: p, Content: []byte("x")}); err == nil {
			t.Errorf("%q was written", p)
		}
	}
	if left, _ := os.ReadDir(outside); len(left) != 0 {
		t.Errorf("files written outside the workspace: %v", left)
	}
	// A symbolic link at the file's own place is replaced, not followed.
	if err := writeMounted(root, workerapi.File{Path: "src/file-link", Content: []byte("mine")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "target")); err == nil {
		t.Error("the write followed the symbolic link")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "src", "file-link")); string(b) != "mine" {
		t.Errorf("content = %q", b)
	}
}

func TestJobPhaseHooks(t *testing.T) {
	t.Run("destroy", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		job := fx.job("plan")
		job.RunType = "DESTROY"
		job.Hooks.BeforeApply = []string{"echo hook-before-apply"}
		job.Hooks.BeforeDestroy = []string{"echo hook-before-destroy"}
		job.Hooks.AfterDestroy = []string{"echo hook-after-destroy"}
		job.Hooks.AfterApply = []string{"echo hook-after-apply"}
		job.Hooks.AfterRun = []string{`echo "hook-after-run $TF_VAR_spacelift_final_run_state $TF_VAR_gantry_final_run_state"`}
		fx.worker.execute(context.Background(), job, 0)
		assertOrder(t, fx.proto.log(t, 0), "hook-before-apply\n", "hook-before-destroy\n", "Apply complete!",
			"hook-after-destroy\n", "hook-after-apply\n", "hook-after-run FINISHED FINISHED\n")
	})
	t.Run("perform", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		job := fx.job("task")
		job.RunType, job.Command = "TASK", "echo the-task; exit 3"
		job.Hooks.BeforePerform = []string{"echo hook-before-perform"}
		job.Hooks.AfterPerform = []string{"echo hook-after-perform"}
		job.Hooks.AfterRun = []string{`echo "hook-after-run $TF_VAR_spacelift_final_run_state"`}
		fx.worker.execute(context.Background(), job, 0)
		log := fx.proto.log(t, 0)
		assertOrder(t, log, "hook-before-perform\n", "the-task\n", "hook-after-run FAILED\n")
		if strings.Contains(log, "hook-after-perform\n") {
			t.Error("after_perform ran although the task failed")
		}
	})
	t.Run("after_run waits for the apply job", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		job := fx.job("plan")
		fx.proto.next = "save"
		job.Hooks.AfterRun = []string{`echo "hook-after-run $TF_VAR_spacelift_final_run_state"`, "exit 1", "echo never"}
		fx.worker.execute(context.Background(), job, 0)
		if log := fx.proto.log(t, 0); strings.Contains(log, "hook-after-run") || fx.proto.handoffs != 1 {
			t.Fatalf("after_run ran before the run was over, or the hand-off was lost:\n%s", log)
		}
		apply := fx.job("apply")
		apply.Hooks = job.Hooks
		apply.LogOffset = int64(len(fx.proto.log(t, 0)))
		fx.worker.execute(context.Background(), apply, 0)
		log := fx.proto.log(t, 0)
		assertOrder(t, log, "Apply complete!", "hook-after-run FINISHED\n", "after_run hook failed")
		if strings.Contains(log, "never") || len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
			t.Errorf("after_run went on after a failure, or failed the run (%+v):\n%s", fx.proto.finishes, log)
		}
	})
}

// assertOrder checks that log holds each of parts, in order.
func assertOrder(t *testing.T, log string, parts ...string) {
	t.Helper()
	at := 0
	for _, p := range parts {
		i := strings.Index(log[at:], p)
		if i < 0 {
			t.Errorf("log lacks %q after offset %d:\n%s", p, at, log)
			return
		}
		at += i + len(p)
	}
}

// Stage variables compete with plain ones by the precedence of their
// source: a context's ro_X does not beat the stack's X.
func TestStageVarsPrecedence(t *testing.T) {
	vars := []workerapi.EnvVar{
		{Name: "ROLE", Value: "stack", Rank: 0},
		{Name: "ro_ROLE", Value: "ctx-read", Rank: 2},
		{Name: "REGION", Value: "ctx1-plain", Rank: 1},
		{Name: "ro_REGION", Value: "ctx1-read", Rank: 1},
		{Name: "wo_REGION", Value: "ctx2-write", Rank: 2},
		{Name: "wo_KEY", Value: "apply-only", Rank: 3},
	}
	got := func(write bool) map[string]string {
		out := map[string]string{}
		for _, kv := range stageVars(vars, write) {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
		return out
	}
	read, write := got(false), got(true)
	if read["ROLE"] != "stack" || write["ROLE"] != "stack" {
		t.Errorf("ROLE read %q write %q, want the stack's both times", read["ROLE"], write["ROLE"])
	}
	if read["REGION"] != "ctx1-read" || write["REGION"] != "ctx1-plain" {
		t.Errorf("REGION read %q write %q", read["REGION"], write["REGION"])
	}
	if _, ok := read["KEY"]; ok || write["KEY"] != "apply-only" {
		t.Errorf("KEY read %v write %q", read, write["KEY"])
	}
}
