package bench

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"
)

// Targets of the issue.
const (
	targetListP95   = 10 * time.Millisecond
	targetIdleRSS   = 40 << 20
	targetLoadedRSS = 80 << 20
	listStacks      = 10_000
	listRuns        = 100_000
)

// endpoint is one list request to measure.
type endpoint struct {
	name  string // shown in the results
	path  string // below /api/v1
	items int    // how many items the page must hold
}

// BenchmarkList measures GET /api/v1/stacks and /api/v1/runs (pages of
// 100, with and without filters) through real HTTP against the real server
// with 10,000 stacks and 100,000 runs, then the server's resident memory.
//
// The store is seeded fast: the server starts once (migrations, root space,
// admin token) and stops, rows go in directly with multi-row INSERTs in one
// transaction, and the server starts again on the seeded store.
func BenchmarkList(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		samples := envInt(b, "GANTRY_BENCH_LIST_SAMPLES", 300)
		bin := gantryBinary(b)
		dataDir := filepath.Join(b.TempDir(), "data")
		dbURL := be.dbURL(b)
		cfg := serverConfig{bin: bin, dataDir: dataDir, dbURL: dbURL, workers: 2, token: randomHex(16)}
		first := startServer(b, cfg)
		first.stop(b)

		driver, dsn, pg := "sqlite", "file:"+filepath.Join(dataDir, "gantry.db")+
			"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(0)&_pragma=synchronous(OFF)", false
		if dbURL != "" {
			driver, dsn, pg = "pgx", dbURL, true
		}
		db, err := sql.Open(driver, dsn)
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		sd := seedStore(b, db, pg, seedSpec{spaces: 10, stacks: listStacks, runs: listRuns})
		// What a store that grew over months has: SQLite checkpointed its
		// write-ahead log; PostgreSQL's autovacuum vacuumed and analyzed.
		// (SQLite has no automatic ANALYZE and the server runs none.)
		settle := "PRAGMA wal_checkpoint(TRUNCATE)"
		if pg {
			settle = "VACUUM ANALYZE"
		}
		if _, err := db.Exec(settle); err != nil {
			b.Fatalf("%s: %v", settle, err)
		}
		db.Close()
		note(b, "seeded %d spaces, %d stacks, %d runs, %d run transitions in %s (states %v; busiest stack %s has %d runs, typical %s has %d)",
			len(sd.spaces), len(sd.stacks), len(sd.runs), sd.transitions, sd.elapsed.Round(time.Millisecond), sd.stateCounts,
			sd.busiest, sd.runsOf[sd.busiest], sd.typical, sd.runsOf[sd.typical])

		srv := startServer(b, cfg)
		space := sd.spaces[1]
		endpoints := []endpoint{
			{"stacks", "/stacks?limit=100", 100},
			{"stacks, page 51", "/stacks?limit=100&cursor=" + listCursor("/stacks", sd.stacks[5000-1]), 100},
			{"stacks ?space=" + space, "/stacks?limit=100&space=" + space, 100},
			{"stacks ?label=" + sd.labelExample, "/stacks?limit=100&label=" + url.QueryEscape(sd.labelExample), 100},
			{"runs", "/runs?limit=100", 100},
			{"runs, page 501", "/runs?limit=100&cursor=" + listCursor("/runs", sd.runs[len(sd.runs)-50_000]), 100},
			{fmt.Sprintf("runs ?stack=busiest (%d runs)", sd.runsOf[sd.busiest]), "/runs?limit=100&stack=" + sd.busiest, min(100, sd.runsOf[sd.busiest])},
			{fmt.Sprintf("runs ?stack=typical (%d runs)", sd.runsOf[sd.typical]), "/runs?limit=100&stack=" + sd.typical, min(100, sd.runsOf[sd.typical])},
			{"runs ?state=FINISHED", "/runs?limit=100&state=FINISHED", 100},
			{"runs ?state=FAILED", "/runs?limit=100&state=FAILED", 100},
			{"runs ?type=PROPOSED", "/runs?limit=100&type=PROPOSED", 100},
			{"runs ?space=" + space, "/runs?limit=100&space=" + space, 100},
		}
		// References, not targets: the fixed cost of a request (routing,
		// authentication, one small query, HTTP) against the cost of a page.
		for _, ep := range []endpoint{
			{"stacks, page of 1", "/stacks?limit=1", 1},
			{"runs, page of 1", "/runs?limit=1", 1},
		} {
			s := summarize(srv.measureList(b, ep, samples))
			note(b, "reference GET /api/v1%s: p50 %s p95 %s", ep.path, ms(s.p50), ms(s.p95))
		}
		worst := time.Duration(0)
		for _, ep := range endpoints {
			d := srv.measureList(b, ep, samples)
			s := summarize(d)
			worst = max(worst, s.p95)
			note(b, "GET /api/v1%s: p50 %s p95 %s p99 %s max %s", ep.path, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max))
			record(b, result{
				Target:   "3. list " + ep.name + " (" + be.name + ")",
				Measured: fmt.Sprintf("p50 %s, p95 %s", ms(s.p50), ms(s.p95)),
				Goal:     "p95 <= " + ms(targetListP95),
				Met:      s.p95 <= targetListP95,
			})
		}
		rss, hwm := srv.memory(b)
		note(b, "server memory after the list benchmark: VmRSS %.1f MiB, peak VmHWM %.1f MiB", mib(rss), mib(hwm))
		record(b, result{
			Target:   "4. memory after list, 10k stacks/100k runs (" + be.name + ")",
			Measured: fmt.Sprintf("VmRSS %.1f MiB (peak %.1f MiB)", mib(rss), mib(hwm)),
			Goal:     fmt.Sprintf("<= %d MiB", targetLoadedRSS>>20),
			Met:      rss <= targetLoadedRSS,
		})
		b.ReportMetric(msf(worst), "worst-p95-ms")
		b.ReportMetric(mib(rss), "rss-MiB")
		hideNsPerOp(b)
	})
}

