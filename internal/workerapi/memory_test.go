package workerapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/workerapi"
)

// countingReader counts the bytes a handler read of a request body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// An artifact announced larger than the limit is refused before a byte of
// it is read; one within it waits for its share of the memory budget, and
// reads nothing meanwhile.
func TestArtifactUploadMemory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		budget := httpx.NewBudget(1 << 20)
		f.handler.Budget = budget
		mux := http.NewServeMux()
		f.handler.Routes(mux)
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		job := claim(t, c)
		put := func(body io.Reader, length int64) *httptest.ResponseRecorder {
			req := httptest.NewRequest("PUT", "/api/worker/v1/jobs/"+job.RunID+"/artifacts/plan.json", body)
			req.ContentLength = length
			req.Header.Set("Authorization", "Bearer "+job.Token)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			return rec
		}

		huge := &countingReader{r: strings.NewReader("{}")}
		if rec := put(huge, run.MaxArtifact+1); rec.Code != http.StatusRequestEntityTooLarge || huge.n.Load() != 0 {
			t.Fatalf("PUT announced past the limit = %d %s (read %d bytes), want 413 and nothing read", rec.Code, rec.Body, huge.n.Load())
		}

		const doc = `{"format_version":"1.2"}`
		release, err := budget.Acquire(f.ctx, 1<<20-1) // one byte free
		if err != nil {
			t.Fatal(err)
		}
		body := &countingReader{r: strings.NewReader(doc)}
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- put(body, int64(len(doc))) }()
		deadline := time.Now().Add(patience)
		for _, w := budget.Stats(); w != 1; _, w = budget.Stats() {
			if time.Now().After(deadline) {
				t.Fatal("the upload does not wait for the budget")
			}
			time.Sleep(time.Millisecond)
		}
		if n := body.n.Load(); n != 0 {
			t.Fatalf("the waiting upload read %d bytes, want none", n)
		}
		release()
		if rec := <-done; rec.Code != http.StatusNoContent {
			t.Fatalf("PUT after the budget freed = %d %s", rec.Code, rec.Body)
		}
		if got, err := f.runs.Artifact(f.ctx, r.ID, run.ArtifactPlanJSON); err != nil || string(got) != doc {
			t.Fatalf("stored plan = %q, %v", got, err)
		}
		if used, waiting := budget.Stats(); used != 0 || waiting != 0 {
			t.Errorf("budget after the upload: %d bytes held, %d waiting; want none", used, waiting)
		}
	})
}

// Past the log limit, the plan job's output is not stored but its offsets
// go on: the apply job starts where the plan job's appends ended, not at
// the end of what is stored, so its appends are not refused as a gap.
func TestApplyJobContinuesTheLogPastItsLimit(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		f := newFixture(t, d)
		f.runs.LogLimit = 16
		c, _ := f.worker(t, builtinToken)
		r := f.create(t, f.stack(t, nil).ID, run.Tracked)
		job := claim(t, c)
		ctx := f.ctx
		for _, st := range []string{run.Initializing, run.Planning} {
			if err := c.Phase(ctx, job, workerapi.PhaseRequest{State: st}); err != nil {
				t.Fatal(err)
			}
		}
		out := strings.Repeat("plan output\n", 10) // 120 bytes: 108 dropped
		if err := c.AppendLog(ctx, job, job.LogOffset, []byte(out)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Planned(ctx, job, workerapi.PlannedRequest{HasChanges: true, Add: 1}); err != nil {
			t.Fatal(err)
		}
		if err := putArtifact(c, ctx, job, run.ArtifactWorkspace, []byte("workspace")); err != nil {
			t.Fatal(err)
		}
		if err := c.HandOff(ctx, job); err != nil {
			t.Fatal(err)
		}
		if _, err := f.runs.Confirm(ctx, r.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		apply := claim(t, c)
		if apply.LogOffset != int64(len(out)) {
			t.Fatalf("apply job's log offset = %d, want %d (what the plan job sent)", apply.LogOffset, len(out))
		}
		if err := c.AppendLog(ctx, apply, apply.LogOffset, []byte("apply\n")); err != nil {
			t.Fatalf("the apply job's first append: %v", err)
		}
		if got := f.get(t, r.ID); got.LogDropped != int64(len(out))-12+6 {
			t.Fatalf("dropped = %d, want %d", got.LogDropped, len(out)-12+6)
		}
	})
}
