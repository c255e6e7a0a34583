package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/workerapi"
)

// appendCall is one AppendLog call seen by fakeProto.
type appendCall struct {
	offset int64
	data   string
	err    error // what the fake answered
}

// fakeProto is a workerapi.Protocol that records what a worker reports.
// Its hooks (nil by default) decide the answers.
type fakeProto struct {
	mu sync.Mutex

	appends   []appendCall
	phases    []workerapi.PhaseRequest
	artifacts map[string][]byte
	bodies    map[string]string // the Go type of each artifact's upload body
	planned   []workerapi.PlannedRequest
	finishes  []workerapi.FinishRequest
	handoffs  int
	claims    int

	// appendErr answers the n-th (0-based) AppendLog call.
	appendErr func(n int) error
	// next is the answer to Planned ("apply" when empty).
	next string
	// heartbeat answers Heartbeat.
	heartbeat func() (workerapi.HeartbeatResponse, error)
	// claim answers Claim.
	claim func(ctx context.Context, n int) (*workerapi.Job, error)
	// registerErr answers Register; registered are its requests.
	registerErr error
	registered  []workerapi.RegisterRequest
	// register answers the n-th (0-based) Register call (nil: accepted,
	// unless registerErr).
	register  func(n int) error
	registers int
	deltas    []workerapi.DeltaRequest
	// phaseErr answers Phase (nil: accepted).
	phaseErr  func(req workerapi.PhaseRequest) error
	nextQueue []string // answers to Planned, in order, before next
	// handoffErr answers the n-th (0-based) HandOff call (nil: accepted).
	handoffErr func(n int) error
	// finishErr answers the n-th (0-based) Finish call (nil: accepted).
	finishErr   func(n int) error
	finishTries int
	// reportDelay is how long the server takes to answer Planned and
	// HandOff (policies evaluated); a caller that gives up first gets its
	// context's error. reportCalls counts those calls.
	reportDelay time.Duration
	reportCalls int
	// deregister answers Deregister (nil: accepted); deregisters counts
	// its calls, and finishesAtDeregister is how many jobs had finished
	// by the first.
	deregister           func(ctx context.Context) error
	deregisters          int
	finishesAtDeregister int
	// drains counts Drain calls; finishesAtDrain is how many jobs had
	// finished at the first.
	drains          int
	finishesAtDrain int
}

var _ workerapi.Protocol = (*fakeProto)(nil)

func newFakeProto() *fakeProto {
	return &fakeProto{artifacts: map[string][]byte{}, bodies: map[string]string{}}
}

func (f *fakeProto) Register(ctx context.Context, req workerapi.RegisterRequest) (workerapi.RegisterResponse, error) {
	f.mu.Lock()
	f.registered = append(f.registered, req)
	f.registers++
	n, register := f.registers, f.register
	f.mu.Unlock()
	if register != nil {
		if err := register(n - 1); err != nil {
			return workerapi.RegisterResponse{}, err
		}
	}
	if f.registerErr != nil {
		return workerapi.RegisterResponse{}, f.registerErr
	}
	return workerapi.RegisterResponse{WorkerID: fmt.Sprintf("wkr-%d", n), Token: "gwt_x", Pool: ""}, nil
}

func (f *fakeProto) Claim(ctx context.Context, wait time.Duration) (*workerapi.Job, error) {
	f.mu.Lock()
	n := f.claims
	f.claims++
	claim := f.claim
	f.mu.Unlock()
	if claim == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return claim(ctx, n)
}

func (f *fakeProto) Phase(ctx context.Context, job *workerapi.Job, req workerapi.PhaseRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.phases = append(f.phases, req)
	if f.phaseErr != nil {
		return f.phaseErr(req)
	}
	return nil
}

func (f *fakeProto) AppendLog(ctx context.Context, job *workerapi.Job, offset int64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var err error
	if f.appendErr != nil {
		err = f.appendErr(len(f.appends))
	}
	f.appends = append(f.appends, appendCall{offset: offset, data: string(data), err: err})
	return err
}

