package worker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// endRetries makes the retries of a job's end short for one test: reports
// retried for report, the end of the log and finish for end.
func endRetries(t *testing.T, report, end time.Duration) {
	t.Helper()
	r, e, tl, b, m := reportRetryFor, endRetryFor, tailRetryFor, reportBackoff, reportBackoffMax
	t.Cleanup(func() { reportRetryFor, endRetryFor, tailRetryFor, reportBackoff, reportBackoffMax = r, e, tl, b, m })
	reportRetryFor, endRetryFor, tailRetryFor, reportBackoff, reportBackoffMax = report, end, end, time.Millisecond, 5*time.Millisecond
}

// A server down for longer than a report is retried (a maintenance window)
// still gets the job's real outcome when it is back, and the job's
// heartbeats go on while the worker waits, so that the server back does
// not take the run for lost first.
func TestJobFinishOutlastsALongOutage(t *testing.T) {
	endRetries(t, 20*time.Millisecond, time.Minute) // the minute only bounds a broken test
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Hooks.BeforeInit = []string{"exit 4"}
	down := time.Now().Add(300 * time.Millisecond) // 15 times the report's retries
	var beatsWhileDown atomic.Int32
	fx.proto.heartbeat = func() (workerapi.HeartbeatResponse, error) {
		if time.Now().Before(down) {
			beatsWhileDown.Add(1)
			return workerapi.HeartbeatResponse{}, errTransient
		}
		return workerapi.HeartbeatResponse{}, nil
	}
	fx.proto.finishErr = func(int) error {
		if time.Now().Before(down) {
			return &workerapi.StatusError{Status: 503, Code: "unavailable", Message: "database down"}
		}
		return nil
	}
	fx.worker.execute(context.Background(), job, 0)
	p := fx.proto
	if len(p.finishes) != 1 || p.finishes[0].OK || !strings.Contains(p.finishes[0].Reason, "before_init hook failed") {
		t.Fatalf("finish accepted %d times (%+v) after %d tries; want the hook's failure once the server is back", len(p.finishes), p.finishes, p.finishTries)
	}
	if p.finishTries < 3 {
		t.Errorf("%d Finish calls, want retries while the server was down", p.finishTries)
	}
	if beatsWhileDown.Load() < 3 {
		t.Errorf("%d heartbeats while the server was down, want them to go on while finish is retried", beatsWhileDown.Load())
	}
}

// A worker shutting down waits for a server that is down no longer than a
// report's retries, not the whole end's.
func TestJobFinishGivesUpSoonerWhenShuttingDown(t *testing.T) {
	endRetries(t, 50*time.Millisecond, 10*time.Second)
	fx := newJobFixture(t, nil)
	job := fx.job("plan")
	job.Hooks.BeforeInit = []string{"exit 4"}
	fx.proto.finishErr = func(int) error { return errTransient }
	kill, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	fx.worker.execute(kill, job, 0)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the job's end took %s while shutting down, want about the report's retries", took)
	}
	if len(fx.proto.finishes) != 0 || fx.proto.finishTries < 2 {
		t.Errorf("finish accepted %d times after %d tries; want retries, then giving up", len(fx.proto.finishes), fx.proto.finishTries)
	}
}

// A job that fails on its own just after someone stopped the run, before
// a heartbeat told it, ends the run STOPPED: its log's closing line says
// so, asked of the server once the job failed.
func TestJobFailingRightAfterAStopSaysStopped(t *testing.T) {
	fx := newJobFixture(t, nil)
	fx.worker.cfg.HeartbeatEvery = time.Hour // no heartbeat during the job
	job := fx.job("plan")
	job.Hooks.BeforeInit = []string{"exit 4"}
	var asked atomic.Int32
	fx.proto.heartbeat = func() (workerapi.HeartbeatResponse, error) {
		asked.Add(1)
		return workerapi.HeartbeatResponse{Stop: true, Reason: "stop requested by api_key::admin", State: "STOPPED"}, nil
	}
	fx.worker.execute(context.Background(), job, 0)
	if asked.Load() == 0 {
		t.Fatal("the server was not asked whether the run was stopped")
	}
	lines := strings.Split(strings.TrimRight(fx.proto.log(t, 0), "\n"), "\n")
	if last := lines[len(lines)-1]; last != "[gantry] Run stopped: stop requested by api_key::admin" {
		t.Errorf("the log ends with %q, want the stop", last)
	}
	if len(fx.proto.finishes) != 1 || fx.proto.finishes[0].OK || fx.proto.finishes[0].Reason != "stop requested by api_key::admin" {
		t.Errorf("Finish = %+v, want failed with the stop's reason", fx.proto.finishes)
	}
}

