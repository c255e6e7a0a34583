package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
)

// Scenario 8: secret environment variables reach runs but never show in
// logs or API answers.
func TestSecretEnv(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		const secret = "s3cr3t-value-123"
		sum := sha256.Sum256([]byte(secret))
		secretSum := hex.EncodeToString(sum[:])

		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t)})
		repo := NewRepo(t, map[string]string{"main.tf": `
resource "terraform_data" "echo" {
  provisioner "local-exec" {
    command = "echo \"secret is $SECRET_X, plain is $PLAIN_Y\"; echo \"sum=$(printf %s \"$SECRET_X\" | sha256sum | cut -c1-64)\""
  }
}
`})
		s.CreateStack(t, "secrets", repo.URL, "--autodeploy")

		var set apiv1.EnvVar
		res := s.GantryJSON(t, &set, "stack", "env", "set", "--id", "secrets", "SECRET_X", secret, "--secret")
		if res.Code != 0 || !set.Secret || set.Name != "SECRET_X" {
			t.Fatalf("env set --secret: %+v\n%s", set, res)
		}
		noSecret(t, "gantry stack env set", res.Stdout+res.Stderr, secret)
		s.MustGantry(t, "stack", "env", "set", "--id", "secrets", "PLAIN_Y", "plain-value-456")

		var vars []apiv1.EnvVar
		res = s.GantryJSON(t, &vars, "stack", "env", "list", "--id", "secrets")
		if res.Code != 0 {
			t.Fatalf("%s", res)
		}
		noSecret(t, "gantry stack env list -o json", res.Stdout, secret)
		noSecret(t, "gantry stack env list", s.MustGantry(t, "stack", "env", "list", "--id", "secrets"), secret)
		want := []apiv1.EnvVar{{Name: "PLAIN_Y", Value: "plain-value-456"}, {Name: "SECRET_X", Secret: true}}
		slices.SortFunc(vars, func(a, b apiv1.EnvVar) int { return strings.Compare(a.Name, b.Name) })
		if !slices.Equal(vars, want) {
			t.Errorf("env list = %+v, want %+v", vars, want)
		}

		r := s.WaitRun(t, s.Deploy(t, "secrets").ID, apiv1.StateFinished)
		// The checksum shows that the run saw the exact value.
		logs := s.WaitLog(t, "secrets", r.ID, "sum="+secretSum)
		if !strings.Contains(logs, "secret is *****, plain is plain-value-456") {
			t.Errorf("the log does not show the masked secret and the plain value:\n%s", logs)
		}
		noSecret(t, "the run log", logs, secret)
		res = s.GantryJSON(t, &apiv1.Run{}, "run", "show", "--id", r.ID)
		noSecret(t, "gantry run show -o json", res.Stdout, secret)
		res = s.GantryJSON(t, &[]apiv1.Run{}, "run", "list", "--stack", "secrets")
		noSecret(t, "gantry run list -o json", res.Stdout, secret)

		var task apiv1.Run
		if res := s.GantryJSON(t, &task, "stack", "task", "--id", "secrets", "--wait", "--", "echo", "task sees $SECRET_X"); res.Code != 0 {
			t.Fatalf("task failed\n%s\n%s", res, s.Describe(t, task))
		}
		logs = s.WaitLog(t, "secrets", task.ID, "task sees *****")
		noSecret(t, "the task log", logs, secret)
		noSecret(t, "the server's output", s.Log(), secret)
	})
}

func noSecret(t *testing.T, where, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Errorf("%s shows the secret value:\n%s", where, text)
	}
}

