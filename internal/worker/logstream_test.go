package worker

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

const (
	secretValue = "hunter2-Sup3r-secret"
	quotedValue = `pa"ss\word-42`
)

func newTestStream(t *testing.T, f *fakeProto, offset int64, values ...string) *logStream {
	t.Helper()
	job := &workerapi.Job{RunID: "run-1", LogOffset: offset}
	return newLogStream(f, job, secrets.NewMasker(values), newLogKeeper(t.TempDir(), job.RunID, "w1"))
}

func TestLogStreamMasksSecrets(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{
			name:   "plain value",
			writes: []string{"token is " + secretValue + " ok\n"},
			want:   "token is ***** ok\n",
		},
		{
			name:   "base64 form",
			writes: []string{"encoded: " + base64.StdEncoding.EncodeToString([]byte(secretValue)) + "\n"},
			want:   "encoded: *****\n",
		},
		{
			name:   "JSON-escaped form",
			writes: []string{`{"password": "pa\"ss\\word-42"}` + "\n"},
			want:   `{"password": "*****"}` + "\n",
		},
		{
			name:   "value split across writes within one line",
			writes: []string{"a=" + secretValue[:6], secretValue[6:] + " b\n"},
			want:   "a=***** b\n",
		},
		{
			name:   "several lines and occurrences",
			writes: []string{"x " + secretValue + "\ny\n", secretValue + secretValue + "\n"},
			want:   "x *****\ny\n**********\n",
		},
		{
			name:   "short values are not masked",
			writes: []string{"abc is too short to mask\n"},
			want:   "abc is too short to mask\n",
		},
		{
			name:   "last line without newline is sent on close",
			writes: []string{"first\n", "tail " + secretValue},
			want:   "first\ntail *****",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProto()
			l := newTestStream(t, f, 0, secretValue, quotedValue, "abc")
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); err != nil || n != len(w) {
					t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(w))
				}
			}
			l.Close(context.Background())
			if got := f.log(t, 0); got != tt.want {
				t.Errorf("log = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogStreamPrintfIsMasked(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0, secretValue)
	l.Printf("cloning with %s", secretValue)
	l.Close(context.Background())
	if got, want := f.log(t, 0), "[gantry] cloning with *****\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

func TestLogStreamOffsetsAdvance(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 100)
	lines := []string{"one\n", "two two\n", "three three three\n"}
	for _, s := range lines {
		l.Write([]byte(s))
		l.flush(false)
	}
	l.Close(context.Background())
	calls := f.calls()
	if len(calls) != len(lines) {
		t.Fatalf("%d appends, want %d: %s", len(calls), len(lines), describeCalls(calls))
	}
	off := int64(100)
	for i, c := range calls {
		if c.offset != off || c.data != lines[i] {
			t.Errorf("append %d = (%d, %q), want (%d, %q)", i, c.offset, c.data, off, lines[i])
		}
		off += int64(len(lines[i]))
	}
}

func TestLogStreamRetriesWithSameOffset(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"network error", errTransient},
		{"server error 503", &workerapi.StatusError{Status: 503, Code: "unavailable", Message: "draining"}},
		{"server error 500", &workerapi.StatusError{Status: 500, Code: "internal", Message: "boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeProto()
			f.appendErr = func(n int) error {
				if n < 2 {
					return tt.err
				}
				return nil
			}
			l := newTestStream(t, f, 10)
			l.Write([]byte("first line\n"))
			l.Sync()
			l.Write([]byte("second\n"))
			l.Close(context.Background())
			calls := f.calls()
			if len(calls) < 4 {
				t.Fatalf("%d appends, want at least 4: %s", len(calls), describeCalls(calls))
			}
			for i := 0; i < 3; i++ {
				if calls[i].offset != 10 || calls[i].data != "first line\n" {
					t.Errorf("append %d = (%d, %q), want the same chunk again at offset 10", i, calls[i].offset, calls[i].data)
				}
			}
			if got, want := f.log(t, 10), "first line\nsecond\n"; got != want {
				t.Errorf("log = %q, want %q", got, want)
			}
		})
	}
}

