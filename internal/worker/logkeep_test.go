package worker

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// shortRetries makes the stream's retries short for one test: stallAfter
// and Sync's bound (report), Close's (tail), and a 1-2 ms backoff.
func shortRetries(t *testing.T, report, tail time.Duration) {
	t.Helper()
	r, tl, b, m := reportRetryFor, tailRetryFor, reportBackoff, reportBackoffMax
	t.Cleanup(func() { reportRetryFor, tailRetryFor, reportBackoff, reportBackoffMax = r, tl, b, m })
	reportRetryFor, tailRetryFor, reportBackoff, reportBackoffMax = report, tail, time.Millisecond, 2*time.Millisecond
}

// keptFile returns what the stream kept on the worker ("": no file).
func keptFile(t *testing.T, l *logStream) string {
	t.Helper()
	data, err := os.ReadFile(l.keep.path)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func masked(s string) string { return secrets.NewMasker([]string{secretValue}).String(s) }

// checkKept checks that the stream kept exactly want (masked), in a file
// of mode 0600, and says so.
func checkKept(t *testing.T, l *logStream, want string) {
	t.Helper()
	got := keptFile(t, l)
	if got != want {
		t.Fatalf("the file keeps %d bytes:\n%q\nwant %d bytes:\n%q", len(got), got[max(0, len(got)-300):], len(want), want[max(0, len(want)-300):])
	}
	if strings.Contains(got, secretValue) {
		t.Fatalf("the file holds the secret unmasked")
	}
	fi, err := os.Stat(l.keep.path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file's mode is %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	k := l.Kept()
	if k.wrote != int64(len(want)) || k.size != int64(len(want)) || k.lost != 0 || k.err != nil {
		t.Fatalf("Kept = %+v, want %d bytes written", k, len(want))
	}
}

// A server that takes nothing at the end of a job: the tail Close could
// not send (OpenTofu's last words, the state it printed) is kept on the
// worker, masked, instead of lost; the run's reason names the file and
// its size.
func TestLogStreamKeepsTheTailItCouldNotSend(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, 20*time.Millisecond)
	f := newFakeProto()
	f.appendErr = func(n int) error {
		if n == 0 {
			return nil
		}
		return errTransient
	}
	l := newTestStream(t, f, 0, secretValue)
	l.Write([]byte("plan: ok\n"))
	l.Sync()
	tail := []string{"Error: Failed to save state\n", `{"version":4,"outputs":{"pw":{"value":"` + secretValue[:5],
		secretValue[5:] + `"}}}` + "\n", "[gantry] Run failed: apply failed"}
	for _, w := range tail {
		if strings.HasPrefix(w, "[gantry]") {
			l.own([]byte(w)) // the worker's own line
			continue
		}
		l.Write([]byte(w))
	}
	l.Close(context.Background())
	if got := f.log(t, 0); got != "plan: ok\n" {
		t.Errorf("log = %q, want only what the server took", got)
	}
	want := masked(strings.Join(tail, ""))
	checkKept(t, l, want)
	if !strings.Contains(want, `"value":"*****"`) {
		t.Fatalf("bad test: %q", want)
	}
	sum := l.Kept().summary("w1")
	if wantSum := "the server did not take all of this run's log: what it did not take is kept on worker w1 at " + l.keep.path +
		" (" + sized(int64(len(want))) + ")"; sum != wantSum {
		t.Errorf("summary = %q, want %q", sum, wantSum)
	}
}

// A server healthy: nothing is kept, no file is made.
func TestLogStreamKeepsNothingWhenTheServerTakesAll(t *testing.T) {
	f := newFakeProto()
	l := newTestStream(t, f, 0, secretValue)
	l.Write([]byte("all\nof it " + secretValue))
	l.Close(context.Background())
	if _, err := os.Stat(l.keep.path); !os.IsNotExist(err) {
		t.Errorf("a file was made (%v), want none", err)
	}
	if sum := l.Kept().summary("w1"); sum != "" {
		t.Errorf("summary = %q, want none", sum)
	}
}

// Close keeps trying past reportRetryFor (the server back after more than
// a minute gets the tail), up to tailRetryFor.
func TestLogStreamCloseTriesLongerThanAReport(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, time.Minute) // the minute only bounds a broken test
	f := newFakeProto()
	f.appendErr = func(n int) error {
		if n < 30 { // 30 failures, 1 ms or more apart: past reportRetryFor
			return errTransient
		}
		return nil
	}
	l := newTestStream(t, f, 0, secretValue)
	l.Write([]byte("the last words\n"))
	l.Close(context.Background())
	if got := f.log(t, 0); got != "the last words\n" {
		t.Errorf("log = %q, want the tail sent once the server answered", got)
	}
	checkKeptNothing(t, l)
}

