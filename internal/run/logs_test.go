package run_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/run"
)

// patience bounds waits for something that should happen at once.
const patience = 20 * time.Second

func TestAppendLog(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		steps := []struct {
			name     string
			offset   int64
			data     string
			wantSize int64
			kind     errs.Kind // "" for success
		}{
			{"first chunk", 0, "hello ", 6, ""},
			{"same chunk again", 0, "hello ", 6, ""},
			{"retry of an older chunk with other bytes", 0, "HELLO ", 6, ""},
			{"next chunk", 6, "wörld\n", 13, ""},
			{"gap", 14, "x", 0, errs.Conflict},
			{"far gap", 1000, "x", 0, errs.Conflict},
			{"empty chunk at the end", 13, "", 13, ""},
			{"chunk inside stored data", 3, "xyz", 13, ""},
			{"last chunk", 13, "bye", 16, ""},
		}
		for _, s := range steps {
			size, err := f.runs.AppendLog(f.ctx, r.ID, s.offset, []byte(s.data))
			if s.kind != "" {
				if !errs.Is(err, s.kind) {
					t.Fatalf("%s: AppendLog = %d, %v; want kind %s", s.name, size, err, s.kind)
				}
				continue
			}
			if err != nil || size != s.wantSize {
				t.Fatalf("%s: AppendLog = %d, %v; want size %d", s.name, size, err, s.wantSize)
			}
		}
		const full = "hello wörld\nbye"
		var chunks int
		if err := d.QueryRow(f.ctx, `SELECT COUNT(*) FROM run_logs WHERE run_id = $1`, r.ID).Scan(&chunks); err != nil || chunks != 3 {
			t.Fatalf("stored chunks = %d, %v; want 3", chunks, err)
		}
		if got := f.get(t, r.ID).LogSize; got != int64(len(full)) {
			t.Fatalf("LogSize = %d, want %d", got, len(full))
		}

		reads := []struct {
			offset int64
			max    int
			want   string
		}{
			{0, 1 << 20, full},
			{3, 1 << 20, full[3:]},
			{6, 1 << 20, full[6:]},
			{8, 1 << 20, full[8:]}, // inside a multi-byte character: bytes, not runes
			{12, 1 << 20, full[12:]},
			{13, 1 << 20, "bye"},
			{15, 1 << 20, "e"},
			{0, 4, "hell"},
			{2, 5, full[2:7]},
			{5, 9, full[5:14]},
			{int64(len(full)), 100, ""},
		}
		for _, rd := range reads {
			got, done, err := f.runs.ReadLog(f.ctx, r.ID, rd.offset, rd.max, 0)
			if err != nil || done || string(got) != rd.want {
				t.Errorf("ReadLog(%d, %d) = %q, %v, %v; want %q", rd.offset, rd.max, got, done, err, rd.want)
			}
		}

		_, err := f.runs.AppendLog(f.ctx, "run-missing", 0, []byte("x"))
		wantKind(t, err, errs.NotFound)
		_, err = f.runs.AppendLog(f.ctx, r.ID, int64(len(full)), make([]byte, run.MaxLogChunk+1))
		wantKind(t, err, errs.TooLarge)
		_, _, err = f.runs.ReadLog(f.ctx, "run-missing", 0, 10, 0)
		wantKind(t, err, errs.NotFound)
	})
}

func TestReadLogWaitsForData(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 0, []byte("first\n")); err != nil {
			t.Fatal(err)
		}
		type result struct {
			data []byte
			done bool
			err  error
		}
		ctx, cancel := context.WithTimeout(f.ctx, 2*patience)
		defer cancel()
		got := make(chan result, 1)
		go func() {
			data, done, err := f.runs.ReadLog(ctx, r.ID, 6, 1024, patience)
			got <- result{data, done, err}
		}()
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 6, []byte("second\n")); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-got:
			if res.err != nil || res.done || string(res.data) != "second\n" {
				t.Fatalf("ReadLog = %q, %v, %v; want the appended data", res.data, res.done, res.err)
			}
		case <-ctx.Done():
			t.Fatal("ReadLog did not return the appended data")
		}

		// A reader waiting at the end learns that the run ended.
		go func() {
			data, done, err := f.runs.ReadLog(ctx, r.ID, 13, 1024, patience)
			got <- result{data, done, err}
		}()
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "plan failed"); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-got:
			if res.err != nil || !res.done || len(res.data) != 0 {
				t.Fatalf("ReadLog when the run ended = %q, %v, %v; want done", res.data, res.done, res.err)
			}
		case <-ctx.Done():
			t.Fatal("ReadLog did not return when the run ended")
		}
	})
}