// Scenario 9: stop ends a run in progress and frees its worker; cancel
// drops a queued run.
func TestStopAndCancel(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		// One worker: the last run can only start once the stopped run has
		// really let go of it.
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t), Workers: 1})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("stop")})
		s.CreateStack(t, "slow", repo.URL, "--autodeploy", "--before-plan", "sleep 30")

		slow := s.Deploy(t, "slow")
		planning := s.WaitRun(t, slow.ID, apiv1.StatePlanning) // the hook runs in PLANNING
		queued := s.Deploy(t, "slow")
		if r := s.GetRun(t, queued.ID); r.State != apiv1.StateQueued {
			t.Fatalf("second run is %s while the first one plans, want QUEUED", r.State)
		}

		var canceled apiv1.Run
		s.MustJSON(t, &canceled, "run", "cancel", "--id", queued.ID)
		if canceled.State != apiv1.StateCanceled {
			t.Errorf("run cancel printed state %s, want CANCELED", canceled.State)
		}
		if r := s.GetRun(t, queued.ID); !slices.Equal(Path(r), []string{apiv1.StateQueued, apiv1.StateCanceled}) || r.Reason == "" {
			t.Errorf("canceled run: path %v, reason %q", Path(r), r.Reason)
		}

		var stopped apiv1.Run
		s.MustJSON(t, &stopped, "run", "stop", "--id", slow.ID)
		r := s.waitRun(t, slow.ID, 10*time.Second, apiv1.StateStopped)
		if r.Reason == "" {
			t.Errorf("stopped run has no reason")
		}
		// The log's closing line says how the run ended: stopped, not failed.
		log := strings.TrimRight(s.Logs(t, "slow", slow.ID), "\n")
		if last := log[strings.LastIndexByte(log, '\n')+1:]; !strings.HasPrefix(last, "[gantry] Run stopped: stop requested by ") {
			t.Errorf("the stopped run's log ends with %q, want [gantry] Run stopped: ...\n%s", last, log)
		}
		if res := s.Gantry(t, "run", "stop", "--id", slow.ID); res.Code == 0 {
			t.Errorf("stopping a stopped run succeeded\n%s", res)
		}

		s.MustGantry(t, "stack", "update", "--id", "slow", "--before-plan", "")
		last := s.WaitRun(t, s.Deploy(t, "slow").ID, apiv1.StateFinished)
		sleepEnd := EnteredAt(t, planning, apiv1.StatePlanning).Add(30 * time.Second)
		if started := EnteredAt(t, last, apiv1.StatePreparing); !started.Before(sleepEnd) {
			t.Errorf("the next run started at %s, not before the stopped hook would have ended (%s): the stop did not free the worker", started, sleepEnd)
		}
		for _, p := range descendants(s.cmd.Process.Pid) {
			if strings.Contains(p.args, "sleep 30") {
				t.Errorf("the stopped run's hook still runs: pid %d %q", p.pid, p.args)
			}
		}
	})
}

// `make demo` starts the server with --data-dir ./gantry-data: a relative
// data directory must give runs paths they can open (the tool runs in the
// project root), or every OpenTofu command warns that its CLI configuration
// is missing and the OIDC token file cannot be read.
func TestDemoWithARelativeDataDir(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	s := StartServer(t, ServerConfig{Dir: t.TempDir(), DataDir: "gantry-data", Args: []string{"--demo"}})
	var runs []apiv1.Run
	if !poll(waitTimeout, 100*time.Millisecond, func() bool {
		runs = nil
		s.MustJSON(t, &runs, "run", "list", "--stack", "demo")
		return len(runs) > 0
	}) {
		t.Fatal("the demo queued no run")
	}
	demo := s.WaitRun(t, runs[0].ID, apiv1.StateFinished)
	if logs := s.Logs(t, "demo", demo.ID); strings.Contains(logs, "Unable to open CLI configuration") {
		t.Errorf("the demo run's tools could not open their CLI configuration:\n%s", logs)
	}
	var task apiv1.Run
	res := s.GantryJSON(t, &task, "stack", "task", "--id", "demo", "--wait", "--",
		`test -r "$TF_CLI_CONFIG_FILE" && test -r "$GANTRY_OIDC_TOKEN_FILE" && echo both-readable`)
	if res.Code != 0 || task.State != apiv1.StateFinished {
		t.Fatalf("task: exit %d, %+v\n%s", res.Code, task, res.Stderr)
	}
	if logs := s.Logs(t, "demo", task.ID); !strings.Contains(logs, "both-readable") {
		t.Errorf("the task could not read its CLI configuration or OIDC token file:\n%s", logs)
	}
}
