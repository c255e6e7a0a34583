package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestWebhookDelivery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		rc := newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "ops", URL: rc.url + "/hook", Secret: "the-secret", Enabled: true, Retries: 2,
			Headers: map[string]string{"Authorization": "Bearer endpoint-token", "X-Team": "infra"}})
		start(t, s)
		def := json.RawMessage(`{"state":"FAILED","run":{"id":"run-1"}}`)
		mustEnqueue(t, s,
			Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-1", StackID: "web", Event: "run_updated:FAILED",
				DefaultPayload: def, Headers: map[string]string{"X-Team": "override", "X-Extra": "1", "X-Gantry-Delivery": "forged"}},
			Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-2", Method: "put",
				Payload: json.RawMessage(`{"custom":true}`), DefaultPayload: def},
		)
		d1, d2 := waitDelivery(t, s, "run-1"), waitDelivery(t, s, "run-2")
		if d1.Status != StatusDelivered || len(d1.Attempts) != 1 || d1.Attempts[0].HTTPStatus != 204 || d1.Attempts[0].N != 1 {
			t.Fatalf("delivery 1 = %+v", d1)
		}
		reqs := rc.requests()
		if len(reqs) != 2 {
			t.Fatalf("receiver got %d requests, want 2", len(reqs))
		}
		byDelivery := map[string]received{}
		for _, r := range reqs {
			byDelivery[r.header.Get(HeaderDelivery)] = r
		}
		r1, r2 := byDelivery[d1.ID], byDelivery[d2.ID]
		if string(r1.body) != string(def) || r1.method != "POST" {
			t.Errorf("default payload: %s %s", r1.method, r1.body)
		}
		if string(r2.body) != `{"custom":true}` || r2.method != "PUT" {
			t.Errorf("custom payload: %s %s", r2.method, r2.body)
		}
		mac := hmac.New(sha256.New, []byte("the-secret"))
		mac.Write(r1.body)
		if got, want := r1.header.Get("X-Signature-256"), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
			t.Errorf("signature %q, want %q", got, want)
		}
		// Spacelift's SHA-1 signature too, for receivers written for it.
		mac1 := hmac.New(sha1.New, []byte("the-secret"))
		mac1.Write(r1.body)
		if got, want := r1.header.Get("X-Signature"), "sha1="+hex.EncodeToString(mac1.Sum(nil)); got != want {
			t.Errorf("SHA-1 signature %q, want %q", got, want)
		}
		for k, want := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer endpoint-token",
			"X-Team": "override", "X-Extra": "1", HeaderEvent: "run_updated:FAILED"} {
			if got := r1.header.Get(k); got != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
	})
}

