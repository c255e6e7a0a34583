package worker

import (
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// Spacelift's environment variable interpolation: ${NAME} in a value is
// the value of another variable of the run, whatever defines it.
func TestInterpolate(t *testing.T) {
	base := []string{"PATH=/usr/bin", "HOME=/home/w", "TF_VAR_spacelift_run_id=run-1"}
	vars := []stageVar{
		{name: "BAZ", value: "${FOO}-baz"}, // defined before FOO: order does not matter
		{name: "FOO", value: "bar", rank: 1},
		{name: "CHAIN", value: "<${BAZ}>"},
		{name: "PATH", value: "${PATH}:/opt/bin"},
		{name: "RUN", value: "run ${TF_VAR_spacelift_run_id} in ${HOME}"},
		{name: "UNDEFINED", value: "${NOPE} and ${var.x} and ${ upper(x) } and ${} and ${1A} and ${UNCLOSED"},
		{name: "ESCAPED", value: "$${FOO} is ${FOO}, $$ stays"},
		{name: "A", value: "a${B}"},
		{name: "B", value: "b${A}"},
		{name: "INTEGRATION", value: "${FOO}", rank: -1},
		{name: "FROM_INTEGRATION", value: "[${INTEGRATION}]"},
		{name: "PLAIN", value: "no references $HOME"},
	}
	got, changed := interpolate(base, vars)
	want := map[string]string{
		"BAZ": "bar-baz", "FOO": "bar", "CHAIN": "<bar-baz>", "PATH": "/usr/bin:/opt/bin",
		"RUN":       "run run-1 in /home/w",
		"UNDEFINED": "${NOPE} and ${var.x} and ${ upper(x) } and ${} and ${1A} and ${UNCLOSED",
		"ESCAPED":   "${FOO} is bar, $$ stays",
		// A cycle: each keeps the reference back to itself.
		"A": "ab${A}", "B": "ba${B}",
		"INTEGRATION": "${FOO}", "FROM_INTEGRATION": "[${FOO}]", "PLAIN": "no references $HOME",
	}
	for _, v := range got {
		if v.value != want[v.name] {
			t.Errorf("%s = %q, want %q", v.name, v.value, want[v.name])
		}
	}
	if strings.Join(changed, ",") != "BAZ,CHAIN,PATH,RUN,ESCAPED,A,B,FROM_INTEGRATION" {
		t.Errorf("changed = %v", changed)
	}
}

// Through a cycle, a variable's value does not depend on which variable of
// the cycle was expanded first: PATH='${ADDP}' with ADDP='${PATH}:/opt/a'
// is the worker's PATH with /opt/a, whatever the helper is called.
func TestInterpolateCycleOrder(t *testing.T) {
	base := []string{"PATH=/usr/bin"}
	for _, helper := range []string{"ADDP", "ZADD"} {
		for _, vars := range [][]stageVar{
			{{name: helper, value: "${PATH}:/opt/a"}, {name: "PATH", value: "${" + helper + "}"}},
			{{name: "PATH", value: "${" + helper + "}"}, {name: helper, value: "${PATH}:/opt/a"}},
		} {
			got, _ := interpolate(base, vars)
			for _, v := range got {
				if v.name == "PATH" && v.value != "/usr/bin:/opt/a" {
					t.Errorf("helper %s, order %s first: PATH = %q, want /usr/bin:/opt/a", helper, vars[0].name, v.value)
				}
			}
		}
	}
}

// In the run's environment: per stage (ro_/wo_ forms), with the run's
// facts, and what the tool sees of TF_CLI_ARGS is checked once expanded.
func TestStageEnvInterpolation(t *testing.T) {
	job := &workerapi.Job{RunID: "run-1", StackID: "stk", RunType: "TRACKED", ManagedState: true, Env: []workerapi.EnvVar{
		{Name: "TF_VAR_greeting", Value: "${FOO}-baz"},
		{Name: "FOO", Value: "bar", Rank: 1}, // from a context
		{Name: "ro_TOKEN", Value: "read"},
		{Name: "wo_TOKEN", Value: "write"},
		{Name: "TF_VAR_token", Value: "${TOKEN}@${TF_VAR_spacelift_stack_id}"},
	}}
	for write, token := range map[bool]string{false: "read@stk", true: "write@stk"} {
		m := envMap(buildStageEnv(job, "/job/cli.tfrc", "/tools", "http://srv/api/v1/stacks/stk/tfstate", write))
		if m["TF_VAR_greeting"] != "bar-baz" || m["TF_VAR_token"] != token {
			t.Errorf("write %v: TF_VAR_greeting = %q, TF_VAR_token = %q", write, m["TF_VAR_greeting"], m["TF_VAR_token"])
		}
	}
	// A flag taken from another variable is still a flag the backend check sees.
	job.Env = append(job.Env, workerapi.EnvVar{Name: "ELSEWHERE", Value: "-backend-config=address=http://elsewhere"},
		workerapi.EnvVar{Name: "TF_CLI_ARGS_init", Value: "${ELSEWHERE}"})
	if err := checkBackendArgs(job); err == nil || !strings.Contains(err.Error(), "-backend-config") {
		t.Errorf("checkBackendArgs = %v, want the interpolated -backend-config refused", err)
	}
}

// A value made with a secret is masked in the log whole, and so is a
// secret variable's interpolated value; an API or policy never sees either:
// interpolation happens on the worker only.
func TestInterpolatedSecretsMasked(t *testing.T) {
	job := &workerapi.Job{RunID: "run-1", StackID: "stk", Env: []workerapi.EnvVar{
		{Name: "DB_PASSWORD", Value: "hunter2-secret", Secret: true},
		{Name: "TF_VAR_url", Value: "postgres://app:${DB_PASSWORD}@db"},
		{Name: "USER", Value: "admin-user"},
		{Name: "TF_VAR_dsn", Value: "${USER}:pw-part", Secret: true},
		{Name: "TF_VAR_public", Value: "${USER}@example"},
	}}
	var masked []string
	for _, v := range job.Env {
		if v.Secret {
			masked = append(masked, secrets.VariableForms(v.Value)...)
		}
	}
	j := &jobRun{w: &Worker{cfg: Config{ServerURL: "http://srv"}}, job: job, masker: secrets.NewMasker(masked), dir: "/job", bin: "/tools/tofu"}
	env := envMap(j.stageEnv(false))
	if env["TF_VAR_url"] != "postgres://app:hunter2-secret@db" || env["TF_VAR_dsn"] != "admin-user:pw-part" {
		t.Fatalf("env = %v", env)
	}
	line := "url=" + env["TF_VAR_url"] + " dsn=" + env["TF_VAR_dsn"] + " public=" + env["TF_VAR_public"]
	got := j.masker.String(line)
	if strings.Contains(got, "hunter2") || strings.Contains(got, "app:") || strings.Contains(got, "pw-part") || !strings.Contains(got, "public=admin-user@example") {
		t.Errorf("masked log line %q", got)
	}
}