// measureList sends samples GET requests of ep one after another on a
// kept-alive connection (after a warm-up) and returns how long each took,
// from sending the request to reading the whole body.
func (s *server) measureList(tb testing.TB, ep endpoint, samples int) []time.Duration {
	tb.Helper()
	u := s.url + "/api/v1" + ep.path
	get := func() (time.Duration, []byte) {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			tb.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Accept", "application/json")
		start := time.Now()
		resp, err := s.http.Do(req)
		if err != nil {
			tb.Fatalf("GET %s: %v", u, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK {
			tb.Fatalf("GET %s: %s %v\n%s", u, resp.Status, err, body)
		}
		return elapsed, body
	}
	_, body := get()
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		tb.Fatalf("GET %s: %v", u, err)
	}
	if len(page.Items) != ep.items {
		tb.Fatalf("GET %s answered %d items, want %d", u, len(page.Items), ep.items)
	}
	for range 20 {
		get()
	}
	out := make([]time.Duration, samples)
	for i := range out {
		out[i], _ = get()
	}
	return out
}

// BenchmarkIdleMemory measures the server's resident memory on an empty
// store, a few seconds after it started (its built-in workers waiting).
func BenchmarkIdleMemory(b *testing.B) {
	eachBackend(b, func(b *testing.B, be backend) {
		srv := startServer(b, serverConfig{bin: gantryBinary(b), dbURL: be.dbURL(b), workers: 2})
		time.Sleep(3 * time.Second)
		rss, hwm := srv.memory(b)
		note(b, "idle server (2 built-in workers, empty store): VmRSS %.1f MiB, peak VmHWM %.1f MiB", mib(rss), mib(hwm))
		record(b, result{
			Target:   "4. memory idle, empty store (" + be.name + ")",
			Measured: fmt.Sprintf("VmRSS %.1f MiB (peak %.1f MiB)", mib(rss), mib(hwm)),
			Goal:     fmt.Sprintf("<= %d MiB", targetIdleRSS>>20),
			Met:      rss <= targetIdleRSS,
		})
		b.ReportMetric(mib(rss), "rss-MiB")
		hideNsPerOp(b)
	})
}

// listCursor is the next_cursor the API hands out for the page of list
// (under /api/v1) after the item with id last (see nextCursor in
// internal/api/pages.go): the benchmark starts deep pages without walking
// to them.
func listCursor(list, last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("/api/v1" + list + "\n" + last))
}
