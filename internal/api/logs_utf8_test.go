package api_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/client"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/run"
)

// A run's log read in 1 MiB pages comes back whole: a character the page
// size cuts in two starts the next page; bytes that are not UTF-8 still
// make progress.
func TestRunLogPagesKeepCharacters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		e := newRBACEnvOn(t, d)
		ctx := context.Background()
		e.createStack("st", nil)
		r, err := e.runs.Create(ctx, run.New{StackID: "st", Type: run.Proposed, TriggeredBy: "alice", CommitSHA: pinnedSHA})
		if err != nil {
			t.Fatal(err)
		}
		cl, err := e.runs.Claim(ctx, "", "worker-1")
		if err != nil || cl == nil || cl.Run.ID != r.ID {
			t.Fatalf("Claim = %v, %v", cl, err)
		}
		// é straddles byte 1 MiB, € the next page's end; the log's end
		// is the start of a character that is not there yet.
		log := strings.Repeat("a", 1<<20-1) + "é\n" + strings.Repeat("b", 1<<20-3) + "€ end\n\xe2\x82"
		for off := 0; off < len(log); off += run.MaxLogChunk {
			chunk := log[off:min(off+run.MaxLogChunk, len(log))]
			if _, err := e.runs.AppendLog(ctx, r.ID, int64(off), []byte(chunk)); err != nil {
				t.Fatal(err)
			}
		}
		read := func() (string, int64) {
			var got strings.Builder
			var offset int64
			for {
				var c apiv1.LogChunk
				e.must(e.do("GET", "/api/v1/runs/"+r.ID+"/logs?offset="+strconv.FormatInt(offset, 10), nil), http.StatusOK, &c)
				if c.Data == "" {
					return got.String(), offset
				}
				got.WriteString(c.Data)
				offset = c.NextOffset
			}
		}
		got, offset := read()
		if want := log[:len(log)-2]; got != want || offset != int64(len(want)) {
			t.Errorf("while the run goes on: %d bytes to offset %d, want the %d whole characters (U+FFFD at %d)",
				len(got), offset, len(want), strings.IndexRune(got, '\uFFFD'))
		}
		// The run ends with the piece still there: it is sent as it is (JSON
		// makes each of its bytes a U+FFFD).
		if _, err := e.runs.Finish(ctx, r.ID, "worker-1", false, "done"); err != nil {
			t.Fatal(err)
		}
		if got, offset := read(); offset != int64(len(log)) || !strings.HasSuffix(got, "€ end\n\uFFFD\uFFFD") || strings.Count(got, "\uFFFD") != 2 {
			t.Errorf("after the run: %d bytes to offset %d, want all %d", len(got), offset, len(log))
		}
		var out bytes.Buffer
		if err := client.New(e.url, e.token).FollowLogs(ctx, r.ID, &out); err != nil {
			t.Fatal(err)
		}
		if want := log[:len(log)-2] + "\uFFFD\uFFFD"; out.String() != want {
			t.Errorf("FollowLogs: %d bytes, want %d (U+FFFD at %d)", out.Len(), len(want), strings.IndexRune(out.String(), '\uFFFD'))
		}
	})
}
