package audit_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/secrets"
)

const (
	fwdSecret = "s3cret-hmac-key-for-tests"
	fwdToken  = "Bearer tok-9f8e7d6c5b4a"
)

var fwdKey = bytes.Repeat([]byte{7}, 32)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newForwarder returns a fast forwarder over d and its log.
func newForwarder(t *testing.T, d *db.DB) (*audit.Service, *audit.Forwarder, *syncBuffer) {
	t.Helper()
	box, err := secrets.NewBox(fwdKey)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := audit.NewService(d, log)
	f := audit.NewForwarder(s, box, log)
	f.BackoffBase, f.MaxBackoff, f.PollInterval, f.Timeout = 5*time.Millisecond, 40*time.Millisecond, 10*time.Millisecond, 5*time.Second
	return s, f, logs
}

// start runs f until the test ends or the returned stop is called.
func start(t *testing.T, f *audit.Forwarder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// receiver is an audit endpoint. answer gives the status of request n
// (from 0).
type receiver struct {
	*httptest.Server
	mu        sync.Mutex
	n         int
	delivered []int64 // seqs answered 2xx, in order
	bodies    map[int64][]byte
	badSig    int
	inFlight  int
	maxFlight int
	header    string
}

func newReceiver(t *testing.T, answer func(n int) int, delay time.Duration) *receiver {
	rc := &receiver{bodies: map[int64][]byte{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := rc.n
		rc.n++
		rc.inFlight++
		rc.maxFlight = max(rc.maxFlight, rc.inFlight)
		rc.header = r.Header.Get("Authorization")
		rc.mu.Unlock()
		time.Sleep(delay)
		m := hmac.New(sha256.New, []byte(fwdSecret))
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		var ev struct {
			Seq      int64  `json:"seq"`
			Hash     string `json:"hash"`
			PrevHash string `json:"prev_hash"`
		}
		_ = json.Unmarshal(body, &ev)
		status := answer(n)
		rc.mu.Lock()
		rc.inFlight--
		if !hmac.Equal([]byte(r.Header.Get("X-Signature-256")), []byte(want)) || r.Header.Get("X-Gantry-Audit-Seq") != strconv.FormatInt(ev.Seq, 10) {
			rc.badSig++
		}
		if status/100 == 2 {
			rc.delivered = append(rc.delivered, ev.Seq)
			rc.bodies[ev.Seq] = body
		}
		rc.mu.Unlock()
		w.WriteHeader(status)
		// An answer echoing the credentials must not leak them.
		io.WriteString(w, "nope "+r.Header.Get("Authorization")+" "+fwdSecret)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]int64(nil), rc.delivered...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkInOrder fails unless got is exactly from, from+1, ..., n: in
// order, none missing, none repeated (no answer was lost in these tests).
func checkInOrder(t *testing.T, got []int64, from, n int64) {
	t.Helper()
	if int64(len(got)) != n-from+1 {
		t.Fatalf("delivered %v, want %d to %d", got, from, n)
	}
	for i, s := range got {
		if s != from+int64(i) {
			t.Fatalf("delivered %v, want %d to %d", got, from, n)
		}
	}
}

func TestForwardFailThenRecover(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, f, logs := newForwarder(t, d)
		record(t, ctx, s, 3)
		rc := newReceiver(t, func(n int) int {
			if n < 6 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}, 0)
		e, err := f.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: "siem", URL: rc.URL, Secret: fwdSecret,
			Headers: map[string]string{"Authorization": fwdToken}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if e.Secret != "" || !e.HasSecret || e.Headers["Authorization"] != secrets.Mask || e.DeliveredSeq != 0 {
			t.Fatalf("created endpoint: %+v", e)
		}
		stop := start(t, f)
		// The endpoint's creation is event 4; six more make 10.
		record(t, ctx, s, 6)
		// Delivered and its cursor saved (the receiver answers before the
		// forwarder records it: stopping in between would send 10 again,
		// as at-least-once allows).
		waitFor(t, "10 events delivered", func() bool {
			g := rc.got()
			return len(g) > 0 && g[len(g)-1] == 10 && status(t, f, "siem").DeliveredSeq == 10
		})
		checkInOrder(t, rc.got(), 1, 10)
		rc.mu.Lock()
		if rc.badSig != 0 || rc.header != fwdToken {
			t.Errorf("bad signatures %d, header %q", rc.badSig, rc.header)
		}
		body := rc.bodies[4]
		rc.mu.Unlock()
		all, _, err := s.List(ctx, audit.Filter{}, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := audit.ForwardBody(all[0])
		if !bytes.Equal(body, want) || !strings.Contains(string(body), `"prev_hash"`) {
			t.Errorf("body of 4:\n%s\nwant\n%s", body, want)
		}
		st := status(t, f, "siem")
		if st.DeliveredSeq != 10 || st.HeadSeq != 10 || st.Lag != 0 || st.Attempts != 0 || st.LastError != "" || st.Flagged {
			t.Errorf("status after recovery: %+v", st)
		}

		// A restart: a new forwarder on the same database resumes from the cursor.
		stop()
		record(t, ctx, s, 3)
		_, f2, logs2 := newForwarder(t, d)
		start(t, f2)
		waitFor(t, "13 events delivered", func() bool { g := rc.got(); return g[len(g)-1] == 13 })
		checkInOrder(t, rc.got(), 1, 13)
		for _, l := range []string{logs.String(), logs2.String()} {
			if strings.Contains(l, fwdSecret) || strings.Contains(l, "tok-9f8e7d6c5b4a") {
				t.Errorf("a secret is in the logs:\n%s", l)
			}
		}
		if !strings.Contains(logs.String(), "HTTP 503") {
			t.Errorf("failures not logged:\n%s", logs.String())
		}
	})
}

func status(t *testing.T, f *audit.Forwarder, id string) audit.ForwardStatus {
	t.Helper()
	list, err := f.Deliveries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Endpoint == id {
			return st
		}
	}
	t.Fatalf("no status for %s in %+v", id, list)
	return audit.ForwardStatus{}
}

func TestForwardFlagsLongFailure(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, f, logs := newForwarder(t, d)
		f.FlagAfter = 150 * time.Millisecond
		rc := newReceiver(t, func(int) int { return http.StatusInternalServerError }, 0)
		if _, err := f.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: "down", URL: rc.URL, Secret: fwdSecret,
			Headers: map[string]string{"Authorization": fwdToken}}, 0); err != nil {
			t.Fatal(err)
		}
		record(t, ctx, s, 2)
		start(t, f)
		waitFor(t, "flagged", func() bool { st := status(t, f, "down"); return st.Flagged && st.Attempts >= 2 })
		st := status(t, f, "down")
		// Behind by its own creation's event and the two after it.
		if st.DeliveredSeq != 0 || st.Lag != 3 || st.FailingSince.IsZero() || !strings.HasPrefix(st.LastError, "HTTP 500") {
			t.Errorf("status: %+v", st)
		}
		if strings.Contains(st.LastError, fwdSecret) || strings.Contains(st.LastError, "tok-9f8e7d6c5b4a") {
			t.Errorf("a secret is in last_error: %q", st.LastError)
		}
		waitFor(t, "flag logged", func() bool { return strings.Contains(logs.String(), "audit endpoint flagged") })
		if l := logs.String(); strings.Contains(l, fwdSecret) || strings.Contains(l, "tok-9f8e7d6c5b4a") {
			t.Errorf("a secret is in the logs:\n%s", l)
		}
		if len(rc.got()) != 0 {
			t.Errorf("delivered %v", rc.got())
		}
	})
}