func TestReadLogDone(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 0, []byte("log")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, ""); err != nil {
			t.Fatal(err)
		}
		// A long wait must not be waited out: ctx would end first.
		ctx, cancel := context.WithTimeout(f.ctx, patience)
		defer cancel()
		data, done, err := f.runs.ReadLog(ctx, r.ID, 0, 100, time.Hour)
		if err != nil || done || string(data) != "log" {
			t.Fatalf("ReadLog(0) of a finished run = %q, %v, %v; want the log, not done", data, done, err)
		}
		data, done, err = f.runs.ReadLog(ctx, r.ID, 3, 100, time.Hour)
		if err != nil || !done || len(data) != 0 {
			t.Fatalf("ReadLog at the end of a finished run = %q, %v, %v; want done", data, done, err)
		}
		if ctx.Err() != nil {
			t.Fatal("ReadLog waited for a finished run")
		}

		// A run that never started is ended too.
		q, _ := f.runIn(t, run.Canceled)
		if _, done, err := f.runs.ReadLog(ctx, q.ID, 0, 100, time.Hour); err != nil || !done {
			t.Fatalf("ReadLog of a canceled run = %v, %v; want done", done, err)
		}
	})
}

func TestArtifacts(t *testing.T) {
	plan := []byte(`{"format_version":"1.2","resource_changes":[{"address":"aws_s3_bucket.very_secret_bucket"}]}`)
	workspace := bytes.Repeat([]byte("TARBALL-PLAINTEXT-"), 1000)
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		other, _ := f.runIn(t, run.Planning)
		for name, data := range map[string][]byte{run.ArtifactPlanJSON: plan, run.ArtifactWorkspace: workspace} {
			if err := f.runs.PutArtifact(f.ctx, r.ID, name, data); err != nil {
				t.Fatalf("PutArtifact(%s): %v", name, err)
			}
			got, err := f.runs.Artifact(f.ctx, r.ID, name)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Artifact(%s) = %d bytes, %v; want what was put", name, len(got), err)
			}
			var raw []byte
			if err := d.QueryRow(f.ctx, `SELECT data FROM run_artifacts WHERE run_id = $1 AND name = $2`, r.ID, name).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("very_secret_bucket")) || bytes.Contains(raw, []byte("TARBALL-PLAINTEXT")) {
				t.Fatalf("artifact %s is stored in clear", name)
			}
			// Moved to another run, the ciphertext does not open.
			if _, err := d.Exec(f.ctx, `INSERT INTO run_artifacts (run_id, name, data, created_at) VALUES ($1, $2, $3, 0)`, other.ID, name, raw); err != nil {
				t.Fatal(err)
			}
			_, err = f.runs.Artifact(f.ctx, other.ID, name)
			wantKind(t, err, errs.Internal)
		}
		// Replacing an artifact keeps one row with the new content.
		if err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactPlanJSON, []byte(`{"v":2}`)); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.runs.Artifact(f.ctx, r.ID, run.ArtifactPlanJSON); string(got) != `{"v":2}` {
			t.Fatalf("replaced artifact = %q", got)
		}
		if err := f.runs.PutArtifact(f.ctx, r.ID, "empty", nil); err != nil {
			t.Fatalf("PutArtifact(empty): %v", err)
		}
		if got, err := f.runs.Artifact(f.ctx, r.ID, "empty"); err != nil || len(got) != 0 {
			t.Fatalf("empty artifact = %q, %v", got, err)
		}
		_, err := f.runs.Artifact(f.ctx, r.ID, "missing")
		wantKind(t, err, errs.NotFound)
		wantKind(t, f.runs.PutArtifact(f.ctx, "run-missing", run.ArtifactPlanJSON, plan), errs.NotFound)

		// The workspace goes when the run ends; the plan stays.
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "boom"); err != nil {
			t.Fatal(err)
		}
		_, err = f.runs.Artifact(f.ctx, r.ID, run.ArtifactWorkspace)
		wantKind(t, err, errs.NotFound)
		if _, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactPlanJSON); err != nil {
			t.Fatalf("plan.json after the run ended: %v", err)
		}
	})
}

