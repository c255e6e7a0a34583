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
// stops waiting: what it is given is dropped from the stream until the
// server has taken what the stream held before (a drop run), and the log
// gets a line saying how much, where the gap is: a server down must not
// hang the job.
//
// Nothing dropped is lost: what the server did not take (a drop run, the
// tail Close could not send, everything once the server refuses the
// job's appends) is kept, masked as it would have been sent and in the
// order it was written, in a file on the worker (see logKeeper). The held
// bytes before a drop run precede it there when they are never sent.
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
	closed       bool      // Close was called: nothing sends any more
	gaveUp       bool      // nothing is sent any more (the server refused an append, or Close): all goes to keep
	failingSince time.Time // the first failed append since the last success
	sentMidLine  bool      // what the server took last does not end a line
	// A drop run: while dropping, what is written goes to spill (not yet
	// masked) and, masked, to keep; gapAt is where in keep's file the
	// held bytes (pending) belong should they never be sent.
	dropping bool
	dropped  int64 // bytes of output dropped in this drop run
	spill    []byte
	gapAt    int64
	keep     *logKeeper
	mark     lineMarker // marks output lines that begin like Gantry's own (under mu)
	waiting  int        // writers waiting for room (for tests)
	maxHeld  int        // the most bytes held unsent at once (for tests)
	wake     chan struct{}
	done     chan struct{}
	stopped  chan struct{}
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

// tailRetryFor is how long Close keeps trying to send the end of the log
// to a server that does not take it: as long as finish is retried
// (endRetryFor), for a server that is down. A server that is up answers
// for good: it takes the log of a run that has not ended without limit,
// and that of an ended run for workerapi.EndedGrace, then refuses it (a
// 4xx stops the retries). Once the worker is shutting down,
// reportRetryFor.
var tailRetryFor = endRetryFor

