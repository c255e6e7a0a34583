package notify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestDenied(t *testing.T) {
	extra := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for addr, want := range map[string]bool{
		"169.254.169.254":        true,
		"169.254.0.1":            true,
		"::ffff:169.254.169.254": true, // IPv4-mapped
		"64:ff9b::a9fe:a9fe":     true, // NAT64 of 169.254.169.254
		"fe80::1":                true,
		"fe80::1%eth0":           true,
		"fd00:ec2::254":          true,
		"0.0.0.0":                true,
		"::":                     true,
		"10.1.2.3":               true, // extra
		"::ffff:10.1.2.3":        true, // extra, mapped
		"::1":                    true, // extra
		"127.0.0.1":              false,
		"192.168.1.1":            false,
		"fd00:ec2::253":          false,
		"2001:db8::1":            false,
		"93.184.216.34":          false,
	} {
		if _, got := denied(netip.MustParseAddr(addr), extra); got != want {
			t.Errorf("denied(%s) = %v, want %v", addr, got, want)
		}
	}
	if _, got := denied(netip.MustParseAddr("10.1.2.3"), nil); got {
		t.Errorf("private addresses are denied by default")
	}
}

// TestDeniedDestinations sends to cloud metadata addresses and, with
// DenyCIDRs, to loopback: the dialer refuses each at once, the delivery
// fails after one attempt naming the address, and nothing is received.
func TestDeniedDestinations(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, logs := newTestService(t, d)
		s.DenyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		rc := newReceiver(t, nil)
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(rc.url, "http://"))
		cases := map[string]string{ // endpoint URL: the address the error names
			"http://169.254.169.254/latest/meta-data/iam/": "169.254.169.254",
			"http://[fd00:ec2::254]/latest/meta-data/":     "fd00:ec2::254",
			"http://[::ffff:169.254.169.254]/":             "169.254.169.254",
			"http://0.0.0.0:" + port + "/":                 "0.0.0.0",
			"http://localhost:" + port + "/":               "127.0.0.1",
			rc.url + "/hook":                               "127.0.0.1",
		}
		i := 0
		runs := map[string]string{}
		for url, addr := range cases {
			i++
			ep := "deny-" + string(rune('a'+i))
			mustCreate(t, s, Endpoint{ID: ep, URL: url, Retries: 5, Enabled: true})
			run := "run-" + ep
			runs[run] = addr
			mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: ep, SpaceID: "root", RunID: run, Method: "PUT",
				Payload: json.RawMessage(`{"x":1}`)})
		}
		start(t, s)
		for run, addr := range runs {
			got := waitDelivery(t, s, run)
			if got.Status != StatusFailed || len(got.Attempts) != 1 || !strings.Contains(got.Error, "not allowed") ||
				!strings.Contains(got.Attempts[0].Error, addr) {
				t.Errorf("%s: delivery %s with %d attempts, error %q; want FAILED at once naming %s", run, got.Status,
					len(got.Attempts), got.Error, addr)
			}
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("the receiver got %d requests", n)
		}
		if !strings.Contains(logs.String(), "not allowed") {
			t.Errorf("the refusal is not logged")
		}
	})
}

// TestEchoedCredentialsMasked has receivers echo parts of the endpoint's
// header credentials: none shows in attempts, deliveries or logs.
func TestEchoedCredentialsMasked(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, logs := newTestService(t, d)
		echo := func(reply string) string {
			return newReceiver(t, func(n int, w http.ResponseWriter) { http.Error(w, reply, http.StatusUnauthorized) }).url
		}
		basic := base64.StdEncoding.EncodeToString([]byte("deploy-user:hunter2-password"))
		mustCreate(t, s, Endpoint{ID: "bearer", URL: echo("invalid token s3cr3t-t0ken-value"), Enabled: true,
			Headers: map[string]string{"Authorization": "Bearer s3cr3t-t0ken-value"}})
		mustCreate(t, s, Endpoint{ID: "basic", URL: echo("user deploy-user: wrong password hunter2-password (deploy-user:hunter2-password)"),
			Enabled: true, Headers: map[string]string{"Authorization": "Basic " + basic}})
		mustCreate(t, s, Endpoint{ID: "keys", URL: echo(`unknown key "second-api-key"`), Enabled: true,
			Headers: map[string]string{"X-Api-Keys": "first-api-key,second-api-key"}})
		start(t, s)
		var texts []string
		for _, ep := range []string{"bearer", "basic", "keys"} {
			mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: ep, SpaceID: "root", RunID: "run-" + ep})
			got := waitDelivery(t, s, "run-"+ep)
			if got.Status != StatusFailed || !strings.Contains(got.Error, "HTTP 401") || !strings.Contains(got.Error, "*****") {
				t.Errorf("%s: %+v", ep, got)
			}
			texts = append(texts, got.Error)
			for _, a := range got.Attempts {
				texts = append(texts, a.Error)
			}
		}
		all := strings.Join(texts, "\n") + logs.String()
		for _, secret := range []string{"s3cr3t-t0ken-value", "hunter2-password", "deploy-user", "second-api-key"} {
			if strings.Contains(all, secret) {
				t.Errorf("%q leaked:\n%s", secret, all)
			}
		}
		if !strings.Contains(all, "invalid token *****") {
			t.Errorf("the answer's text is not kept around the mask:\n%s", all)
		}
	})
}