func checkKeptNothing(t *testing.T, l *logStream) {
	t.Helper()
	if got := keptFile(t, l); got != "" {
		t.Errorf("the file keeps %q, want no file", got)
	}
}

// A worker shutting down waits for the tail no longer than for a report.
func TestLogStreamCloseWaitsLessWhenShuttingDown(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, time.Hour)
	f := newFakeProto()
	f.appendErr = func(int) error { return errTransient }
	l := newTestStream(t, f, 0, secretValue)
	l.Write([]byte("interrupted " + secretValue + "\n"))
	kill, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan struct{})
	go func() {
		l.Close(kill)
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close of a worker shutting down waits for its hour-long tail bound")
	}
	checkKept(t, l, "interrupted *****\n")
}

// The server stalls and never comes back: what the stream held when it
// began to drop, and what it dropped, are kept in the order written (the
// held bytes before the dropped ones), masked across the cut: a secret
// split between the last line held and the first dropped is masked.
func TestLogStreamKeepsHeldAndDroppedInOrder(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, 20*time.Millisecond)
	const limit = 128 << 10
	f := newFakeProto()
	f.appendErr = func(int) error { return errTransient }
	l := newTestStream(t, f, 0, secretValue)
	l.setLimit(limit)
	l.stallAfter = 0
	head := "password=" + secretValue[:6]
	kept := strings.Repeat(strings.Repeat("k", 63)+"\n", (limit-len(head))/64)
	kept += strings.Repeat("k", limit-len(kept)-len(head)-1) + "\n" + head // exactly the limit
	lost := secretValue[6:] + " end\n" + strings.Repeat("lost line\n", 10000) + secretValue + "\n"
	l.Write([]byte(kept))
	l.Write([]byte(lost)) // dropped once the server failed: it does not wait
	l.own([]byte("[gantry] Run failed: x"))
	l.Close(context.Background())
	if got := f.log(t, 0); got != "" {
		t.Fatalf("the server took %d bytes, want none", len(got))
	}
	checkKept(t, l, masked(kept+lost+"[gantry] Run failed: x"))
}

// Two stalls: the server takes what the stream held after the first (and
// a note where the gap is), not after the second. The file keeps the
// first drop, then the bytes held at the second and the second drop.
func TestLogStreamKeepsTwoGapsInOrder(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, 20*time.Millisecond)
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
	l := newTestStream(t, f, 0, secretValue)
	l.setLimit(limit)
	l.stallAfter = 0
	fill := func(c string) string { return strings.Repeat(strings.Repeat(c, 63)+"\n", limit/64) }
	k1, d1 := fill("a"), strings.Repeat("first drop "+secretValue+"\n", 100)
	l.Write([]byte(k1))
	l.Write([]byte(d1))
	failing.Store(false)
	l.Sync()
	failing.Store(true)
	k2, d2 := fill("b"), strings.Repeat("second drop\n", 10000)
	l.Write([]byte(k2))
	l.Write([]byte(d2))
	l.Close(context.Background())
	note := "[gantry] 3200 bytes of output were dropped here: the server accepted no log for 0s; it is kept on worker w1 at " + l.keep.path + "\n"
	if got := f.log(t, 0); got != k1+note {
		t.Fatalf("log ends with %q, want it to end with %q", got[max(0, len(got)-200):], note)
	}
	checkKept(t, l, masked(d1)+k2+d2)
}