// TestPutArtifactAfterEnd: a worker's upload that arrives after its run
// ended (its job token was checked just before the run was stopped) must
// not store a workspace that nothing will ever delete.
func TestPutArtifactAfterEnd(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Stopped)
		err := f.runs.PutArtifact(f.ctx, r.ID, run.ArtifactWorkspace, []byte("late workspace with secrets"))
		var n int
		if err := d.QueryRow(f.ctx, `SELECT COUNT(*) FROM run_artifacts WHERE run_id = $1 AND name = 'workspace'`, r.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err == nil || n != 0 {
			t.Fatalf("PutArtifact(workspace) on a STOPPED run = %v, and %d workspace row(s) stored; want Conflict and none", err, n)
		}
		wantKind(t, err, errs.Conflict)
	})
}

// ReadRunLog trusts the caller's copy of the run only when it answers at
// once: a copy read before the latest append (or before the run ended)
// must not hide the new bytes, nor make a reader wait past them.
func TestReadRunLogStaleCopy(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		r, _ := f.runIn(t, run.Planning)
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 0, []byte("abc")); err != nil {
			t.Fatal(err)
		}
		stale, err := f.runs.Get(f.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 3, []byte("def")); err != nil {
			t.Fatal(err)
		}
		ctx := f.ctx
		// The copy ends at 3; the log at 6: the reader at 3 gets "def"
		// without waiting (wait 0: trusting the copy would answer nothing).
		data, done, _, err := f.runs.ReadRunLog(ctx, stale, 3, 100, 0)
		if err != nil || done || string(data) != "def" {
			t.Fatalf("ReadRunLog(stale copy, 3) = %q, %v, %v; want \"def\"", data, done, err)
		}
		data, _, _, err = f.runs.ReadRunLog(ctx, stale, 1, 100, 0)
		if err != nil || string(data) != "bcdef" {
			t.Fatalf("ReadRunLog(stale copy, 1) = %q, %v; want every stored byte from 1", data, err)
		}
		// The run ends after the copy was read: the reader at the end is
		// told so at once.
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, ""); err != nil {
			t.Fatal(err)
		}
		data, done, _, err = f.runs.ReadRunLog(ctx, stale, 6, 100, 0)
		if err != nil || !done || len(data) != 0 {
			t.Fatalf("ReadRunLog(stale copy, end) of an ended run = %q, %v, %v; want done", data, done, err)
		}
		_, _, _, err = f.runs.ReadRunLog(ctx, run.Run{ID: "run-missing"}, 0, 10, 0)
		wantKind(t, err, errs.NotFound)
	})
}

// A run's log is stored up to the limit: past it, output is counted, not
// stored, with one line where it was cut and one, when the run ends, with
// how much was dropped. Workers go on appending at the offsets of what
// they sent (retries included); the run is not failed for it.
func TestLogLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.runs.LogLimit = 100
		r, _ := f.runIn(t, run.Planning)
		const line = "0123456789\n"
		var off int64
		for range 8 {
			end, err := f.runs.AppendLog(f.ctx, r.ID, off, []byte(line))
			if err != nil || end != off+int64(len(line)) {
				t.Fatalf("AppendLog(%d) = %d, %v", off, end, err)
			}
			off = end
		}
		// 12 bytes of room: the chunk is cut at its last line break there.
		chunk := "line-a\nline-b-past-the-limit\n"
		if end, err := f.runs.AppendLog(f.ctx, r.ID, off, []byte(chunk)); err != nil || end != off+int64(len(chunk)) {
			t.Fatalf("AppendLog across the limit = %d, %v; want %d", end, err, off+int64(len(chunk)))
		}
		off += int64(len(chunk))
		more := "more output\n"
		for range 2 { // the second is a retry: stored (counted) once
			if end, err := f.runs.AppendLog(f.ctx, r.ID, off, []byte(more)); err != nil || end != off+int64(len(more)) {
				t.Fatalf("AppendLog past the limit = %d, %v", end, err)
			}
		}
		off += int64(len(more))
		cutNote := "[gantry] This run's log reached its limit of 100 bytes (--max-run-log-size): output past this point is not stored; the run goes on.\n"
		stored := strings.Repeat(line, 8) + "line-a\n" + cutNote
		got := f.get(t, r.ID)
		dropped := int64(len(chunk) - len("line-a\n") + len(more))
		if got.State != run.Planning || got.LogReceived != off || got.LogSize != int64(len(stored)) || got.LogDropped != dropped {
			t.Fatalf("run = %s, log received %d, stored %d, dropped %d; want PLANNING, %d, %d, %d",
				got.State, got.LogReceived, got.LogSize, got.LogDropped, off, len(stored), dropped)
		}
		if data, _, err := f.runs.ReadLog(f.ctx, r.ID, 0, 1<<20, 0); err != nil || string(data) != stored {
			t.Fatalf("log = %q, %v; want %q", data, err, stored)
		}

		// The end says how much was dropped; the worker's last lines after
		// it still fit.
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "plan failed"); err != nil {
			t.Fatal(err)
		}
		endNote := "[gantry] 34 bytes of this run's output were dropped past its log limit of 100 bytes (--max-run-log-size).\n"
		last := "[gantry] Run failed: plan failed\n"
		if _, err := f.runs.AppendLog(f.ctx, r.ID, off, []byte(last)); err != nil {
			t.Fatal(err)
		}
		want := stored + endNote + last
		if data, _, err := f.runs.ReadLog(f.ctx, r.ID, 0, 1<<20, 0); err != nil || string(data) != want {
			t.Fatalf("log after the end = %q, %v; want %q", data, err, want)
		}
		if got := strings.Count(want, "dropped"); got != 1 {
			t.Fatalf("%d lines say how much was dropped, want 1", got)
		}
	})
}

