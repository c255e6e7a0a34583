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
//
// It holds at most limit bytes that are not sent yet: past that, Write
// waits until the background sender has made room, which holds back the
// tool at its pipe rather than growing the buffer (the worker built into
// the server would otherwise keep a run's whole output in the server's
// memory). The sender never waits for a writer, so this cannot deadlock
// with the tool. Should the server accept nothing for stallAfter, Write
// stops waiting and drops what does not fit, and the log gets a line
// saying how much, where the gap is: a server down must not hang the job.
type logStream struct {
	proto  workerapi.Protocol
	job    *workerapi.Job
	masker *secrets.Masker
	// limit is the most bytes held unsent (buf and pending); stallAfter
	// how long the server may accept nothing before Write drops output.
	limit      int
	stallAfter time.Duration

	sendMu       sync.Mutex // one flush at a time: offsets must not be sent twice
	mu           sync.Mutex
	room         *sync.Cond // on mu: bytes were sent or dropped, or the stream ended
	buf          []byte     // not yet masked
	pending      []byte     // masked, not yet sent
	offset       int64
	dead         bool      // the server refuses appends: the run ended
	closed       bool      // Close was called: nothing sends any more
	failingSince time.Time // the first failed append since the last success
	dropped      int64     // bytes dropped since the last line that said so
	waiting      int       // writers waiting for room (for tests)
	maxHeld      int       // the most bytes held unsent at once (for tests)
	wake         chan struct{}
	done         chan struct{}
	stopped      chan struct{}
}

const (
	flushEvery = 150 * time.Millisecond
	// chunkSize is the most one append sends; longLine is how much of a
	// line without its newline is held before it is sent in pieces.
	chunkSize = 512 << 10
	longLine  = 64 << 10
	// defaultLogLimit is the most bytes a stream holds unsent.
	defaultLogLimit = 1 << 20
)

func newLogStream(proto workerapi.Protocol, job *workerapi.Job, masker *secrets.Masker) *logStream {
	l := &logStream{proto: proto, job: job, masker: masker, offset: job.LogOffset,
		limit: defaultLogLimit, stallAfter: reportRetryFor,
		wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	l.room = sync.NewCond(&l.mu)
	// A very long line is sent in pieces, holding back what could be the
	// start of a secret: the limit leaves room for both.
	l.limit = max(l.limit, longLine+2*masker.MaxLen())
	go l.loop()
	return l
}

// Write implements io.Writer. It returns once p is held (or dropped):
// while the stream holds its limit, it waits for the sender.
func (l *logStream) Write(p []byte) (int, error) {
	n := len(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(p) > 0 && !l.dead {
		free := l.limit - len(l.buf) - len(l.pending)
		if free <= 0 && (l.closed || l.stalled()) {
			l.dropped += int64(len(p))
			break
		}
		if free <= 0 {
			l.kick()
			l.waiting++
			l.room.Wait()
			l.waiting--
			continue
		}
		if l.dropped > 0 {
			l.noteDropped()
		}
		k := min(free, len(p))
		l.buf = append(l.buf, p[:k]...)
		p = p[k:]
		l.maxHeld = max(l.maxHeld, len(l.buf)+len(l.pending))
		if len(l.buf) > longLine || len(l.buf)+len(l.pending) >= l.limit {
			l.kick()
		}
	}
	return n, nil
}

// stalled tells whether the server has accepted nothing for stallAfter.
func (l *logStream) stalled() bool {
	return !l.failingSince.IsZero() && time.Since(l.failingSince) >= l.stallAfter
}

// noteDropped writes, where output was dropped, a line saying how much.
func (l *logStream) noteDropped() {
	if len(l.buf) > 0 && l.buf[len(l.buf)-1] != '\n' {
		l.buf = append(l.buf, '\n')
	}
	l.buf = fmt.Appendf(l.buf, "[gantry] %d bytes of output were dropped here: the server accepted no log for %s\n", l.dropped, l.stallAfter)
	l.dropped = 0
}

// kick wakes the sender (l.mu held or not).
func (l *logStream) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
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
		if cut == 0 && len(l.buf) > longLine {
			// One very long line: send it in pieces, but hold back what
			// could be the start of a secret that the next write completes,
			// and cut before a secret the piece would split.
			cut = max(len(l.buf)-max(l.masker.MaxLen()-1, 0), 0)
			if safe := l.masker.SafeCut(l.buf, cut); safe >= cut/2 {
				cut = safe // else: a line of a secret repeated over and over
			}
		}
	}
	if cut == 0 {
		return
	}
	l.pending = append(l.pending, l.masker.String(string(l.buf[:cut]))...)
	l.buf = append(l.buf[:0], l.buf[cut:]...)
}

// flush sends one chunk; it returns how many bytes it sent and the error
// of a failed append.
func (l *logStream) flush(all bool) (int, error) {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.mu.Lock()
	if all && l.dropped > 0 {
		l.noteDropped()
	}
	l.take(all)
	data := l.pending
	if len(data) > chunkSize {
		data = data[:chunkSize]
	}
	off, dead := l.offset, l.dead
	l.mu.Unlock()
	if len(data) == 0 || dead {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := l.proto.AppendLog(ctx, l.job, off, data)
	cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		// What was sent leaves the buffer (a copy: appends reuse it).
		l.pending = append(l.pending[:0], l.pending[len(data):]...)
		l.offset += int64(len(data))
		l.failingSince = time.Time{}
	case workerapi.Permanent(err):
		l.dead = true // the run ended or the job token expired
	case l.failingSince.IsZero():
		l.failingSince = time.Now()
	}
	l.room.Broadcast()
	if err != nil {
		return 0, err
	}
	return len(data), nil
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
			// Chunk after chunk while there is more than a chunk to send.
			for {
				if n, err := l.flush(false); n == 0 || err != nil || l.unsent() <= chunkSize {
					break
				}
			}
		}
	}
}

// unsent is how many bytes are held, not sent yet.
func (l *logStream) unsent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return 0
	}
	return len(l.buf) + len(l.pending)
}

// Sync sends everything written so far; call it before a report that may
// end the run (after which appends are refused). It sends chunk after
// chunk until nothing is left, retrying transient errors with backoff, for
// at most reportRetryFor in all (a server briefly down, a large output).
func (l *logStream) Sync() {
	deadline := time.Now().Add(reportRetryFor)
	wait := reportBackoff
	for {
		_, err := l.flush(true)
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

// Close sends what is left and stops the stream; what is written after
// it is dropped once the stream holds its limit.
func (l *logStream) Close() {
	close(l.done)
	<-l.stopped
	l.mu.Lock()
	l.closed = true
	l.room.Broadcast()
	l.mu.Unlock()
}