func TestHeaderSecrets(t *testing.T) {
	got := strings.Join(headerSecrets("Basic "+base64.StdEncoding.EncodeToString([]byte("ab:cdef"))), "|")
	if got != "Basic YWI6Y2RlZg==|ab:cdef|ab|cdef|YWI6Y2RlZg==" {
		t.Errorf("headerSecrets(Basic) = %s", got)
	}
	if got := strings.Join(headerSecrets("k1, k2 k3"), "|"); got != "k1, k2 k3|k1|k2|k3" {
		t.Errorf("headerSecrets(list) = %s", got)
	}
	if got := strings.Join(headerSecrets("Token"), "|"); got != "Token|Token" {
		t.Errorf("headerSecrets(one word) = %s", got)
	}
}

func TestDBText(t *testing.T) {
	for in, want := range map[string]string{
		"a\x00b":    "ab",
		"a\xffb":    "a\uFFFDb",
		"ok":        "ok",
		"\x00\x00":  "",
		"é\x00\xc3": "é\uFFFD",
	} {
		if got := dbText(in, 0); got != want {
			t.Errorf("dbText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := dbText("aé", 2); got != "a" || !utf8.ValidString(got) {
		t.Errorf("dbText cut in a rune: %q", got)
	}
}

// TestTextsPostgresRefuses stores texts with NUL bytes and invalid UTF-8,
// which PostgreSQL refuses: the event's messages are kept, and an answer
// with a NUL byte is recorded (not sent again).
func TestTextsPostgresRefuses(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		rc := newReceiver(t, func(n int, w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("upstream\x00 said \xff no"))
		})
		mustCreate(t, s, Endpoint{ID: "hook", URL: rc.url, Retries: 0, Enabled: true})
		err := s.Enqueue(ctx, []Message{
			{Kind: KindInbox, SpaceID: "root", RunID: "run-1", StackID: "web\x00", Event: "run_updated:\xffFAILED",
				Title: "Run \x00failed \xc3", Body: "body\x00 with \xfe\xff bytes"},
			{Kind: KindWebhook, EndpointID: "hook", SpaceID: "root", RunID: "run-1", Event: "run_updated:\x00FAILED",
				StackID: "web\xff", Payload: json.RawMessage("{\"t\":\"\xff\"}")},
			{Kind: KindWebhook, EndpointID: "hook\x00", SpaceID: "root", RunID: "run-2"},
		})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		items, _, err := s.ListInbox(ctx, InboxFilter{RunID: "run-1"})
		if err != nil || len(items) != 1 || items[0].Title != "Run failed \uFFFD" || items[0].Body != "body with \uFFFD bytes" ||
			items[0].StackID != "web" {
			t.Fatalf("inbox = %+v, %v", items, err)
		}
		if got := waitDelivery(t, s, "run-2"); got.Status != StatusFailed || !strings.Contains(got.Error, `"hook\x00" does not exist`) {
			t.Errorf("delivery to a NUL id = %+v", got)
		}
		s.Wake()
		start(t, s)
		got := waitDelivery(t, s, "run-1")
		if got.Status != StatusFailed || len(got.Attempts) != 1 || got.Attempts[0].HTTPStatus != 502 ||
			got.Attempts[0].Error != "HTTP 502: upstream said \uFFFD no" || got.Event != "run_updated:FAILED" {
			t.Fatalf("delivery = %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
		if n := len(rc.requests()); n != 1 {
			t.Errorf("the receiver got %d requests, want 1", n)
		}
	})
}

// TestEndpointIDReused deletes an endpoint with deliveries pending and in
// flight, and creates another endpoint with the same id in another space:
// it gets none of them.
func TestEndpointIDReused(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		old, reused := newReceiver(t, nil), newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "ops", URL: old.url, Retries: 3, Enabled: true})
		mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-flight"})
		inFlight, err := s.claim(ctx, 10)
		if err != nil || len(inFlight) != 1 {
			t.Fatalf("claim = %v, %v", inFlight, err)
		}
		mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-pending"})
		if err := s.DeleteEndpoint(ctx, "ops"); err != nil {
			t.Fatal(err)
		}
		ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{RunID: "run-pending"})
		if err != nil || len(ds) != 1 || ds[0].Status != StatusFailed || ds[0].Error != `endpoint "ops" deleted` {
			t.Fatalf("pending delivery after DeleteEndpoint = %+v, %v", ds, err)
		}
		mustCreate(t, s, Endpoint{ID: "ops", SpaceID: "other", URL: reused.url, Retries: 3, Enabled: true})
		// The request in flight fails; the delivery is to be retried.
		if err := s.record(ctx, inFlight[0], 3, outcome{at: time.Now(), status: 503, err: "HTTP 503"}); err != nil {
			t.Fatal(err)
		}
		start(t, s)
		got := waitDelivery(t, s, "run-flight")
		if got.Status != StatusFailed || len(got.Attempts) != 2 || !strings.Contains(got.Error, "was deleted") {
			t.Errorf("retried delivery = %+v", got)
		}
		if n := len(reused.requests()); n != 0 {
			t.Errorf("the new endpoint got %d requests", n)
		}
		// Its own deliveries go.
		mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "other", RunID: "run-new"})
		if got := waitDelivery(t, s, "run-new"); got.Status != StatusDelivered || len(reused.requests()) != 1 {
			t.Errorf("new endpoint's delivery = %+v", got)
		}
	})
}