func TestRetries(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		flaky := newReceiver(t, func(n int, w http.ResponseWriter) {
			if n < 2 {
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		broken := newReceiver(t, func(n int, w http.ResponseWriter) { http.Error(w, "broken", http.StatusInternalServerError) })
		mustCreate(t, s, Endpoint{ID: "flaky", URL: flaky.url, Retries: 5, Enabled: true})
		mustCreate(t, s, Endpoint{ID: "broken", URL: broken.url, Retries: 2, Enabled: true})
		start(t, s)
		mustEnqueue(t, s,
			Message{Kind: KindWebhook, EndpointID: "flaky", SpaceID: "root", RunID: "run-flaky"},
			Message{Kind: KindWebhook, EndpointID: "broken", SpaceID: "root", RunID: "run-broken"})

		got := waitDelivery(t, s, "run-flaky")
		if got.Status != StatusDelivered || len(got.Attempts) != 3 {
			t.Fatalf("flaky delivery = %+v, want DELIVERED after 3 attempts", got)
		}
		for i, a := range got.Attempts {
			wantStatus := []int{503, 503, 200}[i]
			if a.N != i+1 || a.HTTPStatus != wantStatus || (i < 2) != (a.Error != "") || a.At.IsZero() {
				t.Errorf("attempt %d = %+v", i+1, a)
			}
		}
		if !strings.Contains(got.Attempts[0].Error, "HTTP 503: try later") {
			t.Errorf("attempt error %q", got.Attempts[0].Error)
		}
		if len(flaky.requests()) != 3 {
			t.Errorf("flaky receiver got %d requests", len(flaky.requests()))
		}

		got = waitDelivery(t, s, "run-broken")
		if got.Status != StatusFailed || len(got.Attempts) != 3 || !strings.Contains(got.Error, "HTTP 500") {
			t.Fatalf("broken delivery = %+v, want FAILED after retries+1 = 3 attempts", got)
		}
		time.Sleep(50 * time.Millisecond)
		if n := len(broken.requests()); n != 3 {
			t.Errorf("broken receiver got %d requests, want 3", n)
		}
	})
}

// TestLeaseExpiry simulates a sender that claimed a delivery and died: the
// delivery is sent again once its lease ends.
func TestLeaseExpiry(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		rc := newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "ops", URL: rc.url, Retries: 3, Enabled: true})
		mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-1"})
		crashed, err := s.claim(ctx, 10)
		if err != nil || len(crashed) != 1 {
			t.Fatalf("claim = %v, %v", crashed, err)
		}
		if again, err := s.claim(ctx, 10); err != nil || len(again) != 0 {
			t.Fatalf("a leased delivery was claimed again: %v %v", again, err)
		}
		// The lease runs out (it is at least 2*Timeout+LeaseMargin long).
		if _, err := d.Exec(ctx, `UPDATE notify_deliveries SET next_attempt_at = $2 WHERE id = $1`,
			crashed[0].id, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		start(t, s)
		got := waitDelivery(t, s, "run-1")
		if got.Status != StatusDelivered || len(got.Attempts) != 2 || !strings.Contains(got.Attempts[0].Error, "lost its lease") ||
			got.Attempts[1].HTTPStatus != 204 {
			t.Fatalf("delivery = %+v, want the lost attempt then a delivered one", got)
		}
		if n := len(rc.requests()); n != 1 {
			t.Errorf("receiver got %d requests", n)
		}
		// The dead sender's late outcome is refused: the lease is not its own.
		if err := s.record(ctx, crashed[0], 3, outcome{at: time.Now(), status: 500, err: "late"}); err != nil {
			t.Fatal(err)
		}
		if after := waitDelivery(t, s, "run-1"); after.Status != StatusDelivered || len(after.Attempts) != 2 {
			t.Errorf("a stale outcome changed the delivery: %+v", after)
		}
	})
}

// TestTwoDispatchers runs two dispatchers, each with its own connection
// pool, on one PostgreSQL database: no message is sent twice.
func TestTwoDispatchers(t *testing.T) {
	url := dbtest.PostgresURL(t)
	ctx := context.Background()
	var svcs []*Service
	for range 2 {
		d, err := db.Open(ctx, url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		s, _ := newTestService(t, d)
		s.Concurrency = 4
		svcs = append(svcs, s)
	}
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		time.Sleep(time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	mustCreate(t, svcs[0], Endpoint{ID: "ops", URL: rc.url, Retries: 1, Enabled: true})
	const n = 60
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-x"}
	}
	mustEnqueue(t, svcs[0], msgs...)
	for _, s := range svcs {
		start(t, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, _, err := svcs[1].ListDeliveries(ctx, DeliveryFilter{Status: StatusDelivered, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered in time", len(ds), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, r := range rc.requests() {
		seen[r.header.Get(HeaderDelivery)]++
	}
	if len(seen) != n {
		t.Errorf("%d distinct deliveries received, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("delivery %s received %d times", id, c)
		}
	}
}

func TestBackoff(t *testing.T) {
	s := NewService(nil, nil, nil)
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 6: 320 * time.Second, 7: 10 * time.Minute, 20: 10 * time.Minute} {
		for range 20 {
			got := s.backoff(n)
			lo := want * 4 / 5
			if got < lo || got > min(want*6/5, 10*time.Minute) {
				t.Errorf("backoff(%d) = %v, want %v within 20%% and at most 10m", n, got, want)
			}
		}
	}
}
