package worker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/release"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// Tests of Worker.Run: registration, the claim loop and how it stops.

func TestWorkerRunClaimsAndStops(t *testing.T) {
	fx := newJobFixture(t, nil)
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) {
		switch n {
		case 0:
			return nil, nil // nothing yet
		case 1:
			return fx.job("plan"), nil
		}
		cancel()
		return nil, ctx.Err()
	}
	done := make(chan error, 1)
	go func() { done <- fx.worker.Run(stop, context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after stop", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after stop")
	}
	fx.proto.mu.Lock()
	defer fx.proto.mu.Unlock()
	if len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
		t.Errorf("Finish = %+v, want the claimed job finished OK", fx.proto.finishes)
	}
}

func TestWorkerRunRegisterRefused(t *testing.T) {
	fx := newJobFixture(t, nil)
	fx.proto.registerErr = &workerapi.StatusError{Status: 400, Code: "invalid", Message: "unsupported version"}
	err := fx.worker.Run(context.Background(), context.Background())
	var se *workerapi.StatusError
	if !errors.As(err, &se) || se.Status != 400 {
		t.Errorf("Run = %v, want the permanent registration error", err)
	}
}

// A server older than the worker refuses the register request's fields it
// does not know: the worker stops saying which side to upgrade. Other
// refusals are passed on as they are.
func TestWorkerRunRegisterRefusedByOlderServer(t *testing.T) {
	for _, tt := range []struct {
		message string
		hint    bool
	}{
		{`unknown field "features"`, true},
		{"worker protocol version 2 is not supported: this server speaks version 1; upgrade the worker", false},
	} {
		fx := newJobFixture(t, nil)
		fx.proto.registerErr = &workerapi.StatusError{Status: 400, Code: "invalid", Message: tt.message}
		err := fx.worker.Run(context.Background(), context.Background())
		var se *workerapi.StatusError
		if !errors.As(err, &se) || se.Message != tt.message {
			t.Errorf("Run = %v, want the registration error", err)
			continue
		}
		const hint = "the server is older than this worker: upgrade the server first (servers accept older workers)"
		if got := strings.Contains(err.Error(), hint); got != tt.hint {
			t.Errorf("Run = %q: hint %v, want %v", err, got, tt.hint)
		}
	}
}

// A worker reports its release at register, in its tools (see
// workerapi.ToolGantry), besides the tools it was given.
func TestWorkerRunReportsRelease(t *testing.T) {
	fx := newJobFixture(t, nil)
	fx.proto.registerErr = &workerapi.StatusError{Status: 400, Code: "invalid", Message: "stop here"}
	fx.worker.cfg.Tools = map[string]string{"tofu": "1.10.7"}
	_ = fx.worker.Run(context.Background(), context.Background())
	if len(fx.proto.registered) != 1 {
		t.Fatalf("registered %d times", len(fx.proto.registered))
	}
	got := fx.proto.registered[0].Tools
	if got[workerapi.ToolGantry] != release.String() || got["tofu"] != "1.10.7" || release.String() == "" {
		t.Errorf("tools = %v, want tofu and gantry=%q", got, release.String())
	}
	if _, ok := fx.worker.cfg.Tools[workerapi.ToolGantry]; ok {
		t.Error("the configured tools were changed")
	}
}

// A claim the server answers with an error the worker cannot help (a 400
// for a job it could not prepare, a 5xx) is retried; only a refusal of the
// worker itself (403, 409; 401 see TestWorkerRegistersAgainWhenUnknown)
// stops it.
func TestWorkerRunClaimErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		stops  bool
	}{
		{400, false}, {404, false}, {500, false}, {503, false},
		{403, true}, {409, true},
	} {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			fx := newJobFixture(t, nil)
			stop, cancel := context.WithCancel(context.Background())
			defer cancel()
			refusal := &workerapi.StatusError{Status: tt.status, Code: "x", Message: "no"}
			fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) {
				switch n {
				case 0, 1:
					return nil, refusal
				case 2:
					return fx.job("plan"), nil
				}
				cancel()
				return nil, ctx.Err()
			}
			done := make(chan error, 1)
			go func() { done <- fx.worker.Run(stop, context.Background()) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return")
			}
			fx.proto.mu.Lock()
			defer fx.proto.mu.Unlock()
			if tt.stops {
				if !errors.Is(err, refusal) || fx.proto.claims != 1 {
					t.Errorf("Run = %v after %d claims, want it stopped by the refusal", err, fx.proto.claims)
				}
				return
			}
			if err != nil || len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
				t.Errorf("Run = %v, Finish = %+v; want the worker to go on and run the next job", err, fx.proto.finishes)
			}
		})
	}
}

