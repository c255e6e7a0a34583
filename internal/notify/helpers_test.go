package notify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/secrets"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var testKey = bytes.Repeat([]byte{9}, 32)

// newTestService returns a service with fast timings on d, the root space
// created, and its debug log collected in the returned buffer.
func newTestService(t *testing.T, d *db.DB) (*Service, *lockedBuffer) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.Exec(ctx, `INSERT INTO spaces (id, name, created_at, updated_at) VALUES ('root', 'root', 1, 1),
		('other', 'other', 1, 1) ON CONFLICT (id) DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(testKey)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	s := NewService(d, box, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s.BackoffBase, s.MaxBackoff, s.PollInterval, s.Timeout = 5*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond, 5*time.Second
	return s, logs
}

// start runs the dispatcher until the test ends.
func start(t *testing.T, s *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// received is one request a receiver got.
type received struct {
	method string
	header http.Header
	body   []byte
}

// receiver is an HTTP server on 127.0.0.1 answering with answer(n) for its
// n-th request (from 0).
type receiver struct {
	mu   sync.Mutex
	reqs []received
	url  string
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, received{r.Method, r.Header.Clone(), b})
		rc.mu.Unlock()
		if answer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		answer(n, w)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.reqs...)
}

// waitDelivery polls until the delivery of a run is in a final status.
func waitDelivery(t *testing.T, s *Service, runID string) Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, _, err := s.ListDeliveries(context.Background(), DeliveryFilter{RunID: runID})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && (ds[0].Status == StatusDelivered || ds[0].Status == StatusFailed) {
			return ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery of %s not done in time: %+v", runID, ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustCreate(t *testing.T, s *Service, e Endpoint) Endpoint {
	t.Helper()
	out, err := s.CreateEndpoint(context.Background(), e)
	if err != nil {
		t.Fatalf("CreateEndpoint(%s): %v", e.ID, err)
	}
	return out
}

func mustEnqueue(t *testing.T, s *Service, msgs ...Message) {
	t.Helper()
	if err := s.Enqueue(context.Background(), msgs); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	s.Wake()
}
