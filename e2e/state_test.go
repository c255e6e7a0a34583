package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// localTofu runs OpenTofu in dir against the server's state backend with
// the admin token, and returns its combined output and exit code.
func localTofu(t *testing.T, s *Server, dir string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cliConfig := filepath.Join(dir, "empty.tfrc")
	if err := os.WriteFile(cliConfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, tofuBin, args...)
	cmd.Dir = dir
	cmd.Env = append(withoutTF(os.Environ()), "TF_HTTP_USERNAME=e2e", "TF_HTTP_PASSWORD="+s.Token,
		"TF_IN_AUTOMATION=1", "TF_INPUT=0", "CHECKPOINT_DISABLE=1", "TF_CLI_CONFIG_FILE="+cliConfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		return out.String(), exitErr.ExitCode()
	}
	t.Fatalf("tofu %s: %v\n%s", strings.Join(args, " "), err, out.String())
	return "", -1
}

// backendConfig points a configuration at a stack's state in Gantry.
func backendConfig(s *Server, stack string) string {
	q := strconv.Quote(s.StateURL(stack))
	return `
terraform {
  backend "http" {
    address        = ` + q + `
    lock_address   = ` + q + `
    unlock_address = ` + q + `
    lock_method    = "LOCK"
    unlock_method  = "UNLOCK"
  }
}
`
}