func TestForwardEndpoints(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, f, _ := newForwarder(t, d)
		record(t, ctx, s, 3)
		e, err := f.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: "a", URL: "https://siem.example/in"}, 0)
		if err != nil || e.DeliveredSeq != 3 || e.HasSecret || !e.Enabled {
			t.Fatalf("create from head: %+v %v", e, err)
		}
		if _, err := f.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: "a", URL: "https://x.example"}, 0); err == nil {
			t.Error("duplicate id accepted")
		}
		for _, bad := range []audit.ForwardEndpoint{
			{ID: "Bad Id", URL: "https://x.example"},
			{ID: "b", URL: "ftp://x.example"},
			{ID: "b", URL: "https://u:p@x.example"},
			{ID: "b", URL: "https://x.example", Headers: map[string]string{"X-Signature-256": "x"}},
			{ID: "b", URL: "https://x.example", Headers: map[string]string{"X-A": "a\nb"}},
		} {
			if _, err := f.CreateEndpoint(ctx, bad, 0); err == nil {
				t.Errorf("accepted %+v", bad)
			}
		}
		list, err := f.ListEndpoints(ctx)
		if err != nil || len(list) != 1 || list[0].ID != "a" {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := f.DeleteEndpoint(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := f.DeleteEndpoint(ctx, "a"); err == nil {
			t.Error("second delete succeeded")
		}
	})
}