func TestLogStreamPermanentErrorStopsSending(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 409} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			f := newFakeProto()
			f.appendErr = func(int) error {
				return &workerapi.StatusError{Status: status, Code: "x", Message: "run ended"}
			}
			l := newTestStream(t, f, 0)
			l.Write([]byte("refused\n"))
			l.Sync()
			for i := 0; i < 3; i++ {
				l.Write([]byte("more output\n"))
				l.flush(false)
			}
			l.Sync()
			l.Close(context.Background())
			if calls := f.calls(); len(calls) != 1 {
				t.Errorf("%d appends after a %d answer, want 1: %s", len(calls), status, describeCalls(calls))
			}
		})
	}
}

func TestLogStreamSyncSendsEverything(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0)
	// More than one 512 KiB chunk, and a last line without a newline.
	big := strings.Repeat(strings.Repeat("x", 99)+"\n", 12000) + "no newline at the end"
	l.Write([]byte(big))
	l.Sync()
	if got := f.log(t, 0); got != big {
		t.Fatalf("after Sync the log has %d bytes, want %d", len(got), len(big))
	}
	for i, c := range f.calls() {
		if len(c.data) > 512<<10 {
			t.Errorf("append %d has %d bytes, more than 512 KiB", i, len(c.data))
		}
	}
	l.Close(context.Background())
	if n := len(f.calls()); n < 3 {
		t.Errorf("%d appends for %d bytes, want at least 3 chunks", n, len(big))
	}
}

// A burst of short lines larger than 64 KiB must not leave a secret that
// straddles the end of the buffer unmasked: the documented limit is a
// single line longer than 64 KiB, and these lines are short.
func TestLogStreamMasksSecretAcrossLargeBurst(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0, secretValue)
	burst := strings.Repeat(strings.Repeat("y", 79)+"\n", 900) // 72,000 bytes of short lines
	l.Write([]byte(burst + "password=" + secretValue[:8]))
	l.flush(false) // what the background loop does when the buffer passes 64 KiB
	l.Write([]byte(secretValue[8:] + "\n"))
	l.Close(context.Background())
	got := f.log(t, 0)
	if strings.Contains(got, secretValue) {
		t.Errorf("the secret leaked into the log unmasked (split at the 64 KiB buffer boundary)")
	}
	if !strings.HasSuffix(got, "password=*****\n") {
		t.Errorf("log ends with %q, want it to end with %q", got[max(0, len(got)-40):], "password=*****\n")
	}
}

// Output larger than a few chunks is all sent before a report that ends
// the job: a 10 MB hook output is not cut at 2.5 MB.
func TestLogStreamSyncSendsLargeOutput(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0)
	big := strings.Repeat(strings.Repeat("z", 99)+"\n", 100000) + "[gantry] Run failed: the end\n"
	i := strings.Index(big, "[gantry]")
	l.Write([]byte(big[:i]))
	l.own([]byte(big[i:]))
	l.Sync()
	if got := f.log(t, 0); got != big {
		t.Fatalf("after Sync the log has %d bytes, want %d", len(got), len(big))
	}
	l.Close(context.Background())
}

// Sync retries a server that is down for a while (more than a few tries).
func TestLogStreamSyncRetriesUntilTheServerAnswers(t *testing.T) {
	defer func(b, m time.Duration) { reportBackoff, reportBackoffMax = b, m }(reportBackoff, reportBackoffMax)
	reportBackoff, reportBackoffMax = time.Millisecond, 2*time.Millisecond
	f := newFakeProto()
	f.appendErr = func(n int) error {
		if n < 30 {
			return errTransient
		}
		return nil
	}
	l := newTestStream(t, f, 0)
	l.Write([]byte("Error: the tool failed\n"))
	l.own([]byte("[gantry] Run failed: x\n"))
	l.Sync()
	if got, want := f.log(t, 0), "Error: the tool failed\n[gantry] Run failed: x\n"; got != want {
		t.Fatalf("log = %q, want %q", got, want)
	}
	l.Close(context.Background())
}
