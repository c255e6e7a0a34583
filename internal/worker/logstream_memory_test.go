package worker

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/tofu"
)

// waitUntil polls cond until it holds; the deadline only bounds a broken
// test.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// held returns what the stream holds unsent, the most it ever held, and
// how many writers wait for room.
func (l *logStream) held() (now, most, waiting int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buf) + len(l.pending), l.maxHeld, l.waiting
}

func (l *logStream) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.mu.Unlock()
}

// gatedProto is a fake server whose appends wait until the gate opens.
func gatedProto() (*fakeProto, chan struct{}) {
	gate := make(chan struct{})
	f := newFakeProto()
	f.appendErr = func(int) error {
		<-gate
		return nil
	}
	return f, gate
}

// While the server is slow, the stream holds no more than its limit: the
// writer waits for room (back-pressure) instead of the buffer growing, and
// nothing is lost once the server answers.
func TestLogStreamHoldsAtMostItsLimit(t *testing.T) {
	const limit = 128 << 10
	f, gate := gatedProto()
	l := newTestStream(t, f, 0)
	l.setLimit(limit)
	data := strings.Repeat(strings.Repeat("x", 99)+"\n", 20000) // 2 MB
	wrote := make(chan struct{})
	go func() {
		l.Write([]byte(data))
		close(wrote)
	}()
	waitUntil(t, "the writer waits for room", func() bool { _, _, w := l.held(); return w == 1 })
	select {
	case <-wrote:
		t.Fatal("Write of 2 MB returned while the server accepted nothing and the limit is 128 KiB")
	default:
	}
	if now, most, _ := l.held(); now > limit || most > limit {
		t.Fatalf("the stream holds %d bytes (at most %d), want at most its limit %d", now, most, limit)
	}
	close(gate)
	<-wrote
	l.Close(context.Background())
	if got := f.log(t, 0); got != data {
		t.Fatalf("log has %d bytes, want the %d written", len(got), len(data))
	}
	if _, most, _ := l.held(); most > limit {
		t.Errorf("the stream held %d bytes at once, want at most %d", most, limit)
	}
	for i, c := range f.calls() {
		if len(c.data) > chunkSize {
			t.Errorf("append %d has %d bytes, more than a chunk", i, len(c.data))
		}
	}
}

// A line with no end (a 3 MB value printed on one line) is sent in pieces
// as it comes, within the limit, not held until its newline.
func TestLogStreamSendsAVeryLongLineInPieces(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0, secretValue)
	line := strings.Repeat("v", 3<<20)
	l.Write([]byte(line))
	// Write returned: all but the stream's limit has been sent already.
	if got := len(f.log(t, 0)); got < len(line)-l.limit {
		t.Fatalf("after writing a 3 MiB line without its newline, %d bytes were sent; want all but the %d-byte limit", got, l.limit)
	}
	l.Write([]byte("\n"))
	l.Close(context.Background())
	if got := f.log(t, 0); got != line+"\n" {
		t.Fatalf("log has %d bytes, want %d", len(got), len(line)+1)
	}
	if _, most, _ := l.held(); most > l.limit {
		t.Errorf("the stream held %d bytes at once, want at most %d", most, l.limit)
	}
}

// A server that accepts nothing for longer than stallAfter must not hang
// the job: Write drops what does not fit, and the log says how much, at
// the place of the gap, once the server accepts again, and where on the
// worker what was dropped is kept.
func TestLogStreamDropsWithANoteWhenTheServerStalls(t *testing.T) {
	const limit = 128 << 10
	var failing atomic.Bool
	failing.Store(true)
	f := newFakeProto()
	f.appendErr = func(int) error {
		if failing.Load() {
			return errTransient
		}
		return nil
	}
	l := newTestStream(t, f, 0)
	l.setLimit(limit)
	l.stallAfter = 0 // stalled from the first failed append
	kept := strings.Repeat(strings.Repeat("k", 63)+"\n", limit/64)
	l.Write([]byte(kept))
	lost := strings.Repeat("lost line\n", 1000)
	l.Write([]byte(lost)) // returns: dropped, not waited for
	if now, _, _ := l.held(); now > limit {
		t.Fatalf("the stream holds %d bytes, want at most %d", now, limit)
	}
	failing.Store(false)
	l.Sync()
	l.Write([]byte("after\n"))
	l.Close(context.Background())
	want := kept + "[gantry] 10000 bytes of output were dropped here: the server accepted no log for 0s; it is kept on worker w1 at " +
		l.keep.path + "\n" + "after\n"
	if got := f.log(t, 0); got != want {
		t.Fatalf("log ends with %q, want %q", got[max(0, len(got)-200):], want[len(want)-150:])
	}
	if got := keptFile(t, l); got != lost {
		t.Fatalf("the file keeps %d bytes, want the %d dropped", len(got), len(lost))
	}
}

// A real process writing far more than the limit, with a slow server:
// it waits at its pipe while the stream is full (no unbounded buffer),
// then runs to its end once the server answers: no deadlock.
func TestLogStreamBackPressureOnAProcess(t *testing.T) {
	const limit = 128 << 10
	f, gate := gatedProto()
	l := newTestStream(t, f, 0)
	l.setLimit(limit)
	type result struct {
		code int
		err  error
	}
	ran := make(chan result, 1)
	go func() {
		code, err := tofu.Run(context.Background(), "/bin/sh", t.TempDir(), nil, l, "-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done")
		ran <- result{code, err}
	}()
	waitUntil(t, "the process's output waits for room", func() bool { _, _, w := l.held(); return w == 1 })
	if now, most, _ := l.held(); now > limit || most > limit {
		t.Fatalf("the stream holds %d bytes (at most %d), want at most %d", now, most, limit)
	}
	select {
	case r := <-ran:
		t.Fatalf("the process ended (%+v) while its output could not be taken", r)
	default:
	}
	close(gate)
	if r := <-ran; r.code != 0 || r.err != nil {
		t.Fatalf("Run = %d, %v", r.code, r.err)
	}
	l.Close(context.Background())
	if got, want := f.log(t, 0), strings.Repeat("x", 3000000)+"\ndone\n"; got != want {
		t.Fatalf("log has %d bytes, want %d", len(got), len(want))
	}
	if _, most, _ := l.held(); most > limit {
		t.Errorf("the stream held %d bytes at once, want at most %d", most, limit)
	}
}

// A very long line is cut in pieces before a secret the cut would split,
// not through it.
func TestLogStreamLongLinePiecesKeepSecretsMasked(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0, secretValue)
	// The piece is cut MaxLen-1 bytes before the end: inside the secret,
	// which ends 5 bytes before it.
	line := strings.Repeat("a", 100<<10) + secretValue + "tail."
	l.Write([]byte(line))
	l.flush(false) // as the sender does when the line passes 64 KiB
	l.Write([]byte(" more\n"))
	l.Close(context.Background())
	got := f.log(t, 0)
	if strings.Contains(got, secretValue[:8]) || strings.Contains(got, secretValue[8:]) {
		t.Fatalf("a piece of the secret leaked: the line was cut through it")
	}
	if want := strings.Repeat("a", 100<<10) + "*****tail. more\n"; got != want {
		t.Fatalf("log ends with %q, want %q", got[len(got)-30:], want[len(want)-30:])
	}
	if n := len(f.calls()); n < 2 {
		t.Fatalf("%d appends, want the line sent in pieces", n)
	}
}
