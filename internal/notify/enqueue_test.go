package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
)

func TestUndeliverable(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, logs := newTestService(t, d)
		rc := newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "elsewhere", SpaceID: "other", URL: rc.url, Enabled: true})
		mustCreate(t, s, Endpoint{ID: "off", URL: rc.url, Enabled: false})
		mustCreate(t, s, Endpoint{ID: "hook", URL: rc.url, Enabled: true})
		start(t, s)
		for _, tc := range []struct {
			m    Message
			want string
		}{
			{Message{Kind: KindWebhook, EndpointID: "nope"}, `endpoint "nope" does not exist`},
			// An endpoint the run's space may not use reads as one that
			// does not exist (nothing names its space).
			{Message{Kind: KindWebhook, EndpointID: "elsewhere"}, `endpoint "elsewhere" does not exist in the spaces runs in space "root" may use`},
			{Message{Kind: KindWebhook, EndpointID: "nope"}, `endpoint "nope" does not exist in the spaces runs in space "root" may use`},
			{Message{Kind: KindWebhook, EndpointID: "off"}, "disabled"},
			{Message{Kind: KindSlack, EndpointID: "hook", Text: "hi"}, "slack messages need a slack endpoint"},
			{Message{Kind: KindSlack, EndpointID: "nope", Text: ""}, "empty"},
			{Message{Kind: KindWebhook, EndpointID: "hook", Payload: json.RawMessage(`{bad`)}, "not valid JSON"},
			{Message{Kind: KindWebhook, EndpointID: "hook", Method: "TRACE"}, "method"},
			{Message{Kind: KindWebhook, EndpointID: ""}, "endpoint_id is empty"},
		} {
			tc.m.SpaceID, tc.m.RunID = "root", "run-"+strings.ReplaceAll(tc.want, " ", "-")
			mustEnqueue(t, s, tc.m)
			got := waitDelivery(t, s, tc.m.RunID)
			if got.Status != StatusFailed || !strings.Contains(got.Error, tc.want) {
				t.Errorf("%+v: delivery %s %q, want FAILED with %q", tc.m, got.Status, got.Error, tc.want)
			}
		}
		// Allowed through an inheriting ancestor: delivered.
		mustEnqueue(t, s, Message{Kind: KindWebhook, EndpointID: "elsewhere", SpaceID: "root", RunID: "run-ok", AllowedSpaces: []string{"root", "other"}})
		if got := waitDelivery(t, s, "run-ok"); got.Status != StatusDelivered {
			t.Errorf("allowed endpoint: %+v", got)
		}
		if !strings.Contains(logs.String(), "notification not deliverable") {
			t.Errorf("undeliverable messages not logged")
		}
		if err := s.Enqueue(context.Background(), []Message{{Kind: "pager", SpaceID: "root"}}); err == nil {
			t.Errorf("unknown kind accepted")
		}
	})
}

// TestEnqueueInTransaction checks messages are stored with the caller's
// transaction, and not when it rolls back.
func TestEnqueueInTransaction(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, _ := newTestService(t, d)
		boom := errors.New("boom")
		err := d.Tx(ctx, func(ctx context.Context) error {
			if err := s.Enqueue(ctx, []Message{{Kind: KindWebhook, EndpointID: "x", SpaceID: "root", RunID: "run-1"},
				{Kind: KindInbox, SpaceID: "root", RunID: "run-1", Title: "t"}}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		ds, _, _ := s.ListDeliveries(ctx, DeliveryFilter{})
		items, _, _ := s.ListInbox(ctx, InboxFilter{})
		if len(ds) != 0 || len(items) != 0 {
			t.Errorf("rolled back messages were stored: %v %v", ds, items)
		}
	})
}

func TestSlack(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		rc := newReceiver(t, func(n int, w http.ResponseWriter) { w.Write([]byte("ok")) })
		mustCreate(t, s, Endpoint{ID: "chat", Kind: KindSlack, URL: rc.url + "/services/T1/B2/tok", Enabled: true})
		start(t, s)
		mustEnqueue(t, s, Message{Kind: KindSlack, EndpointID: "chat", SpaceID: "root", RunID: "run-1", Text: "Run *run-1* failed <&>"})
		if got := waitDelivery(t, s, "run-1"); got.Status != StatusDelivered {
			t.Fatalf("delivery %+v", got)
		}
		r := rc.requests()[0]
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil || len(body) != 1 || body["text"] != "Run *run-1* failed <&>" || r.method != "POST" {
			t.Errorf("slack request %s %s (%v)", r.method, r.body, err)
		}
	})
}

// TestSecretsStayHidden sends to a Slack URL that cannot be reached and to a
// webhook whose receiver echoes its credentials: no secret shows in the
// attempts, the deliveries or the logs.
func TestSecretsStayHidden(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, logs := newTestService(t, d)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		deadURL := "http://" + l.Addr().String() + "/services/T1/B2/slack-path-token"
		l.Close()
		echoSrv := newEchoServer(t)
		mustCreate(t, s, Endpoint{ID: "chat", Kind: KindSlack, URL: deadURL, Retries: 1, Enabled: true})
		mustCreate(t, s, Endpoint{ID: "hook", URL: echoSrv, Secret: "hmac-secret-value", Retries: 0, Enabled: true,
			Headers: map[string]string{"Authorization": "Bearer header-token-value"}})
		start(t, s)
		mustEnqueue(t, s,
			Message{Kind: KindSlack, EndpointID: "chat", SpaceID: "root", RunID: "run-slack", Text: "hello"},
			Message{Kind: KindWebhook, EndpointID: "hook", SpaceID: "root", RunID: "run-hook"})
		var texts []string
		for _, run := range []string{"run-slack", "run-hook"} {
			got := waitDelivery(t, s, run)
			if got.Status != StatusFailed {
				t.Errorf("%s: %+v", run, got)
			}
			texts = append(texts, got.Error, got.Body)
			for _, a := range got.Attempts {
				texts = append(texts, a.Error)
			}
		}
		all := strings.Join(texts, "\n") + logs.String()
		for _, secret := range []string{"slack-path-token", "hmac-secret-value", "header-token-value"} {
			if strings.Contains(all, secret) {
				t.Errorf("secret %q leaked:\n%s", secret, all)
			}
		}
		if !strings.Contains(all, "connection refused") || !strings.Contains(all, "HTTP 400") {
			t.Errorf("errors lack their causes:\n%s", all)
		}
		for _, e := range []string{"chat", "hook"} {
			ep, err := s.GetEndpoint(ctx, e)
			if err != nil || strings.Contains(ep.URL, "slack-path-token") || ep.Secret != "" || strings.Contains(ep.Headers["Authorization"], "token") {
				t.Errorf("GetEndpoint(%s) = %+v, %v", e, ep, err)
			}
		}
	})
}

// newEchoServer answers 400 with the request's headers in the body, as a
// careless receiver might.
func newEchoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		r.Header.Write(w)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
