package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// slowConfig adds to staticConfig(value) a resource whose creation runs a
// long command.
func slowConfig(value string) string {
	return staticConfig(value) + `
resource "terraform_data" "slow" {
  provisioner "local-exec" {
    command = "sleep 20"
  }
}
`
}

// Scenario 12: the server dies (SIGKILL) while a run applies. After a
// restart the run is FAILED with a reason, the state lock is free and the
// stored state versions are intact.
func TestServerKilledDuringApply(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		s := StartServer(t, ServerConfig{DBURL: b.dbURL(t), Workers: 1, Args: []string{"--worker-timeout", "5s"}})
		repo := NewRepo(t, map[string]string{"main.tf": staticConfig("before")})
		s.CreateStack(t, "crash", repo.URL, "--autodeploy")
		s.WaitRun(t, s.Deploy(t, "crash").ID, apiv1.StateFinished)
		v1 := CurrentVersion(t, s.StateVersions(t, "crash"))

		repo.Commit(t, "slow", map[string]string{"main.tf": slowConfig("before")})
		r := s.Deploy(t, "crash")
		s.WaitRun(t, r.ID, apiv1.StateApplying)
		s.WaitLog(t, "crash", r.ID, "Provisioning with 'local-exec'")

		// The provisioner's processes outlive the server (the tool itself
		// dies with it); the restarted server must kill them.
		survivors := s.KillLeavingOrphans(t)
		s = s.Restart(t)
		if !poll(10*time.Second, 50*time.Millisecond, func() bool {
			for _, p := range survivors {
				if alive(p.pid) {
					return false
				}
			}
			return true
		}) {
			t.Errorf("processes of the interrupted job still run after the restart: %+v", survivors)
		}
		failed := s.WaitRun(t, r.ID, apiv1.StateFailed)
		if !regexp.MustCompile(`(?i)restart|lost|heartbeat|shut ?down|crash`).MatchString(failed.Reason) {
			t.Errorf("reason %q does not say that the server or worker went away", failed.Reason)
		}
		t.Logf("the interrupted run: %v, reason %q", Path(failed), failed.Reason)
		// The log says it too, last, as when a worker fails a run.
		if log := s.Logs(t, "crash", r.ID); !strings.HasSuffix(strings.TrimRight(log, "\n"), "[gantry] Run failed: "+failed.Reason) {
			t.Errorf("the log does not end with the reason %q:\n%s", failed.Reason, log)
		}

		versions := s.StateVersions(t, "crash")
		found := false
		for _, v := range versions {
			found = found || v.Serial == v1.Serial && v.Checksum == v1.Checksum
		}
		if !found {
			t.Errorf("state version %d (%s) is gone after the crash: %+v", v1.Serial, v1.Checksum, versions)
		}
		if doc := stateDoc(t, s, "crash", fmt.Sprint(v1.Serial)); doc.Outputs["value"].Value != "before" {
			t.Errorf("state version %d: output value %v, want before", v1.Serial, doc.Outputs["value"].Value)
		}
		stateDoc(t, s, "crash", "")

		repo.Commit(t, "after", map[string]string{"main.tf": staticConfig("after")})
		next := s.WaitRun(t, s.Deploy(t, "crash").ID, apiv1.StateFinished)
		if Count(next, apiv1.StateApplying) != 1 {
			t.Errorf("the run after the restart did not apply: %v", Path(next))
		}
		if v := s.Outputs(t, "crash")["value"].Value; v != "after" {
			t.Errorf("output value = %v, want after", v)
		}
	})
}

// Scenario 13: two servers with built-in workers share one PostgreSQL
// database; every run is claimed and applied exactly once.
func TestTwoServersOnePostgres(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	cfg := ServerConfig{
		DBURL:   dbtest.PostgresURL(t),
		Token:   randomHex(t, 24),
		Workers: 2,
		// Both must read what the other encrypted.
		Env: []string{"GANTRY_ENCRYPTION_KEY=" + randomHex(t, 32)},
	}
	servers := []*Server{StartServer(t, cfg), StartServer(t, cfg)}
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("shared-db")})

	const n = 6
	runs := make([]apiv1.Run, n)
	for i := range n {
		id := fmt.Sprintf("multi-%d", i)
		s := servers[i%2]
		s.CreateStack(t, id, repo.URL, "--autodeploy")
		runs[i] = s.Deploy(t, id)
	}
	workers := map[string]int{}
	for i, queued := range runs {
		s := servers[(i+1)%2] // read through the server that did not queue it
		r := s.WaitRun(t, queued.ID, apiv1.StateFinished)
		for _, st := range []string{apiv1.StateReady, apiv1.StatePreparing, apiv1.StateApplying, apiv1.StateFinished} {
			if c := Count(r, st); c != 1 {
				t.Errorf("run %s entered %s %d times, want once: %v", r.ID, st, c, Path(r))
			}
		}
		checkDelta(t, r, 1, 0, 0)
		logs := s.WaitLog(t, r.Stack, r.ID, "Apply complete")
		if c := strings.Count(logs, "Apply complete!"); c != 1 {
			t.Errorf("run %s applied %d times according to its log:\n%s", r.ID, c, logs)
		}
		if v := s.Outputs(t, r.Stack)["value"].Value; v != "shared-db" {
			t.Errorf("stack %s output value = %v", r.Stack, v)
		}
		for _, tr := range r.Transitions {
			if tr.To == apiv1.StatePreparing {
				workers[tr.Actor]++
			}
		}
	}
	t.Logf("runs claimed per worker: %v", workers)
}

// A run planned by a replica that is gone is applied through another one:
// the saved plan keeps the state backend's configuration, but not the
// address of the server that planned (it comes from the environment).
func TestConfirmAfterThePlanningReplicaIsGone(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	cfg := ServerConfig{DBURL: dbtest.PostgresURL(t), Token: randomHex(t, 24), Workers: 1,
		Env: []string{"GANTRY_ENCRYPTION_KEY=" + randomHex(t, 32)}}
	planner := StartServer(t, cfg)
	idle := cfg
	idle.Args = []string{"--builtin-workers", "0"}
	other := StartServer(t, idle)

	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("failover")})
	planner.CreateStack(t, "failover", repo.URL)
	r := planner.WaitRun(t, planner.Deploy(t, "failover").ID, apiv1.StateUnconfirmed)
	planner.Kill(t)

	applier := StartServer(t, cfg)
	other.MustGantry(t, "stack", "confirm", "--id", "failover", "--run", r.ID)
	done := applier.WaitRun(t, r.ID, apiv1.StateFinished, apiv1.StateFailed)
	if done.State != apiv1.StateFinished {
		t.Fatalf("the run planned by the replica that is gone ended %s (%s):\n%s", done.State, done.Reason, applier.Logs(t, "failover", r.ID))
	}
	if v := applier.Outputs(t, "failover")["value"].Value; v != "failover" {
		t.Errorf("output value = %v, want failover", v)
	}
}