// newLogStream returns the stream of job's log; what the server does not
// take is kept in keep.
func newLogStream(proto workerapi.Protocol, job *workerapi.Job, masker *secrets.Masker, keep *logKeeper) *logStream {
	l := &logStream{proto: proto, job: job, masker: masker, offset: job.LogOffset, keep: keep,
		limit: defaultLogLimit, stallAfter: reportRetryFor,
		wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	l.room = sync.NewCond(&l.mu)
	// A very long line is sent in pieces, holding back what could be the
	// start of a secret: the limit leaves room for both.
	l.limit = max(l.limit, longLine+2*masker.MaxLen())
	go l.loop()
	return l
}

// Write implements io.Writer for the output of the run's commands: a line
// that begins like one of Gantry's own is marked (see outputMark). It
// returns once p is held, dropped or kept: while the stream holds its
// limit, it waits for the sender.
func (l *logStream) Write(p []byte) (int, error) {
	n := len(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	q := l.mark.add(nil, p)
	if l.closed {
		q = l.mark.flush(q) // kept whole, at once
	}
	l.write(q)
	return n, nil
}

// own writes a line of Gantry's own, after the beginning of an output
// line still held.
func (l *logStream) own(line []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := append(l.mark.flush(nil), line...)
	l.mark.reset()
	l.write(p)
}

// releaseHead moves the beginning of an output line still held into the
// stream, marked (see lineMarker.flush), without waiting for room: it is
// small, and called when everything is to be sent. l.mu held.
func (l *logStream) releaseHead() {
	q := l.mark.flush(nil)
	switch {
	case len(q) == 0:
	case l.gaveUp || l.dropping:
		l.spillOut(q)
	default:
		l.buf = append(l.buf, q...)
	}
}

// write holds, drops or keeps p, as Write says. l.mu held.
func (l *logStream) write(p []byte) {
	for len(p) > 0 {
		if l.gaveUp || l.dropping && !l.endDrop() {
			l.spillOut(p)
			break
		}
		free := l.limit - len(l.buf) - len(l.pending)
		if free <= 0 && l.stalled() {
			l.startDrop()
			continue
		}
		if free <= 0 {
			l.kick()
			l.waiting++
			l.room.Wait()
			l.waiting--
			continue
		}
		k := min(free, len(p))
		l.buf = append(l.buf, p[:k]...)
		p = p[k:]
		l.maxHeld = max(l.maxHeld, len(l.buf)+len(l.pending))
		if len(l.buf) > longLine || len(l.buf)+len(l.pending) >= l.limit {
			l.kick()
		}
	}
	if l.closed {
		l.closeKeep() // written after Close: kept whole, at once
	}
}

// stalled tells whether the server has accepted nothing for stallAfter.
func (l *logStream) stalled() bool {
	return !l.failingSince.IsZero() && time.Since(l.failingSince) >= l.stallAfter
}

// startDrop starts a drop run: the stream keeps what it holds for the
// server, masked but for a last line not ended yet, which goes with what
// is dropped (it is masked with the rest of its line).
func (l *logStream) startDrop() {
	l.take(false)
	l.spill = append(l.spill, l.buf...)
	l.dropped += int64(len(l.buf))
	l.buf = l.buf[:0]
	l.dropping = true
	l.gapAt = l.keep.mark()
	l.room.Broadcast()
}

// spillOut keeps p (not yet masked) for good: its complete lines masked
// in keep's file, the rest held in spill until its line ends.
func (l *logStream) spillOut(p []byte) {
	if l.dropping {
		l.dropped += int64(len(p))
	}
	l.spill = append(l.spill, p...)
	cut := l.cut(l.spill, l.closed)
	l.keep.write([]byte(l.masker.String(string(l.spill[:cut]))))
	l.spill = append(l.spill[:0], l.spill[cut:]...)
}

// endDrop ends the drop run once the server has taken everything held
// before it: the log gets, where the gap is, a line saying how much was
// dropped and where it is kept; the end of the last line dropped goes on
// in the stream. It reports whether the run ended.
func (l *logStream) endDrop() bool {
	if len(l.pending) > 0 || len(l.buf) > 0 {
		return false
	}
	l.dropped -= int64(len(l.spill))
	if l.dropped > 0 {
		if l.sentMidLine {
			l.buf = append(l.buf, '\n')
		}
		l.buf = fmt.Appendf(l.buf, "[gantry] %d bytes of output were dropped here: the server accepted no log for %s; %s\n",
			l.dropped, l.stallAfter, l.keep.where())
	}
	l.buf = append(l.buf, l.spill...)
	l.spill, l.dropped, l.dropping = l.spill[:0], 0, false
	return true
}

// giveUp keeps everything not sent in keep's file, in order: what the
// stream holds goes before the drop run in progress, if any, or at the
// end. From then on all that is written is kept there. Call it with
// sendMu held (no append in flight).
func (l *logStream) giveUp() {
	l.take(false)
	l.spill = append(l.buf, l.spill...) // a line not ended yet: masked with its end
	l.buf = nil
	if l.dropping {
		l.keep.insert(l.gapAt, l.pending)
	} else {
		l.keep.write(l.pending)
	}
	l.pending = nil
	l.dropping, l.dropped, l.gaveUp = false, 0, true
	l.room.Broadcast()
}

// closeKeep keeps the last line not ended yet and closes keep's file.
func (l *logStream) closeKeep() {
	l.keep.write([]byte(l.masker.String(string(l.spill))))
	l.spill = nil
	l.keep.close()
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
	l.own(fmt.Appendf(nil, "[gantry] "+format+"\n", args...))
}

// cut returns how much of b (not yet masked) can be masked now: its
// complete lines (everything when all), or most of one very long line.
func (l *logStream) cut(b []byte, all bool) int {
	if all {
		return len(b)
	}
	cut := bytes.LastIndexByte(b, '\n') + 1
	if cut == 0 && len(b) > longLine {
		// One very long line: send it in pieces, but hold back what
		// could be the start of a secret that the next write completes,
		// and cut before a secret the piece would split.
		cut = max(len(b)-max(l.masker.MaxLen()-1, 0), 0)
		if safe := l.masker.SafeCut(b, cut); safe >= cut/2 {
			cut = safe // else: a line of a secret repeated over and over
		}
	}
	return cut
}

// take moves complete lines (everything when all) from buf to pending,
// masked.
func (l *logStream) take(all bool) {
	cut := l.cut(l.buf, all)
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
	if all {
		l.releaseHead()
	}
	if all && l.dropping {
		l.endDrop()
	}
	l.take(all)
	data := l.pending
	if len(data) > chunkSize {
		data = data[:chunkSize]
	}
	off, gaveUp := l.offset, l.gaveUp
	l.mu.Unlock()
	if len(data) == 0 || gaveUp {
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
		l.sentMidLine = data[len(data)-1] != '\n'
	case workerapi.Permanent(err):
		// The run ended or the job token expired: nothing more is sent.
		l.giveUp()
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
	if l.gaveUp {
		return 0
	}
	return len(l.buf) + len(l.pending)
}

// boundary is the offset in the run's log of the next byte written: what
// was written so far, masked, is sent or queued to be (a line not ended
// yet is taken as it is: it ends a phase). false when the stream lost
// count of where its output goes (a drop run, or it gave up sending).
func (l *logStream) boundary() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gaveUp || l.dropping {
		return 0, false
	}
	l.releaseHead()
	l.take(true)
	return l.offset + int64(len(l.pending)), true
}

// Sync sends everything written so far; call it before a report that may
// end the run (after which appends are refused). It sends chunk after
// chunk until nothing is left, retrying transient errors with backoff, for
// at most reportRetryFor in all (a server briefly down, a large output).
func (l *logStream) Sync() {
	l.sync(context.Background(), reportRetryFor)
}

// sync is Sync for at most retryFor, or reportRetryFor once ctx ends.
func (l *logStream) sync(ctx context.Context, retryFor time.Duration) {
	start := time.Now()
	wait := reportBackoff
	for {
		_, err := l.flush(true)
		l.mu.Lock()
		left := len(l.pending) + len(l.buf)
		if l.dropping {
			left++ // the drop run's note and what follows it
		}
		gaveUp := l.gaveUp
		l.mu.Unlock()
		waited := time.Since(start)
		if left == 0 || gaveUp || waited > retryFor || ctx.Err() != nil && waited > reportRetryFor {
			return
		}
		if err == nil {
			wait = reportBackoff
			continue
		}
		if ctx.Err() == nil {
			sleep(ctx, wait)
		} else {
			time.Sleep(wait)
		}
		wait = min(wait*2, reportBackoffMax)
	}
}

// Close sends what is left, retrying for up to tailRetryFor (reportRetryFor
// once ctx ends: the worker is shutting down), and stops the stream. What
// it could not send is kept in keep's file, which it closes; so is what
// is written after it.
func (l *logStream) Close(ctx context.Context) {
	close(l.done)
	<-l.stopped
	l.sync(ctx, tailRetryFor)
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.gaveUp {
		l.giveUp()
	}
	l.closed = true
	l.closeKeep()
}

// Kept says what the stream kept in keep's file (after Close: all of it).
func (l *logStream) Kept() keptLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keep
	return keptLog{path: k.path, size: k.end, wrote: k.wrote, lost: k.lost, err: k.err}
}
