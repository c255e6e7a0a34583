package server_test

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

// metric reads one unlabelled metric from a server's /metrics.
func (s *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	status, body := s.get(t, "/metrics", "")
	if status != http.StatusOK {
		t.Fatalf("/metrics = %d", status)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s in /metrics", name)
	return 0
}

func (s *running) post(t *testing.T, path, token, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST %s = %d", path, resp.StatusCode)
	}
}

// A server on PostgreSQL publishes wake-ups to the other servers only
// while another one is alive: alone it sends none; a second server is
// seen within seconds and then gets them; one that stops is forgotten.
func TestReplicasPublishOnlyWhenShared(t *testing.T) {
	url := dbtest.PostgresURL(t)
	const token = "gnt_replicas-test-admin-token"
	key := hex.EncodeToString(bytes.Repeat([]byte{5}, 32))
	startOne := func() *running {
		cfg := config(t.TempDir())
		cfg.DatabaseURL, cfg.AdminToken, cfg.EncryptionKey = url, token, key
		s, err := start(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := startOne()
	if n := a.metric(t, "gantry_replicas"); n != 1 {
		t.Fatalf("a lone server sees %v servers", n)
	}
	a.post(t, "/api/v1/stacks", token, `{"id":"alone","name":"alone","space":"root","repository":"https://example.com/infra.git","branch":"main"}`)
	a.post(t, "/api/v1/stacks/alone/runs", token, `{"type":"PROPOSED"}`)
	time.Sleep(300 * time.Millisecond) // the publisher works in the background
	if n := a.metric(t, "gantry_wakeups_published_total"); n != 0 {
		t.Fatalf("a lone server published %v wake-ups", n)
	}

	b := startOne()
	if n := b.metric(t, "gantry_replicas"); n != 2 {
		t.Errorf("a second server sees %v servers at start, want 2", n)
	}
	waitFor(t, "the first server to see the second", func() bool { return a.metric(t, "gantry_replicas") == 2 })
	a.post(t, "/api/v1/stacks/alone/runs", token, `{"type":"PROPOSED"}`)
	waitFor(t, "a wake-up to be published", func() bool { return a.metric(t, "gantry_wakeups_published_total") > 0 })

	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first server to forget the stopped one", func() bool { return a.metric(t, "gantry_replicas") == 1 })
}
