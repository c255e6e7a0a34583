package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// waitProcessEnds waits until a process below pid whose command line holds
// args has run and ended.
func waitProcessEnds(t *testing.T, pid int, args string) {
	t.Helper()
	var p process
	waitFor(t, "a process "+args, func() bool {
		for _, d := range descendants(pid) {
			if strings.Contains(d.args, args) {
				p = d
				return true
			}
		}
		return false
	})
	waitFor(t, "the end of "+p.args, func() bool { return !alive(p.pid) })
}

// sleepUntil sleeps until t (a wait the test means: the scenario needs
// that much time to have passed, not a guess at how long something takes).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

// wantApplied checks that run r finished and that its apply's state is
// the stack's.
func wantApplied(t *testing.T, s *Server, stack string, r apiv1.Run, value string) {
	t.Helper()
	done := s.WaitRun(t, r.ID, apiv1.StateFinished, apiv1.StateFailed)
	log := s.Logs(t, stack, r.ID)
	if done.State != apiv1.StateFinished {
		t.Fatalf("the run whose worker survived the outage is %s (%q):\n%s", done.State, done.Reason, log)
	}
	if strings.Contains(log, "giving up after") || strings.Contains(log, "Failed to save state") {
		t.Errorf("OpenTofu gave up on the state:\n%s", log)
	}
	if cur := CurrentVersion(t, s.StateVersions(t, stack)); cur.Run != r.ID {
		t.Errorf("the current state version is run %q's, want %s's", cur.Run, r.ID)
	}
	if v := s.Outputs(t, stack)["value"].Value; v != value {
		t.Errorf("output value = %v, want %s", v, value)
	}
}

// The server is killed during an apply and stays down longer than
// --worker-timeout; the private worker running the apply survives (here
// it is even frozen past the restart, its heartbeats held back). After the
// restart the server takes nobody for lost before a whole worker timeout
// has passed, so the worker's next heartbeat keeps its job; and OpenTofu,
// whose state upload fell in the outage, retries it until the server is
// back: the apply finishes with its state stored.
func TestServerDownLongerThanWorkerTimeout(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	const timeout = 10 * time.Second
	s := StartServer(t, ServerConfig{Args: []string{"--builtin-workers", "0", "--worker-timeout", timeout.String()}})
	var pool poolCreated
	s.MustJSON(t, &pool, "workerpool", "create", "--id", "outage", "--space", "root")
	w := s.StartWorker(t, "o1", pool.Token)
	s.workerID(t, "outage", "o1")
	repo := NewRepo(t, map[string]string{"main.tf": slowConfig("after-outage")})
	s.CreateStack(t, "outage", repo.URL, "--worker-pool", "outage", "--autodeploy")
	r := s.Deploy(t, "outage")
	s.WaitRun(t, r.ID, apiv1.StateApplying)
	s.WaitLog(t, "outage", r.ID, "Provisioning with 'local-exec'")

	s.Kill(t)
	killed := time.Now()
	if err := w.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer w.cmd.Process.Signal(syscall.SIGCONT)
	// OpenTofu (not frozen) ends the provisioner and tries to save the
	// state while the server is down: its default retries (3 attempts,
	// about 3 s) would be over 8 s later.
	waitProcessEnds(t, w.cmd.Process.Pid, "sleep 20")
	sleepUntil(time.Now().Add(8 * time.Second))
	// The worker's last heartbeat is older than the timeout.
	sleepUntil(killed.Add(timeout + time.Second))
	s = s.Restart(t)
	// The reaper passes every timeout/4: without the grace after the start
	// the first pass would fail the run.
	sleepUntil(time.Now().Add(timeout * 4 / 10))
	if got := s.GetRun(t, r.ID); got.State != apiv1.StateApplying {
		t.Fatalf("run after the restart, its worker still frozen: %s (%q), want APPLYING", got.State, got.Reason)
	}
	if err := w.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wantApplied(t, s, "outage", r, "after-outage")
}

// PostgreSQL is cut off from the server for longer than --worker-timeout
// while a built-in worker applies, and the apply's state upload falls in
// the outage: the run is not failed as lost (the server could not record
// heartbeats; its own built-in worker is alive), OpenTofu retries the
// upload until the database is back, and the apply finishes with its
// state stored.
func TestDatabaseOutageDuringApply(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	const timeout = 6 * time.Second
	url := dbtest.PostgresURL(t)
	s := StartServer(t, ServerConfig{DBURL: url, Workers: 1, Args: []string{"--worker-timeout", timeout.String()}})
	repo := NewRepo(t, map[string]string{"main.tf": slowConfig("after-db-outage")})
	s.CreateStack(t, "db-outage", repo.URL, "--autodeploy")
	r := s.Deploy(t, "db-outage")
	s.WaitRun(t, r.ID, apiv1.StateApplying)
	s.WaitLog(t, "db-outage", r.ID, "Provisioning with 'local-exec'")

	end := dbtest.Outage(t, url)
	began := time.Now()
	waitProcessEnds(t, s.cmd.Process.Pid, "sleep 20")
	sleepUntil(time.Now().Add(8 * time.Second))    // OpenTofu's default retries would be over
	sleepUntil(began.Add(timeout + 2*time.Second)) // longer than the worker timeout
	end()
	wantApplied(t, s, "db-outage", r, "after-db-outage")
}
