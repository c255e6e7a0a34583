package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Contexts: variables, mounted files and hooks of attached and
// auto-attached contexts reach a run with the right precedence and in
// Spacelift's hook order; ro_/wo_ variables reach only their stage; the
// run facts are there under Spacelift's names too; secrets never show.
func TestContexts(t *testing.T) {
	t.Parallel()
	const secretValue = "ctx-secret-value-9876"
	const secretFile = "file-secret-line-abcdef"
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": `
variable "who" {}
variable "tier" {}
variable "only_auto" {}
variable "region" {}
variable "spacelift_stack_id" {}
variable "spacelift_run_type" {}

resource "terraform_data" "echo" {
  provisioner "local-exec" {
    command = "echo \"who=${var.who} tier=${var.tier} only=${var.only_auto} region=${var.region} sl=${var.spacelift_stack_id}/${var.spacelift_run_type} secret=$SECRET_CTX file=$(cat $GANTRY_WORKSPACE_ROOT/creds/secret.txt)\""
  }
}
`})
	s.CreateStack(t, "ctx-stack", repo.URL, "--autodeploy", "--label", "e2e",
		"--before-plan", "echo hook-stack-before-plan", "--after-plan", "echo hook-stack-after-plan")
	s.MustGantry(t, "stack", "env", "set", "--id", "ctx-stack", "TF_VAR_who", "stack")

	s.MustGantry(t, "context", "create", "--id", "ctx-low", "--space", "root")
	s.MustGantry(t, "context", "create", "--id", "ctx-high", "--space", "root")
	s.MustGantry(t, "context", "create", "--id", "ctx-auto", "--space", "root", "--label", "autoattach:e2e")
	for _, c := range []string{"ctx-low", "ctx-high", "ctx-auto"} {
		s.MustGantry(t, "context", "env", "set", "--id", c, "TF_VAR_who", c)
		s.MustGantry(t, "context", "env", "set", "--id", c, "TF_VAR_tier", c)
		s.MustGantry(t, "context", "hook", "add", "--id", c, "--phase", "before_plan", "--command", "echo hook-"+c+"-before-plan")
		s.MustGantry(t, "context", "hook", "add", "--id", c, "--phase", "after_plan", "--command", "echo hook-"+c+"-after-plan")
	}
	s.MustGantry(t, "context", "env", "set", "--id", "ctx-auto", "TF_VAR_only_auto", "auto")
	s.MustGantry(t, "context", "env", "set", "--id", "ctx-low", "SECRET_CTX", secretValue, "--secret")
	s.MustGantry(t, "context", "env", "set", "--id", "ctx-high", "ro_PHASE", "read")
	s.MustGantry(t, "context", "env", "set", "--id", "ctx-high", "wo_PHASE", "write")
	s.MustGantry(t, "context", "hook", "add", "--id", "ctx-high", "--phase", "before_plan", "--command", "echo plan-sees=$PHASE")
	s.MustGantry(t, "context", "hook", "add", "--id", "ctx-high", "--phase", "before_apply", "--command", "echo apply-sees=$PHASE")
	s.MustGantry(t, "context", "hook", "add", "--id", "ctx-auto", "--phase", "after_run", "--command", "echo after-run=$TF_VAR_spacelift_final_run_state")
	// Spacelift's interpolation: a stack value refers to a context's, and a
	// plain value to a secret one (masked whole in the log, never expanded
	// where the API shows it); Spacelift's run variables.
	s.MustGantry(t, "context", "env", "set", "--id", "ctx-low", "FOO", "bar")
	s.MustGantry(t, "stack", "env", "set", "--id", "ctx-stack", "TF_VAR_greeting", "${FOO}-baz")
	s.MustGantry(t, "stack", "env", "set", "--id", "ctx-stack", "DSN", "app:${SECRET_CTX}@db")
	s.MustGantry(t, "context", "hook", "add", "--id", "ctx-auto", "--phase", "before_init", "--command",
		"echo greeting=$TF_VAR_greeting dsn=$DSN trigger=$TF_VAR_spacelift_run_trigger state=$TF_VAR_spacelift_run_state preview=$TF_VAR_spacelift_local_preview account=$TF_VAR_spacelift_account_name")
	dir := t.TempDir()
	tfvars, secretPath := filepath.Join(dir, "ctx.auto.tfvars"), filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(tfvars, []byte("region = \"eu-ctx\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretPath, []byte(secretFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.MustGantry(t, "context", "file", "set", "--id", "ctx-high", "src/ctx.auto.tfvars", "--from-file", tfvars)
	s.MustGantry(t, "context", "file", "set", "--id", "ctx-low", "creds/secret.txt", "--from-file", secretPath, "--secret")
	s.MustGantry(t, "context", "attach", "--id", "ctx-high", "--stack", "ctx-stack", "--priority", "5")
	s.MustGantry(t, "context", "attach", "--id", "ctx-low", "--stack", "ctx-stack", "--priority", "1")

	env := s.MustGantry(t, "stack", "env", "list", "--id", "ctx-stack")
	for _, want := range []string{"TF_VAR_who", "stack", "context:ctx-low", "context:ctx-auto", "SECRET_CTX", "*****", "creds/secret.txt", "autoattach:e2e",
		"${FOO}-baz", "app:${SECRET_CTX}@db"} {
		if !strings.Contains(env, want) {
			t.Errorf("stack env list lacks %q:\n%s", want, env)
		}
	}
	noSecret(t, "gantry stack env list", env, secretValue)

	r := s.WaitRun(t, s.Deploy(t, "ctx-stack").ID, apiv1.StateFinished)
	logs := s.WaitLog(t, "ctx-stack", r.ID, "after-run=FINISHED")
	if !strings.Contains(logs, "who=stack tier=ctx-low only=auto region=eu-ctx sl=ctx-stack/TRACKED secret=***** file=*****") {
		t.Errorf("the run did not see the values in precedence order:\n%s", logs)
	}
	if !strings.Contains(logs, "greeting=bar-baz dsn=***** trigger=api_key::admin state=PREPARING preview=false account=127.0.0.1:") {
		t.Errorf("the run did not see the interpolated values and Spacelift's run variables:\n%s", logs)
	}
	// Before a phase: attached contexts by priority, auto-attached ones,
	// then the stack; after it, the reverse.
	order := []string{"hook-ctx-low-before-plan", "hook-ctx-high-before-plan", "plan-sees=read", "hook-ctx-auto-before-plan", "hook-stack-before-plan",
		"hook-stack-after-plan", "hook-ctx-auto-after-plan", "hook-ctx-high-after-plan", "hook-ctx-low-after-plan", "apply-sees=write", "after-run=FINISHED"}
	at := 0
	for _, want := range order {
		i := strings.Index(logs[at:], "\n"+want)
		if i < 0 {
			t.Errorf("log lacks %q after offset %d (order %v):\n%s", want, at, order, logs)
			break
		}
		at += i + 1
	}
	noSecret(t, "the run log", logs, secretValue)
	noSecret(t, "the run log", logs, secretFile)
	noSecret(t, "the server's output", s.Log(), secretValue)
	noSecret(t, "the server's output", s.Log(), secretFile)
}
