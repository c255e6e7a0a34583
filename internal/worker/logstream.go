package worker

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// logStream buffers a job's output, masks secrets line by line, and appends
// it to the run's log in the background. Appends are idempotent by offset,
// so a failed append is retried with the same offset.
type logStream struct {
	proto  workerapi.Protocol
	job    *workerapi.Job
	masker *secrets.Masker

	sendMu  sync.Mutex // one flush at a time: offsets must not be sent twice
	mu      sync.Mutex
	buf     []byte // not yet masked
	pending []byte // masked, not yet sent
	offset  int64
	dead    bool // the server refuses appends: the run ended
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

const flushEvery = 150 * time.Millisecond

func newLogStream(proto workerapi.Protocol, job *workerapi.Job, masker *secrets.Masker) *logStream {
	l := &logStream{proto: proto, job: job, masker: masker, offset: job.LogOffset,
		wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go l.loop()
	return l
}

// Write implements io.Writer.
func (l *logStream) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, p...)
	big := len(l.buf) > 64<<10
	l.mu.Unlock()
	if big {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Printf writes a line of Gantry's own commentary.
func (l *logStream) Printf(format string, args ...any) {
	fmt.Fprintf(l, "[gantry] "+format+"\n", args...)
}

// take moves complete lines (everything when all) from buf to pending,
// masked.
func (l *logStream) take(all bool) {
	cut := len(l.buf)
	if !all {
		cut = bytes.LastIndexByte(l.buf, '\n') + 1
		if cut == 0 && len(l.buf) > 64<<10 {
			// One very long line: send it but hold back what could be the
			// start of a secret that the next write completes.
			cut = max(len(l.buf)-(l.masker.MaxLen()-1), 0)
		}
	}
	if cut == 0 {
		return
	}
	l.pending = append(l.pending, l.masker.String(string(l.buf[:cut]))...)
	l.buf = append(l.buf[:0], l.buf[cut:]...)
}

// flush sends one chunk; it returns the error of a failed append.
func (l *logStream) flush(all bool) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.mu.Lock()
	l.take(all)
	data := l.pending
	if len(data) > 512<<10 {
		data = data[:512<<10]
	}
	off, dead := l.offset, l.dead
	l.mu.Unlock()
	if len(data) == 0 || dead {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.proto.AppendLog(ctx, l.job, off, data)
	cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.pending = l.pending[len(data):]
		l.offset += int64(len(data))
	case workerapi.Permanent(err):
		l.dead = true // the run ended or the job token expired
	}
	return err
}

func (l *logStream) loop() {
	defer close(l.stopped)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			l.Sync()
			return
		case <-t.C:
			l.flush(false)
		case <-l.wake:
			l.flush(false)
		}
	}
}

// Sync sends everything written so far; call it before a report that may
// end the run (after which appends are refused). It sends chunk after
// chunk until nothing is left, retrying transient errors with backoff, for
// at most reportRetryFor in all (a server briefly down, a large output).
func (l *logStream) Sync() {
	deadline := time.Now().Add(reportRetryFor)
	wait := reportBackoff
	for {
		err := l.flush(true)
		l.mu.Lock()
		left, dead := len(l.pending)+len(l.buf), l.dead
		l.mu.Unlock()
		if left == 0 || dead || time.Now().After(deadline) {
			return
		}
		if err == nil {
			wait = reportBackoff
			continue
		}
		time.Sleep(wait)
		wait = min(wait*2, reportBackoffMax)
	}
}

// Close sends what is left and stops the stream.
func (l *logStream) Close() {
	close(l.done)
	<-l.stopped
}