// A server that refuses the job's appends (the run ended long ago, its
// token expired): what it refused and all that follows is kept.
func TestLogStreamKeepsWhatTheServerRefuses(t *testing.T) {
	f := newFakeProto()
	f.appendErr = func(n int) error {
		if n == 0 {
			return nil
		}
		return &workerapi.StatusError{Status: 401, Code: "unauthenticated", Message: "run token expired"}
	}
	l := newTestStream(t, f, 0, secretValue)
	l.Write([]byte("sent\n"))
	l.Sync()
	l.Write([]byte("refused " + secretValue + "\nand a line begun "))
	l.Sync()
	l.Write([]byte("then ended\n"))
	l.Write([]byte("last " + secretValue))
	l.Close(context.Background())
	if got := f.log(t, 0); got != "sent\n" {
		t.Errorf("log = %q", got)
	}
	if n := len(f.calls()); n != 2 {
		t.Errorf("%d appends, want none after the refusal", n)
	}
	checkKept(t, l, "refused *****\nand a line begun then ended\nlast *****")
}

// A file that cannot be written (no rescue directory can be made): the
// stream says so, and how much was lost, rather than claim it was kept.
func TestLogStreamKeepingFails(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, 20*time.Millisecond)
	f := newFakeProto()
	f.appendErr = func(int) error { return errTransient }
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	job := &workerapi.Job{RunID: "run-1"}
	l := newLogStream(f, job, secrets.NewMasker(nil), newLogKeeper(filepath.Join(notDir, "rescued"), job.RunID, "w1"))
	l.Write([]byte("twelve bytes"))
	l.Close(context.Background())
	k := l.Kept()
	if k.wrote != 0 || k.lost != 12 || k.err == nil {
		t.Fatalf("Kept = %+v, want 12 bytes lost and the error", k)
	}
	if sum := k.summary("w1"); !strings.Contains(sum, "keeping it on worker w1 at "+l.keep.path+" failed (") || !strings.HasSuffix(sum, "12 bytes of it are lost") {
		t.Errorf("summary = %q", sum)
	}
}

// Inserting before what a file holds moves it, block after block.
func TestLogKeeperInsert(t *testing.T) {
	k := newLogKeeper(t.TempDir(), "run-1", "w1")
	after := strings.Repeat("0123456789", 20000) // more than one 64 KiB block
	k.write([]byte("head|"))
	at := k.mark()
	k.write([]byte(after))
	k.insert(at, []byte("inserted|"))
	k.write([]byte("|tail"))
	k.close()
	data, err := os.ReadFile(k.path)
	if want := "head|inserted|" + after + "|tail"; err != nil || string(data) != want {
		t.Fatalf("file = %d bytes (%v), want %d", len(data), err, len(want))
	}
	if k.err != nil || k.wrote != int64(len(data)) || k.end != int64(len(data)) {
		t.Fatalf("keeper = %+v", k)
	}
}