func (f *fakeProto) PutArtifact(ctx context.Context, job *workerapi.Job, name string, body io.Reader, size int64) error {
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if int64(len(data)) != size {
		return fmt.Errorf("artifact %s: %d bytes sent, %d announced", name, len(data), size)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.artifacts[name] = data
	f.bodies[name] = fmt.Sprintf("%T", body)
	return nil
}

func (f *fakeProto) GetArtifact(ctx context.Context, job *workerapi.Job, name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.artifacts[name]
	if !ok {
		return nil, &workerapi.StatusError{Status: 404, Code: "not_found", Message: "no artifact " + name}
	}
	return bytes.Clone(data), nil
}

// slowReport waits reportDelay, or until ctx ends.
func (f *fakeProto) slowReport(ctx context.Context) error {
	f.mu.Lock()
	f.reportCalls++
	d := f.reportDelay
	f.mu.Unlock()
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeProto) Planned(ctx context.Context, job *workerapi.Job, req workerapi.PlannedRequest) (workerapi.PlannedResponse, error) {
	if err := f.slowReport(ctx); err != nil {
		return workerapi.PlannedResponse{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.planned = append(f.planned, req)
	next := f.next
	if len(f.nextQueue) > 0 {
		next, f.nextQueue = f.nextQueue[0], f.nextQueue[1:]
	}
	if next == "" {
		next = "apply"
	}
	return workerapi.PlannedResponse{Next: next}, nil
}

func (f *fakeProto) RecordDelta(ctx context.Context, job *workerapi.Job, req workerapi.DeltaRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deltas = append(f.deltas, req)
	return nil
}

func (f *fakeProto) HandOff(ctx context.Context, job *workerapi.Job) error {
	if err := f.slowReport(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handoffs++
	if f.handoffErr != nil {
		return f.handoffErr(f.handoffs - 1)
	}
	return nil
}

func (f *fakeProto) Heartbeat(ctx context.Context, job *workerapi.Job) (workerapi.HeartbeatResponse, error) {
	f.mu.Lock()
	hb := f.heartbeat
	f.mu.Unlock()
	if hb == nil {
		return workerapi.HeartbeatResponse{}, nil
	}
	return hb()
}

func (f *fakeProto) Finish(ctx context.Context, job *workerapi.Job, req workerapi.FinishRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.finishTries
	f.finishTries++
	if f.finishErr != nil {
		if err := f.finishErr(n); err != nil {
			return err
		}
	}
	f.finishes = append(f.finishes, req)
	return nil
}

func (f *fakeProto) Deregister(ctx context.Context) error {
	f.mu.Lock()
	if f.deregisters == 0 {
		f.finishesAtDeregister = len(f.finishes)
	}
	f.deregisters++
	deregister := f.deregister
	f.mu.Unlock()
	if deregister == nil {
		return nil
	}
	return deregister(ctx)
}

func (f *fakeProto) Drain(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drains == 0 {
		f.finishesAtDrain = len(f.finishes)
	}
	f.drains++
	return nil
}

// calls returns a copy of the AppendLog calls so far.
func (f *fakeProto) calls() []appendCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]appendCall(nil), f.appends...)
}

// log returns the log as the server would hold it, starting at start:
// the accepted appends, which must be contiguous.
func (f *fakeProto) log(t *testing.T, start int64) string {
	t.Helper()
	var ok []appendCall
	for _, c := range f.calls() {
		if c.err == nil {
			ok = append(ok, c)
		}
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].offset < ok[j].offset })
	var b bytes.Buffer
	next := start
	for _, c := range ok {
		if c.offset != next {
			t.Fatalf("append at offset %d, want %d (calls %s)", c.offset, next, describeCalls(f.calls()))
		}
		b.WriteString(c.data)
		next += int64(len(c.data))
	}
	return b.String()
}

func describeCalls(cs []appendCall) string {
	var b bytes.Buffer
	for _, c := range cs {
		fmt.Fprintf(&b, "[off=%d len=%d err=%v] ", c.offset, len(c.data), c.err)
	}
	return b.String()
}

var errTransient = errors.New("connection reset by peer")
