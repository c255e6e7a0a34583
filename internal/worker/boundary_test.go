package worker

import (
	"context"
	"testing"
)

// TestLogStreamBoundary: a phase begins after every byte written so far,
// masked, sent or not, a line not ended included.
func TestLogStreamBoundary(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 100, secretValue)
	l.Write([]byte("token " + secretValue + "\n")) // "token *****\n": 12 bytes
	l.flush(false)
	l.Write([]byte("partial")) // 7, not sent yet
	at, ok := l.boundary()
	if !ok || at != 119 {
		t.Fatalf("boundary = %d, %v; want 119, true", at, ok)
	}
	l.Write([]byte("\nnext phase\n"))
	l.Close(context.Background())
	log := f.log(t, 100)
	if got := log[at-100:]; got != "\nnext phase\n" {
		t.Fatalf("the log from the boundary = %q (whole log %q)", got, log)
	}
}