// A server that no longer knows the worker (401 to a claim: its database
// was restored from a backup taken before the worker registered) gets a
// new registration with the pool token, once, and the worker goes on; a
// claim refused again right after is a refusal. A registration refused in
// turn (the pool's token was reset) stops the worker with both answers.
// Concurrent loops of one worker that meet the answer together register
// once.
func TestWorkerRegistersAgainWhenUnknown(t *testing.T) {
	unknown := &workerapi.StatusError{Status: 401, Code: "unauthenticated",
		Message: "invalid worker token (unknown worker, or its pool's token was reset: register again with the new pool token)"}
	run := func(t *testing.T, fx *jobFixture, stop context.Context) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fx.worker.Run(stop, context.Background()) }()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return")
		}
		return nil
	}
	t.Run("registers again and goes on", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		var logs lockedBuffer
		fx.worker.cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
		stop, cancel := context.WithCancel(context.Background())
		defer cancel()
		fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) {
			switch n {
			case 0:
				return nil, unknown
			case 1:
				return fx.job("plan"), nil
			case 2:
				return nil, unknown // forgotten again later: registers again
			case 3:
				return nil, nil
			}
			cancel()
			return nil, ctx.Err()
		}
		err := run(t, fx, stop)
		fx.proto.mu.Lock()
		defer fx.proto.mu.Unlock()
		if err != nil || fx.proto.registers != 3 || len(fx.proto.finishes) != 1 || !fx.proto.finishes[0].OK {
			t.Errorf("Run = %v after %d registrations, Finish = %+v; want 3 registrations and the job run", err, fx.proto.registers, fx.proto.finishes)
		}
		if !strings.Contains(logs.String(), "registered again with the pool token") || !strings.Contains(logs.String(), "old_worker_id=wkr-1 worker_id=wkr-2") {
			t.Errorf("no warning naming the old and new worker ids:\n%s", logs.String())
		}
	})
	t.Run("refused right after registering again", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) { return nil, unknown }
		err := run(t, fx, context.Background())
		fx.proto.mu.Lock()
		defer fx.proto.mu.Unlock()
		if !errors.Is(err, unknown) || fx.proto.registers != 2 || fx.proto.claims != 2 {
			t.Errorf("Run = %v after %d registrations and %d claims, want the refusal after one registration again", err, fx.proto.registers, fx.proto.claims)
		}
	})
	t.Run("registration refused", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		reset := &workerapi.StatusError{Status: 401, Code: "unauthenticated", Message: "invalid pool token"}
		fx.proto.register = func(n int) error {
			if n > 0 {
				return reset
			}
			return nil
		}
		fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) { return nil, unknown }
		err := run(t, fx, context.Background())
		if !errors.Is(err, unknown) || err == nil || !strings.Contains(err.Error(), "registering again with the pool token was refused: server answered 401 unauthenticated: invalid pool token") {
			t.Errorf("Run = %v, want both refusals", err)
		}
	})
	t.Run("concurrent loops register once", func(t *testing.T) {
		fx := newJobFixture(t, nil)
		fx.worker.cfg.Concurrency = 3
		stop, cancel := context.WithCancel(context.Background())
		defer cancel()
		var arrived sync.WaitGroup
		arrived.Add(3)
		fx.proto.claim = func(ctx context.Context, n int) (*workerapi.Job, error) {
			if n < 3 { // the three loops' first claims, answered together
				arrived.Done()
				arrived.Wait()
				return nil, unknown
			}
			if n < 9 {
				return nil, nil
			}
			cancel()
			return nil, ctx.Err()
		}
		err := run(t, fx, stop)
		fx.proto.mu.Lock()
		defer fx.proto.mu.Unlock()
		if err != nil || fx.proto.registers != 2 {
			t.Errorf("Run = %v after %d registrations, want 2 (the first, and one again)", err, fx.proto.registers)
		}
	})
}