// Scenario 10: people run OpenTofu on their machines against a stack's
// state; locks keep them and Gantry's runs apart.
func TestLocalTofuAndLocks(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("shared")})
		s.CreateStack(t, "shared", repo.URL, "--autodeploy")
		s.WaitRun(t, s.Deploy(t, "shared").ID, apiv1.StateFinished)

		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "main.tf"), backendConfig(s, "shared")+staticConfig("shared"))
		if out, code := localTofu(t, s, dir, "init", "-input=false", "-no-color"); code != 0 {
			t.Fatalf("tofu init against the state backend failed (exit %d):\n%s", code, out)
		}
		out, code := localTofu(t, s, dir, "state", "pull")
		if code != 0 || !strings.Contains(out, `"terraform_data"`) || !strings.Contains(out, `"shared"`) {
			t.Fatalf("tofu state pull (exit %d) does not show the resource:\n%s", code, out)
		}
		if out, code := localTofu(t, s, dir, "plan", "-input=false", "-no-color", "-detailed-exitcode"); code != 0 {
			t.Fatalf("local tofu plan of the deployed configuration: exit %d, want 0 (no changes):\n%s", code, out)
		}

		// A person holds the lock.
		status, body := s.StateRequest(t, "LOCK", "shared", `{"ID":"abc","Operation":"test","Who":"me"}`)
		if status != 200 {
			t.Fatalf("LOCK: status %d, want 200: %s", status, body)
		}
		status, body = s.StateRequest(t, "LOCK", "shared", `{"ID":"def","Operation":"test","Who":"someone-else"}`)
		var holder apiv1.Lock
		if status != 423 {
			t.Errorf("LOCK of a locked state: status %d, want 423: %s", status, body)
		} else if err := json.Unmarshal([]byte(body), &holder); err != nil || holder.ID != "abc" || holder.Who != "me" {
			t.Errorf("the 423 answer must be the holder's lock info (OpenTofu reads it): %s (%v)", body, err)
		}

		failed := s.WaitRun(t, s.Deploy(t, "shared").ID, apiv1.StateFailed)
		if logs := s.Logs(t, "shared", failed.ID); !strings.Contains(logs, "abc") {
			t.Errorf("the log of the run that met the lock does not name it (abc):\n%s", logs)
		}
		if out, code := localTofu(t, s, dir, "plan", "-input=false", "-no-color"); code == 0 || !strings.Contains(out, "abc") {
			t.Errorf("local tofu plan on a locked state: exit %d, want a failure naming lock abc:\n%s", code, out)
		}

		if status, body := s.StateRequest(t, "UNLOCK", "shared", `{"ID":"def"}`); status >= 200 && status < 300 {
			t.Errorf("UNLOCK with another lock's ID: status %d, want a refusal: %s", status, body)
		}
		if status, body := s.StateRequest(t, "UNLOCK", "shared", `{"ID":"abc"}`); status != 200 {
			t.Fatalf("UNLOCK: status %d, want 200: %s", status, body)
		}

		// A lock taken by OpenTofu itself carries all of its lock info.
		full := `{"ID":"full-lock-1","Operation":"OperationTypeApply","Info":"","Who":"alice@laptop","Version":"1.10.7","Created":"2026-01-02T03:04:05.123456789Z","Path":""}`
		if status, body := s.StateRequest(t, "LOCK", "shared", full); status != 200 {
			t.Fatalf("LOCK: status %d, want 200: %s", status, body)
		}
		if out, code := localTofu(t, s, dir, "plan", "-input=false", "-no-color"); code == 0 || !strings.Contains(out, "full-lock-1") || !strings.Contains(out, "alice@laptop") {
			t.Errorf("local tofu plan on a state locked by another tofu: exit %d, want a failure naming lock full-lock-1 of alice@laptop:\n%s", code, out)
		}
		if status, body := s.StateRequest(t, "UNLOCK", "shared", `{"ID":"full-lock-1"}`); status != 200 {
			t.Fatalf("UNLOCK: status %d, want 200: %s", status, body)
		}
		r := s.WaitRun(t, s.Deploy(t, "shared").ID, apiv1.StateFinished)
		checkDelta(t, r, 0, 0, 0)

		// A local apply writes through the backend.
		writeFile(t, filepath.Join(dir, "main.tf"), backendConfig(s, "shared")+staticConfig("from-local"))
		if out, code := localTofu(t, s, dir, "apply", "-input=false", "-no-color", "-auto-approve"); code != 0 {
			t.Fatalf("local tofu apply: exit %d:\n%s", code, out)
		}
		if v := s.Outputs(t, "shared")["value"].Value; v != "from-local" {
			t.Errorf("output value = %v after the local apply, want from-local", v)
		}
		if status, body := s.StateRequest(t, "LOCK", "shared", `{"ID":"ghi","Operation":"test","Who":"me"}`); status != 200 {
			t.Errorf("the local apply left the state locked: LOCK answered %d: %s", status, body)
		}
		s.StateRequest(t, "UNLOCK", "shared", `{"ID":"ghi"}`)

		// The audit trail: what people did with the state (their locks,
		// unlocks, downloads and the local apply's write) and every state
		// version a run wrote; a run's own reads, locks and unlocks are
		// part of the run, not events of their own.
		var evs []apiv1.AuditEvent
		s.getJSON(t, "/api/v1/audit/events?subject_type=stack&subject_id=shared&limit=500", &struct{ Items *[]apiv1.AuditEvent }{&evs})
		count := map[string]int{}
		for _, ev := range evs {
			who := "person"
			if strings.HasPrefix(ev.Actor, "run::") {
				who = "run"
			}
			count[who+" "+ev.Action+" "+ev.Outcome]++
		}
		// Runs: the first deploy wrote; the others changed nothing or
		// failed on the lock (their failures are in their logs).
		if count["run state.write success"] != 1 {
			t.Errorf("%d state.write events by runs, want 1 (the first deploy's): %v", count["run state.write success"], count)
		}
		for k, n := range count {
			if strings.HasPrefix(k, "run ") && !strings.HasPrefix(k, "run state.write ") {
				t.Errorf("%d %q events by runs, want none: %v", n, k, count)
			}
		}
		// People: locks abc, full-lock-1, ghi and the local plan's and
		// apply's; the refused ones too.
		if count["person state.lock success"] < 5 || count["person state.unlock success"] < 5 || count["person state.lock failed"] == 0 ||
			count["person state.write success"] != 1 || count["person state.download success"] == 0 {
			t.Errorf("people's state events %v, want at least 5 locks and unlocks, refused locks, 1 write and downloads", count)
		}
	})
}

