package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// A stopping worker says goodbye once, after its jobs have ended (the job
// in progress when it was told to stop included), and stops cleanly
// whatever the answer: a server of an older release (404, 405), one in
// trouble, or one that does not answer within GoodbyeTimeout.
func TestWorkerSaysGoodbyeAfterItsJobs(t *testing.T) {
	defer func(d time.Duration) { GoodbyeTimeout = d }(GoodbyeTimeout)
	GoodbyeTimeout = 200 * time.Millisecond
	for _, tt := range []struct {
		name   string
		answer func(ctx context.Context) error
	}{
		{"accepted", nil},
		{"older server", func(context.Context) error {
			return &workerapi.StatusError{Status: 404, Code: "not_found", Message: "404 page not found"}
		}},
		{"older server 405", func(context.Context) error { return &workerapi.StatusError{Status: 405} }},
		{"server error", func(context.Context) error {
			return &workerapi.StatusError{Status: 500, Code: "internal", Message: "internal error"}
		}},
		{"unreachable", func(context.Context) error { return errTransient }},
		{"no answer", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fx := newJobFixture(t, nil)
			fx.worker.cfg.Concurrency = 2
			stop, cancel := context.WithCancel(context.Background())
			defer cancel()
			fx.proto.deregister = tt.answer
			fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) {
				if n == 0 {
					cancel() // told to stop while it has a job: the job goes on
					return fx.job("plan"), nil
				}
				<-ctx.Done()
				return nil, ctx.Err()
			}
			done := make(chan error, 1)
			go func() { done <- fx.worker.Run(stop, context.Background()) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run = %v, want nil", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after stop")
			}
			fx.proto.mu.Lock()
			defer fx.proto.mu.Unlock()
			if len(fx.proto.finishes) != 1 {
				t.Fatalf("Finish = %+v, want the job finished", fx.proto.finishes)
			}
			if fx.proto.deregisters != 1 || fx.proto.finishesAtDeregister != 1 {
				t.Errorf("Deregister called %d times, after %d jobs finished; want once, after the job", fx.proto.deregisters, fx.proto.finishesAtDeregister)
			}
		})
	}
}

// A worker that never registered (refused) says no goodbye; one stopped by
// a refused claim does (its row would otherwise linger).
func TestWorkerGoodbyeOnlyWhenRegistered(t *testing.T) {
	fx := newJobFixture(t, nil)
	fx.proto.registerErr = &workerapi.StatusError{Status: 401, Code: "unauthenticated", Message: "invalid pool token"}
	if err := fx.worker.Run(context.Background(), context.Background()); err == nil {
		t.Fatal("Run = nil, want the refusal")
	}
	if fx.proto.deregisters != 0 {
		t.Errorf("Deregister called %d times by a worker that never registered", fx.proto.deregisters)
	}

	fx = newJobFixture(t, nil)
	refusal := &workerapi.StatusError{Status: 409, Code: "conflict", Message: "the pool's key pair changed"}
	fx.proto.claim = func(context.Context, int) (*workerapi.Job, error) { return nil, refusal }
	if err := fx.worker.Run(context.Background(), context.Background()); !errors.Is(err, refusal) {
		t.Fatalf("Run = %v, want the refusal", err)
	}
	if fx.proto.deregisters != 1 {
		t.Errorf("Deregister called %d times, want once", fx.proto.deregisters)
	}
}

// A worker stopped while a job runs tells the server at once that it
// drains (listed DRAINED, not counted among its pool's workers), then says
// goodbye once the job ended; one stopped idle only says goodbye.
func TestWorkerDrainsWhileItsJobRuns(t *testing.T) {
	for _, busy := range []bool{true, false} {
		t.Run(map[bool]string{true: "busy", false: "idle"}[busy], func(t *testing.T) {
			fx := newJobFixture(t, nil)
			stop, cancel := context.WithCancel(context.Background())
			defer cancel()
			fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) {
				if n == 0 && busy {
					cancel() // told to stop while it has a job: the job goes on
					job := fx.job("plan")
					job.Hooks.BeforeInit = []string{"sleep 1"}
					return job, nil
				}
				cancel()
				<-ctx.Done()
				return nil, ctx.Err()
			}
			if err := fx.worker.Run(stop, context.Background()); err != nil {
				t.Fatalf("Run = %v", err)
			}
			fx.proto.mu.Lock()
			defer fx.proto.mu.Unlock()
			switch {
			case busy && (fx.proto.drains != 1 || fx.proto.finishesAtDrain != 0):
				t.Errorf("Drain called %d times, after %d jobs finished; want once, while the job ran", fx.proto.drains, fx.proto.finishesAtDrain)
			case !busy && fx.proto.drains != 0:
				t.Errorf("an idle worker called Drain %d times, want none (its goodbye says all)", fx.proto.drains)
			}
			if fx.proto.deregisters != 1 {
				t.Errorf("Deregister called %d times, want once", fx.proto.deregisters)
			}
		})
	}
}