// Two forwarders (two server replicas) on one PostgreSQL database never
// send to one endpoint at the same time, and still deliver in order.
func TestForwardTwoForwardersPostgres(t *testing.T) {
	url := dbtest.PostgresURL(t)
	open := func() *db.DB {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		d, err := db.Open(ctx, url, "", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	d1 := open()
	d2 := open()
	ctx := context.Background()
	s, f1, _ := newForwarder(t, d1)
	_, f2, _ := newForwarder(t, d2)
	rc := newReceiver(t, func(n int) int {
		if n%7 == 3 {
			return http.StatusBadGateway
		}
		return http.StatusNoContent
	}, 3*time.Millisecond)
	if _, err := f1.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: "one", URL: rc.URL, Secret: fwdSecret}, 0); err != nil {
		t.Fatal(err)
	}
	start(t, f1)
	start(t, f2)
	for range 6 {
		record(t, ctx, s, 5)
		time.Sleep(15 * time.Millisecond)
	}
	// The endpoint's creation (event 1) and the 30 recorded.
	waitFor(t, "31 events delivered", func() bool { g := rc.got(); return len(g) > 0 && g[len(g)-1] == 31 })
	checkInOrder(t, rc.got(), 1, 31)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.maxFlight != 1 || rc.badSig != 0 {
		t.Errorf("at most %d requests at once (want 1), %d bad signatures", rc.maxFlight, rc.badSig)
	}
}

// A slow endpoint (a receiver taking its time on every event) does not hold
// back a healthy one.
func TestForwardSlowEndpointDoesNotBlockOthers(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, f, _ := newForwarder(t, d)
		slow := newReceiver(t, func(int) int { return http.StatusOK }, 300*time.Millisecond)
		fast := newReceiver(t, func(int) int { return http.StatusOK }, 0)
		for id, rc := range map[string]*receiver{"slow": slow, "fast": fast} {
			if _, err := f.CreateEndpoint(ctx, audit.ForwardEndpoint{ID: id, URL: rc.URL, Secret: fwdSecret}, 1); err != nil {
				t.Fatal(err)
			}
		}
		// The two creations are events 1 and 2; 18 more make 20.
		record(t, ctx, s, 18)
		start(t, f)
		waitFor(t, "the fast endpoint caught up", func() bool { g := fast.got(); return len(g) > 0 && g[len(g)-1] == 20 })
		if n := len(slow.got()); n >= 20 {
			t.Fatalf("the slow endpoint already got %d events: the test proves nothing", n)
		}
		record(t, ctx, s, 5)
		waitFor(t, "new events reach the fast endpoint while the slow one lags", func() bool {
			g := fast.got()
			return len(g) > 0 && g[len(g)-1] == 25 && len(slow.got()) < 25
		})
		checkInOrder(t, fast.got(), 1, 25)
	})
}