// Scenario 11: rolling the state back to an older version.
func TestStateRollback(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("one")})
		s.CreateStack(t, "rollback", repo.URL, "--autodeploy")

		s.WaitRun(t, s.Deploy(t, "rollback").ID, apiv1.StateFinished)
		v1 := CurrentVersion(t, s.StateVersions(t, "rollback"))
		repo.Commit(t, "two", map[string]string{"main.tf": staticConfig("two")})
		s.WaitRun(t, s.Deploy(t, "rollback").ID, apiv1.StateFinished)
		v2 := CurrentVersion(t, s.StateVersions(t, "rollback"))
		if v2.Serial <= v1.Serial {
			t.Fatalf("second apply: serial %d, not above the first's %d", v2.Serial, v1.Serial)
		}
		if v := s.Outputs(t, "rollback")["value"].Value; v != "two" {
			t.Fatalf("output value = %v, want two", v)
		}

		var rb apiv1.StateVersion
		s.MustJSON(t, &rb, "stack", "state", "rollback", "--id", "rollback", "--serial", strconv.FormatInt(v1.Serial, 10))
		if rb.Serial <= v2.Serial || !rb.Current {
			t.Errorf("rollback made version %+v, want a current one with a serial above %d", rb, v2.Serial)
		}
		if v := s.Outputs(t, "rollback")["value"].Value; v != "one" {
			t.Errorf("output value = %v after the rollback, want one", v)
		}
		versions := s.StateVersions(t, "rollback")
		if cur := CurrentVersion(t, versions); cur.Serial != rb.Serial {
			t.Errorf("current serial = %d, want the rollback's %d", cur.Serial, rb.Serial)
		}
		serials := map[int64]bool{}
		for _, v := range versions {
			serials[v.Serial] = true
		}
		if !serials[v1.Serial] || !serials[v2.Serial] {
			t.Errorf("older versions %d and %d must stay listed: %+v", v1.Serial, v2.Serial, versions)
		}
		doc := stateDoc(t, s, "rollback", "")
		if doc.Serial != rb.Serial || doc.Outputs["value"].Value != "one" {
			t.Errorf("current state document: serial %d, value %v; want serial %d, value one", doc.Serial, doc.Outputs["value"].Value, rb.Serial)
		}
		if old := stateDoc(t, s, "rollback", strconv.FormatInt(v2.Serial, 10)); old.Outputs["value"].Value != "two" {
			t.Errorf("state show --serial %d: value %v, want two", v2.Serial, old.Outputs["value"].Value)
		}
		// The next run plans against the rolled-back state.
		r := s.WaitRun(t, s.Deploy(t, "rollback").ID, apiv1.StateFinished)
		checkDelta(t, r, 0, 1, 0)

		// No rollback while a run holds the stack.
		s.MustGantry(t, "stack", "update", "--id", "rollback", "--autodeploy=false")
		repo.Commit(t, "three", map[string]string{"main.tf": staticConfig("three")})
		held := s.WaitRun(t, s.Deploy(t, "rollback").ID, apiv1.StateUnconfirmed)
		before := CurrentVersion(t, s.StateVersions(t, "rollback"))
		if res := s.Gantry(t, "stack", "state", "rollback", "--id", "rollback", "--serial", strconv.FormatInt(v1.Serial, 10)); res.Code == 0 {
			t.Errorf("rollback succeeded while run %s is UNCONFIRMED\n%s", held.ID, res)
		}
		if after := CurrentVersion(t, s.StateVersions(t, "rollback")); after.Serial != before.Serial {
			t.Errorf("the refused rollback changed the current serial from %d to %d", before.Serial, after.Serial)
		}
		s.MustGantry(t, "stack", "discard", "--id", "rollback", "--run", held.ID)
		s.MustJSON(t, &rb, "stack", "state", "rollback", "--id", "rollback", "--serial", strconv.FormatInt(v1.Serial, 10))
		if v := s.Outputs(t, "rollback")["value"].Value; v != "one" {
			t.Errorf("output value = %v after the second rollback, want one", v)
		}
	})
}

// tfState is the part of a state document the tests read.
type tfState struct {
	Serial  int64  `json:"serial"`
	Lineage string `json:"lineage"`
	Outputs map[string]struct {
		Value any `json:"value"`
	} `json:"outputs"`
}