// TestKindMismatch routes a webhook rule to a Slack endpoint and a slack
// rule to a webhook endpoint, at enqueue time and (for deliveries stored
// before the check) at send time: none is sent.
func TestKindMismatch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		slack, hook := newReceiver(t, nil), newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "chat", Kind: KindSlack, URL: slack.url + "/services/T1/B2/tok", Enabled: true})
		mustCreate(t, s, Endpoint{ID: "hook", URL: hook.url, Enabled: true})
		mustEnqueue(t, s,
			Message{Kind: KindWebhook, EndpointID: "chat", SpaceID: "root", RunID: "run-webhook", Method: "DELETE",
				Payload: json.RawMessage(`{"custom":true}`)},
			Message{Kind: KindSlack, EndpointID: "hook", SpaceID: "root", RunID: "run-slack", Text: "hi"},
			Message{Kind: KindSlack, EndpointID: "chat", SpaceID: "root", RunID: "run-legacy", Text: "hi"})
		// As a webhook rule naming a Slack endpoint was stored before.
		if _, err := d.Exec(ctx, `UPDATE notify_deliveries SET kind = 'webhook', method = 'DELETE' WHERE run_id = 'run-legacy'`); err != nil {
			t.Fatal(err)
		}
		start(t, s)
		for run, want := range map[string]struct {
			err      string
			attempts int // 0: refused when enqueued
		}{
			"run-webhook": {`endpoint "chat" is a slack endpoint: webhook messages need a webhook endpoint`, 0},
			"run-slack":   {`endpoint "hook" is a webhook endpoint: slack messages need a slack endpoint`, 0},
			"run-legacy":  {`endpoint "chat" is a slack endpoint: webhook messages need a webhook endpoint`, 1},
		} {
			if got := waitDelivery(t, s, run); got.Status != StatusFailed || got.Error != want.err || len(got.Attempts) != want.attempts {
				t.Errorf("%s: %s %q after %d attempts, want FAILED %q after %d", run, got.Status, got.Error, len(got.Attempts),
					want.err, want.attempts)
			}
		}
		if n := len(slack.requests()) + len(hook.requests()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

// TestLeaseAtLeastTwiceTimeout: a lease shorter than 2*Timeout+LeaseMargin
// is raised, with a warning, so a request in flight is not sent again.
func TestLeaseAtLeastTwiceTimeout(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, logs := newTestService(t, d)
		s.Timeout, s.Lease = 30*time.Second, time.Second
		rc := newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "ops", URL: rc.url, Enabled: true})
		mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-1"})
		before := time.Now()
		c, err := s.claim(ctx, 10)
		if err != nil || len(c) != 1 {
			t.Fatalf("claim = %v, %v", c, err)
		}
		ds, _, err := s.ListDeliveries(ctx, DeliveryFilter{RunID: "run-1"})
		if err != nil || len(ds) != 1 {
			t.Fatal(ds, err)
		}
		if lease := ds[0].NextAttempt.Sub(before); lease < 2*s.Timeout+LeaseMargin {
			t.Errorf("lease %v, want at least %v", lease, 2*s.Timeout+LeaseMargin)
		}
		start(t, s)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), "notification lease raised") {
			if time.Now().After(deadline) {
				t.Fatalf("no warning logged:\n%s", logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
