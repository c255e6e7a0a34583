//go:build unix

package tofu

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const redactConfig = `
variable "dbpass" {
  type      = string
  sensitive = true
}

resource "terraform_data" "derived" {
  input = { a = "derived-${upper(var.dbpass)}", b = "plain-${var.round}", n = 12345678901234567 }
}

variable "round" {
  type = string
}

module "child" {
  source = "./child"
  count  = 1
  secret = var.dbpass
  lit    = "moduleargsecret-ZZ9"
  open   = "openarg-kept"
}

variable "withdefault" {
  type      = string
  default   = "defaultsecret-ZZ9"
  sensitive = true
}

output "pw" {
  value     = "outputsecret-ZZ9"
  sensitive = true
}

output "o" {
  value     = terraform_data.derived.input
  sensitive = true
}

output "p" {
  value = "visible"
}
`

const redactChild = `
variable "secret" {
  type      = string
  sensitive = true
}

resource "terraform_data" "inner" {
  input = ["open", var.secret]
}

variable "lit" {
  type      = string
  sensitive = true
}

variable "open" {
  type = string
}

variable "cdef" {
  type      = string
  default   = "childdefault-ZZ9"
  sensitive = true
}

output "cout" {
  value     = "childoutput-ZZ9"
  sensitive = true
}

resource "terraform_data" "lit" {
  input = { token = "resourceliteral-ZZ9", note = "x" }
}
`

// TestRedactPlan runs the real OpenTofu on a configuration with a
// sensitive variable, values derived from it, a sensitive output and a
// module, applies it once and plans a change, then checks what a reader
// of the redacted plan sees.
func TestRedactPlan(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real tool; skipped with -short")
	}
	bin, ok := realBinary(OpenTofu)
	if !ok {
		t.Skip("no tofu binary on PATH or in the tools cache (run scripts/ensure-tofu.sh to build OpenTofu)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	for name, body := range map[string]string{"main.tf": redactConfig, "child/main.tf": redactChild, "cli.tfrc": ""} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+filepath.Join(dir, "cli.tfrc"), "TF_IN_AUTOMATION=1", "TF_INPUT=0",
		"CHECKPOINT_DISABLE=1", "TF_VAR_dbpass=Sup3rS3cret")
	run := func(args ...string) []byte {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code, err := RunSplit(ctx, bin, dir, env, &stdout, &stderr, args...)
		if err != nil || code != 0 {
			t.Fatalf("%v: exit %d, %v\n%s\n%s", args, code, err, stdout.String(), stderr.String())
		}
		return stdout.Bytes()
	}
	run("init", "-input=false", "-no-color")
	run("apply", "-input=false", "-no-color", "-auto-approve", "-var", "round=1")
	run("plan", "-input=false", "-no-color", "-var", "round=2", "-out=tfplan")
	full := run("show", "-json", "tfplan")
	if !bytes.Contains(full, []byte("Sup3rS3cret")) || !bytes.Contains(full, []byte(`"prior_state"`)) {
		t.Fatalf("the plan JSON itself should hold the secret and the prior state: %s", full)
	}

	// terraform_data has no attribute its schema marks sensitive; a
	// provider's (a password argument) would be marked in the changes of
	// every instance, as here, and only there.
	full = markSensitive(t, full, "module.child[0]", "terraform_data", "lit", `{"input":{"token":true}}`)
	out, err := RedactPlan(full)
	if err != nil {
		t.Fatal(err)
	}
	// The configuration keeps the literals of what is not sensitive, and
	// loses those of sensitive outputs, variable defaults, module
	// arguments to sensitive variables and sensitive resource arguments.
	for _, kept := range []string{`"constant_value":"visible"`, `"constant_value":"openarg-kept"`} {
		if !strings.Contains(string(out), kept) {
			t.Errorf("the redacted plan lost %s", kept)
		}
	}
	for _, secret := range []string{"outputsecret-ZZ9", "defaultsecret-ZZ9", "moduleargsecret-ZZ9", "childdefault-ZZ9", "childoutput-ZZ9"} {
		if !bytes.Contains(full, []byte(secret)) {
			t.Errorf("the plan JSON does not hold %s: the test proves nothing", secret)
		}
		if strings.Contains(string(out), secret) {
			t.Errorf("%s is in the redacted plan: %s", secret, out)
		}
	}
	var cfg struct {
		Configuration json.RawMessage `json:"configuration"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg.Configuration), "resourceliteral-ZZ9") || !strings.Contains(string(cfg.Configuration), Sensitive) {
		t.Errorf("a sensitive resource argument's literal is in the configuration: %s", cfg.Configuration)
	}
	var plan struct {
		Variables       map[string]struct{ Value any } `json:"variables"`
		PriorState      json.RawMessage                `json:"prior_state"`
		ResourceChanges []struct {
			Address string
			Change  struct{ Before, After any }
		} `json:"resource_changes"`
		OutputChanges map[string]struct{ Before, After any } `json:"output_changes"`
		PlannedValues struct {
			Outputs    map[string]struct{ Value any } `json:"outputs"`
			RootModule struct {
				Resources []struct {
					Address string
					Values  map[string]any
				}
				ChildModules []struct {
					Resources []struct {
						Address string
						Values  map[string]any
					}
				} `json:"child_modules"`
			} `json:"root_module"`
		} `json:"planned_values"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatal(err)
	}
	if plan.PriorState != nil {
		t.Errorf("prior_state kept: %s", plan.PriorState)
	}
	if v := plan.Variables["dbpass"].Value; v != Sensitive {
		t.Errorf("variable dbpass = %v, want %q", v, Sensitive)
	}
	if v := plan.Variables["round"].Value; v != "2" {
		t.Errorf("variable round = %v, want 2 (not sensitive)", v)
	}
	changes := map[string]struct{ Before, After any }{}
	for _, rc := range plan.ResourceChanges {
		changes[rc.Address] = rc.Change
	}
	after, _ := changes["terraform_data.derived"].After.(map[string]any)
	input, _ := after["input"].(map[string]any)
	if input["a"] != Sensitive || input["b"] != "plain-2" {
		t.Errorf("derived after.input = %v, want a redacted and b = plain-2", after["input"])
	}
	before, _ := changes["terraform_data.derived"].Before.(map[string]any)
	if in, _ := before["input"].(map[string]any); in["a"] != Sensitive || in["b"] != "plain-1" {
		t.Errorf("derived before.input = %v, want a redacted and b = plain-1", before["input"])
	}
	if oc := plan.OutputChanges["o"]; oc.Before != Sensitive {
		t.Errorf("output o before = %v, want %q", oc.Before, Sensitive)
	}
	if v := plan.PlannedValues.Outputs["p"].Value; v != "visible" {
		t.Errorf("output p = %v, want visible", v)
	}
	if rs := plan.PlannedValues.RootModule.Resources; len(rs) != 1 {
		t.Fatalf("planned root resources = %+v", rs)
	} else if in, _ := rs[0].Values["input"].(map[string]any); in["a"] != Sensitive || in["b"] != "plain-2" {
		t.Errorf("planned input = %v, want a redacted, b kept", rs[0].Values["input"])
	}
	if cm := plan.PlannedValues.RootModule.ChildModules; len(cm) != 1 || len(cm[0].Resources) != 2 ||
		cm[0].Resources[0].Address != "module.child[0].terraform_data.inner" {
		t.Fatalf("planned child modules = %+v", cm)
	} else if in, _ := cm[0].Resources[0].Values["input"].([]any); len(in) != 2 || in[0] != "open" || in[1] != Sensitive {
		t.Errorf("child input = %v, want [open %q]", cm[0].Resources[0].Values["input"], Sensitive)
	}
	if !strings.Contains(string(out), "12345678901234567") {
		t.Error("a large number was not kept as written")
	}
	// The one place the secret may stay is where OpenTofu does not mark
	// it: terraform_data's output attribute (the run's log shows it too).
	// Everywhere else it is gone.
	var all any
	if err := json.Unmarshal(out, &all); err != nil {
		t.Fatal(err)
	}
	var dropOutputs func(v any)
	dropOutputs = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			delete(v, "output")
			for _, sub := range v {
				dropOutputs(sub)
			}
		case []any:
			for _, sub := range v {
				dropOutputs(sub)
			}
		}
	}
	dropOutputs(all)
	rest, _ := json.Marshal(all)
	if s := strings.ToUpper(string(rest)); strings.Contains(s, "SUP3RS3CRET") {
		t.Errorf("the secret is still in the redacted plan outside unmarked output attributes: %s", rest)
	}
}