// stateDoc reads a state version (the current one for serial "").
func stateDoc(t *testing.T, s *Server, stack, serial string) tfState {
	t.Helper()
	args := []string{"stack", "state", "show", "--id", stack}
	if serial != "" {
		args = append(args, "--serial", serial)
	}
	out := s.MustGantry(t, args...)
	var doc tfState
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("state show printed no state document: %v\n%s", err, out)
	}
	return doc
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Managed state keeps to itself: an output echoing a secret variable is
// masked in `stack outputs` (the state keeps it); a run whose
// TF_CLI_ARGS_init points init at another backend, or whose code declares
// a backend in the JSON syntax, fails before OpenTofu touches the state.
func TestManagedStateGuards(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-e2e-pw"
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": `
variable "pw" {
  type = string
}

output "pw_echo" {
  value = var.pw
}

output "pw_length" {
  value = length(var.pw)
}
`})
	s.CreateStack(t, "guards", repo.URL, "--autodeploy")
	s.MustGantry(t, "stack", "env", "set", "--id", "guards", "TF_VAR_pw", secret, "--secret")
	s.WaitRun(t, s.Deploy(t, "guards").ID, apiv1.StateFinished)
	outs := s.Outputs(t, "guards")
	if outs["pw_echo"].Value != "*****" || outs["pw_echo"].Sensitive || fmt.Sprint(outs["pw_length"].Value) != strconv.Itoa(len(secret)) {
		t.Errorf("outputs = %+v, want pw_echo masked and pw_length %d", outs, len(secret))
	}
	noSecret(t, "gantry stack outputs", s.MustGantry(t, "stack", "outputs", "--id", "guards"), secret)
	if doc := stateDoc(t, s, "guards", ""); doc.Outputs["pw_echo"].Value != secret {
		t.Errorf("the state document's pw_echo = %v, want the value itself", doc.Outputs["pw_echo"].Value)
	}
	before := CurrentVersion(t, s.StateVersions(t, "guards"))

	s.MustGantry(t, "stack", "env", "set", "--id", "guards", "--secret", "--", "TF_CLI_ARGS_init", "-upgrade -backend-config=address=http://127.0.0.1:9/elsewhere")
	r := s.WaitRun(t, s.Deploy(t, "guards").ID, apiv1.StateFailed)
	logs := s.WaitLog(t, "guards", r.ID, "the variable TF_CLI_ARGS_init passes -backend-config to init")
	if strings.Contains(logs, "$ tofu init") {
		t.Errorf("init ran despite the backend flag:\n%s", logs)
	}
	s.MustGantry(t, "stack", "env", "delete", "--id", "guards", "TF_CLI_ARGS_init")

	repo.Commit(t, "json backend", map[string]string{"backend.tf.json": `{"terraform": {"backend": {"local": {"path": "/tmp/elsewhere.tfstate"}}}}`})
	r = s.WaitRun(t, s.Deploy(t, "guards").ID, apiv1.StateFailed)
	s.WaitLog(t, "guards", r.ID, `backend.tf.json declares a backend "local" block`)
	if after := CurrentVersion(t, s.StateVersions(t, "guards")); after.Serial != before.Serial {
		t.Errorf("the refused runs wrote the state: serial %d, was %d", after.Serial, before.Serial)
	}
}

// TestManagedStateOff: turning managed state off on a stack that has state
// is refused without --force (its runs would plan from nothing), saying how
// to keep the state; with --force it is off and the versions stay
// readable. A stack that never had managed state says so when its state
// is asked for.
func TestManagedStateOff(t *testing.T) {
	t.Parallel()
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("one")})
	s.CreateStack(t, "kept", repo.URL, "--autodeploy")
	s.WaitRun(t, s.Deploy(t, "kept").ID, apiv1.StateFinished)

	res := s.Gantry(t, "stack", "update", "--id", "kept", "--managed-state=false")
	if res.Code == 0 || !strings.Contains(res.Stderr, "gantry stack state show --id kept") || !strings.Contains(res.Stderr, "tofu init -migrate-state") {
		t.Fatalf("turning managed state off without --force: %s", res)
	}
	var st apiv1.Stack
	s.MustJSON(t, &st, "stack", "update", "--id", "kept", "--managed-state=false", "--force")
	if st.ManagedState {
		t.Fatal("--force left managed state on")
	}
	if doc := s.MustGantry(t, "stack", "state", "show", "--id", "kept"); !strings.Contains(doc, `"lineage"`) {
		t.Errorf("state show after turning managed state off: %q, want the stored document", doc)
	}

	s.CreateStack(t, "own", repo.URL, "--managed-state=false")
	for _, cmd := range []string{"show", "list"} {
		if res := s.Gantry(t, "stack", "state", cmd, "--id", "own"); res.Code == 0 || !strings.Contains(res.Stderr, "does not use managed state") {
			t.Errorf("state %s of a stack without managed state: %s", cmd, res)
		}
	}
}

// evilStateHook is an after_plan hook, code of the run, that tries to
// write the stack's state and keeps a lock of its own past the plan, with
// the run's own state credentials.
const evilStateHook = `code() { curl -s -o /dev/null -w "%{http_code}" -u "gantry:$TF_HTTP_PASSWORD" "$@"; }
echo "evil-post=$(code -X POST --data-binary '{"version":4,"serial":7,"lineage":"evil","outputs":{"injected":{"value":"x","type":"string"}},"resources":[]}' "$TF_HTTP_ADDRESS")"
echo "evil-lock=$(code -X LOCK --data-binary '{"ID":"evil-hold"}' "$TF_HTTP_ADDRESS")"`

// While a tracked run plans, its state credentials read and lock the
// state but do not write it; what the run locked while planning is let go
// when the plan ends: at UNCONFIRMED a person may lock the state, and the
// confirmed apply (or, with autodeploy, the apply at once) locks and
// writes it.
func TestPlanningStateReadOnly(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	s := StartServer(t, ServerConfig{})
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "manual", repo.URL, "--after-plan", evilStateHook)
	var r apiv1.Run
	if res := s.GantryJSON(t, &r, "stack", "deploy", "--id", "manual", "--wait"); res.Code != 0 || r.State != apiv1.StateUnconfirmed {
		t.Fatalf("deploy --wait: want UNCONFIRMED\n%s\n%s", res, s.Describe(t, r))
	}
	logs := s.Logs(t, "manual", r.ID)
	for _, want := range []string{"evil-post=403", "evil-lock=200"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log has no %q:\n%s", want, logs)
		}
	}
	if n := len(s.StateVersions(t, "manual")); n != 0 {
		t.Fatalf("%d state versions before confirmation, want 0", n)
	}
	lock := func(method, id string) int {
		t.Helper()
		out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "e2e:"+s.Token,
			"-X", method, "--data-binary", `{"ID":"`+id+`"}`, s.StateURL("manual")).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		code, _ := strconv.Atoi(string(out))
		return code
	}
	if code := lock("LOCK", "person"); code != 200 {
		t.Fatalf("a person's LOCK at UNCONFIRMED = %d, want 200: the run's lock outlived its plan", code)
	}
	if code := lock("UNLOCK", "person"); code != 200 {
		t.Fatalf("UNLOCK = %d", code)
	}
	var confirmed apiv1.Run
	if res := s.GantryJSON(t, &confirmed, "stack", "confirm", "--id", "manual", "--run", r.ID, "--wait"); res.Code != 0 || confirmed.State != apiv1.StateFinished {
		t.Fatalf("confirm --wait: want FINISHED\n%s\n%s", res, s.Describe(t, s.GetRun(t, r.ID)))
	}
	if cur := CurrentVersion(t, s.StateVersions(t, "manual")); cur.Run != r.ID || cur.Lineage == "evil" {
		t.Errorf("current state = %+v, want the apply's", cur)
	}
	if _, ok := s.Outputs(t, "manual")["injected"]; ok {
		t.Error("the state has the output the plan's hook injected")
	}

	// Autodeploy: the hook's lock goes when the run moves on to apply.
	s.CreateStack(t, "auto", repo.URL, "--autodeploy", "--after-plan", evilStateHook)
	auto := s.WaitRun(t, s.Deploy(t, "auto").ID, apiv1.StateFinished)
	logs = s.Logs(t, "auto", auto.ID)
	if !strings.Contains(logs, "evil-post=403") || !strings.Contains(logs, "Apply complete") {
		t.Errorf("autodeploy log:\n%s", logs)
	}
	if cur := CurrentVersion(t, s.StateVersions(t, "auto")); cur.Run != auto.ID || cur.Lineage == "evil" {
		t.Errorf("current state = %+v, want the apply's", cur)
	}
}