// A chunk cut at the limit with no line break in the room left is cut at
// a character boundary, and the note starts on a line of its own.
func TestLogLimitCutsOnACharacter(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.runs.LogLimit = 10
		r, _ := f.runIn(t, run.Planning)
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 0, []byte("ab€€€€")); err != nil { // 2 + 4×3 bytes
			t.Fatal(err)
		}
		data, _, err := f.runs.ReadLog(f.ctx, r.ID, 0, 1<<20, 0)
		if err != nil || !strings.HasPrefix(string(data), "ab€€\n[gantry] This run's log reached its limit of 10 bytes") {
			t.Fatalf("log = %q, %v", data, err)
		}
		if got := f.get(t, r.ID); got.LogDropped != 6 {
			t.Fatalf("dropped %d, want 6", got.LogDropped)
		}
	})
}

// A log that reaches its limit in mid-line, with a chunk of which nothing
// fits, gets its note on a line of its own all the same.
func TestLogLimitNoteAfterALineLeftOpen(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.runs.LogLimit = 10
		r, _ := f.runIn(t, run.Planning)
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 0, []byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.AppendLog(f.ctx, r.ID, 10, []byte("rest of the line\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, "plan failed"); err != nil {
			t.Fatal(err)
		}
		data, _, err := f.runs.ReadLog(f.ctx, r.ID, 0, 1<<20, 0)
		want := "0123456789\n[gantry] This run's log reached its limit of 10 bytes (--max-run-log-size): output past this point is not stored; the run goes on.\n" +
			"[gantry] 17 bytes of this run's output were dropped past its log limit of 10 bytes (--max-run-log-size).\n"
		if err != nil || string(data) != want {
			t.Fatalf("log = %q, %v; want %q", data, err, want)
		}
	})
}

// Reading a log leaves nothing behind in the process: the log of an ended
// run is never notified again, and a wake-up channel kept for each one
// read would grow for the life of the server (every `stack logs`, every
// follower's last read). Waits that end, by data or by timeout, leave
// nothing either.
func TestReadLogKeepsNoWaiters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		for range 5 {
			r, _ := f.runIn(t, run.Planning)
			if _, err := f.runs.AppendLog(f.ctx, r.ID, 0, []byte("log")); err != nil {
				t.Fatal(err)
			}
			if _, err := f.runs.Finish(f.ctx, r.ID, worker, false, ""); err != nil {
				t.Fatal(err)
			}
			for _, offset := range []int64{0, 3} {
				if _, _, _, err := f.runs.ReadRunLog(f.ctx, f.get(t, r.ID), offset, 100, 0); err != nil {
					t.Fatal(err)
				}
				if _, _, err := f.runs.ReadLog(f.ctx, r.ID, offset, 100, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A run still going: a wait that times out, and one woken by data.
		r, _ := f.runIn(t, run.Planning)
		if _, _, err := f.runs.ReadLog(f.ctx, r.ID, 0, 100, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(20 * time.Millisecond)
			_, _ = f.runs.AppendLog(f.ctx, r.ID, 0, []byte("more"))
		}()
		if data, _, err := f.runs.ReadLog(f.ctx, r.ID, 0, 100, patience); err != nil || string(data) != "more" {
			t.Fatalf("ReadLog woken by an append = %q, %v", data, err)
		}
		if n := f.hub.Keys(); n != 0 {
			t.Errorf("the hub holds %d keys after the reads ended, want none", n)
		}
	})
}