// lockedBuffer is a bytes.Buffer for a logger written from goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The case the file is for: an apply whose state OpenTofu could neither
// save nor write to errored.tfstate, so that it printed it, while the
// server takes no log. The state it printed, masked, and the rest of the
// log the server did not take are kept on the worker; the run's reason and
// the worker's log name the file and its size.
func TestJobKeepsTheLogTheServerDidNotTake(t *testing.T) {
	shortRetries(t, 50*time.Millisecond, 50*time.Millisecond)
	fx := newJobFixture(t, nil)
	fx.worker.cfg.RescueDir = filepath.Join(t.TempDir(), "rescued")
	var wlog lockedBuffer
	fx.worker.cfg.Log = slog.New(slog.NewTextHandler(&wlog, nil))
	// The server stops taking the log once the apply has begun.
	down := filepath.Join(fx.record, "server-down")
	fx.proto.appendErr = func(int) error {
		if _, err := os.Stat(down); err == nil {
			return errTransient
		}
		return nil
	}
	job := fx.job("plan")
	job.Env = append(job.Env, workerapi.EnvVar{Name: "FAKE_APPLY_ERRORED", Value: "printed"}, workerapi.EnvVar{Name: "FAKE_SERVER_DOWN", Value: "1"})
	fx.proto.next = "apply"
	fx.worker.execute(context.Background(), job, 0)
	if len(fx.proto.finishes) != 1 || fx.proto.finishes[0].OK {
		t.Fatalf("Finish = %+v, want one failed finish", fx.proto.finishes)
	}
	path := filepath.Join(fx.worker.cfg.RescueDir, job.RunID+".log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the log the server did not take was not kept: %v", err)
	}
	kept, sent := string(data), fx.proto.log(t, 0)
	if strings.Contains(kept, "very-secret-value") {
		t.Fatalf("the file holds the secret unmasked:\n%s", kept)
	}
	if want := `{"version":4,"serial":7,"outputs":{"pw":{"value":"*****"}}}` + "\n"; !strings.Contains(kept, "Error: Failed to create local state file\n"+want) {
		t.Errorf("the file lacks the state OpenTofu printed, masked:\n%s", kept)
	}
	if strings.Contains(sent, "Failed to create local state file") {
		t.Errorf("the server took output of the apply:\n%s", sent)
	}
	// What the server took and what was kept are the whole log, once.
	whole := sent + kept
	for _, line := range []string{"[gantry] Cloning ", "[gantry] $ tofu apply", "Error: Failed to create local state file\n", "[gantry] Run failed: "} {
		if n := strings.Count(whole, line); n != 1 {
			t.Errorf("%q appears %d times in the log sent and kept, want once:\n%s", line, n, whole)
		}
	}
	reason := fx.proto.finishes[0].Reason
	note := "; the server did not take all of this run's log: what it did not take is kept on worker test at " + path + " (" + sized(int64(len(kept))) + ")"
	before, ok := strings.CutSuffix(reason, note)
	if !ok {
		t.Fatalf("reason = %q, want it to end with %q", reason, note)
	}
	if !strings.HasSuffix(kept, "[gantry] Run failed: "+before+"\n") {
		t.Errorf("the file does not end with the closing line of reason %q:\n%s", before, kept[max(0, len(kept)-300):])
	}
	for _, want := range []string{"the server did not take all of the run's log", "path=" + path, "size=" + strconv.Itoa(len(kept))} {
		if !strings.Contains(wlog.String(), want) {
			t.Errorf("the worker's log lacks %q:\n%s", want, wlog.String())
		}
	}
}

// While the end of the log waits for the server, the job heartbeats: a
// server back meanwhile does not take the run for lost before it gets the
// job's report. (Here the server takes the log only after heartbeats.)
func TestCloseLogHeartbeats(t *testing.T) {
	shortRetries(t, 5*time.Millisecond, time.Minute) // the minute only bounds a broken test
	f := newFakeProto()
	var beats atomic.Int32
	f.heartbeat = func() (workerapi.HeartbeatResponse, error) {
		beats.Add(1)
		return workerapi.HeartbeatResponse{}, nil
	}
	f.appendErr = func(int) error {
		if beats.Load() < 3 {
			return errTransient
		}
		return nil
	}
	w := New(Config{Name: "w1", HeartbeatEvery: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, f)
	job := &workerapi.Job{RunID: "run-1"}
	j := &jobRun{w: w, job: job, log: newLogStream(f, job, secrets.NewMasker(nil), newLogKeeper(t.TempDir(), job.RunID, "w1"))}
	j.log.own([]byte("[gantry] Run failed: x\n"))
	if kept := j.closeLog(context.Background(), w.cfg.Log); kept != "" {
		t.Errorf("closeLog = %q, want nothing kept", kept)
	}
	if got := f.log(t, 0); got != "[gantry] Run failed: x\n" {
		t.Errorf("log = %q", got)
	}
}