// The first signal (Run's stop) is enough: a worker draining after
// SIGTERM waits for a server that does not take the end of a job a
// report's retries, not the hour a running worker gives it (a service
// manager kills it long before), and says in its log why the slot is
// still busy.
func TestJobEndWhileStoppingGivesUpSooner(t *testing.T) {
	endRetries(t, 50*time.Millisecond, 10*time.Second)
	fx := newJobFixture(t, nil)
	var logs bytes.Buffer
	fx.worker.cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	stop, cancel := context.WithCancel(context.Background())
	cancel()
	fx.worker.stopping = stop
	job := fx.job("plan")
	job.Hooks.BeforeInit = []string{"exit 4"}
	fx.proto.finishErr = func(int) error { return errTransient }
	start := time.Now()
	fx.worker.execute(context.Background(), job, 0)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the job's end took %s after the worker's stop, want about the report's retries", took)
	}
	if !strings.Contains(logs.String(), "the server does not take the end of the job; retrying") {
		t.Errorf("no warning while retrying the end of the job; log:\n%s", logs.String())
	}
}

// A failed finish report (the server briefly down) is retried: the job's
// real outcome reaches the server instead of a later "worker lost".
func TestJobFinishRetriedOnTransientErrors(t *testing.T) {
	defer func(b time.Duration) { reportBackoff = b }(reportBackoff)
	reportBackoff = time.Millisecond
	for _, tt := range []struct {
		name      string
		err       error
		wantTries int
		wantOK    int
	}{
		{"network error", errTransient, 4, 1},
		{"server error 503", &workerapi.StatusError{Status: 503, Code: "unavailable", Message: "down"}, 4, 1},
		{"permanent 409", &workerapi.StatusError{Status: 409, Code: "conflict", Message: "run ended"}, 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			job := fx.job("plan")
			job.Hooks.BeforeInit = []string{"exit 4"}
			fx.proto.finishErr = func(n int) error {
				if n < 3 {
					return tt.err
				}
				return nil
			}
			fx.worker.execute(context.Background(), job, 0)
			p := fx.proto
			if p.finishTries != tt.wantTries || len(p.finishes) != tt.wantOK {
				t.Fatalf("%d Finish calls, %d accepted; want %d and %d", p.finishTries, len(p.finishes), tt.wantTries, tt.wantOK)
			}
			if tt.wantOK == 1 && (p.finishes[0].OK || !strings.Contains(p.finishes[0].Reason, "before_init hook failed")) {
				t.Errorf("Finish = %+v, want the hook's failure", p.finishes[0])
			}
		})
	}
}

// Planned and handoff, which the server answers after evaluating policies,
// are waited for as long as the job says the server may take, however
// longer than other reports: a slow plan policy ends as the server decides
// (its timeout, failed closed), not as a worker's timeout and a retry that
// evaluates again.
func TestJobWaitsForPolicyReports(t *testing.T) {
	defer func(a time.Duration) { reportAttempt = a }(reportAttempt)
	reportAttempt = 50 * time.Millisecond
	for _, next := range []string{"done", "save"} {
		t.Run(next, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			fx.proto.next, fx.proto.reportDelay = next, 300*time.Millisecond
			job := fx.job("plan")
			job.ReportTimeoutMS = 5000
			fx.worker.execute(context.Background(), job, 0)
			p := fx.proto
			wantCalls, wantHandoffs := 1, 0
			if next == "save" {
				wantCalls, wantHandoffs = 2, 1
			}
			if p.reportCalls != wantCalls || len(p.planned) != 1 || p.handoffs != wantHandoffs || len(p.finishes) != 0 {
				t.Fatalf("%d report calls, %d planned, %d handoffs, finishes %+v; want %d, 1, %d and none; log:\n%s",
					p.reportCalls, len(p.planned), p.handoffs, p.finishes, wantCalls, wantHandoffs, p.log(t, 0))
			}
		})
	}
}