// markSensitive sets the after_sensitive marks of the changes of the
// resource typ.name in module (an address with instance keys) to marks,
// as a provider whose schema marks the attribute sensitive makes
// OpenTofu write them.
func markSensitive(t *testing.T, plan []byte, module, typ, name, marks string) []byte {
	t.Helper()
	var p map[string]any
	dec := json.NewDecoder(bytes.NewReader(plan))
	dec.UseNumber() // numbers stay as written
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	var m any
	if err := json.Unmarshal([]byte(marks), &m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rc := range list(p["resource_changes"]) {
		r := object(rc)
		if r["module_address"] == module && r["type"] == typ && r["name"] == name {
			object(r["change"])["after_sensitive"], found = m, true
		}
	}
	if !found {
		t.Fatalf("no change of %s.%s.%s in the plan", module, typ, name)
	}
	out, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRedactPlanRefusesGarbage(t *testing.T) {
	if _, err := RedactPlan([]byte("{not json")); err == nil {
		t.Error("RedactPlan accepted malformed JSON")
	}
}

func TestWithoutKeys(t *testing.T) {
	for in, want := range map[string]string{
		"module.a":                           "module.a",
		"module.a[0].module.b":               "module.a.module.b",
		`module.a["x.y"].module.b["]\"["]`:   "module.a.module.b",
		`module.a["k"].module.b[2].module.c`: "module.a.module.b.module.c",
	} {
		if got := withoutKeys(in); got != want {
			t.Errorf("withoutKeys(%s) = %s, want %s", in, got, want)
		}
	}
}
