package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/events"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/run"
	"github.com/gantry-iac/gantry/internal/secrets"
	"github.com/gantry-iac/gantry/internal/space"
	"github.com/gantry-iac/gantry/internal/stack"
	"github.com/gantry-iac/gantry/internal/state"
)

// newNotifyEnv is newAPIEnv with the notification service wired in and its
// dispatcher running.
func newNotifyEnv(t *testing.T) (*apiEnv, *notify.Service) {
	t.Helper()
	ctx := context.Background()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatalf("db.Open: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	spaces := space.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	n := notify.NewService(d, box, log)
	n.BackoffBase, n.PollInterval = 5*time.Millisecond, 20*time.Millisecond
	e := &apiEnv{t: t, stacks: stack.NewService(d, box), runs: run.NewService(d, events.NewHub(), box, log),
		state: state.NewService(d, box), logs: logs}
	keys := auth.NewKeys(d)
	if e.token, err = keys.Create(ctx, "admin", ""); err != nil {
		t.Fatal(err)
	}
	a := &api.API{Spaces: spaces, Stacks: e.stacks, Runs: e.runs, State: e.state, Keys: keys, Log: log, Notify: n}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(httpx.Adapter{Log: log}.Recover(mux)))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); n.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, n
}

const (
	hookSecret  = "hook-secret-value"
	headerToken = "header-token-value"
	slackToken  = "slack-url-token"
)

func TestWebhooksAPI(t *testing.T) {
	e, n := newNotifyEnv(t)
	var got []http.Header
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Clone())
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(recv.Close)

	var wh apiv1.Webhook
	e.must(e.do("POST", "/api/v1/webhooks", map[string]any{"id": "ops", "url": recv.URL, "secret": hookSecret,
		"headers": map[string]string{"Authorization": "Bearer " + headerToken}, "labels": []string{"team"}}), http.StatusCreated, &wh)
	if wh.ID != "ops" || wh.Space != "root" || wh.Kind != "webhook" || !wh.HasSecret || !wh.Enabled || wh.Retries != 5 ||
		wh.Headers["Authorization"] != secrets.Mask || wh.URL != recv.URL {
		t.Errorf("created %+v", wh)
	}
	var sl apiv1.Webhook
	e.must(e.do("POST", "/api/v1/webhooks", map[string]any{"id": "chat", "kind": "slack",
		"url": "https://hooks.slack.com/services/T1/B2/" + slackToken, "retries": 0, "enabled": false}), http.StatusCreated, &sl)
	if sl.URL != "https://hooks.slack.com/"+secrets.Mask || sl.Retries != 0 || sl.Enabled {
		t.Errorf("slack endpoint %+v", sl)
	}

	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "bad", "url": "ftp://example.com"}), 400, "invalid")
	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "bad"}), 400, "invalid")
	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "ops", "url": recv.URL}), 409, "conflict")
	wantError(t, e.do("POST", "/api/v1/webhooks", `{"id":"x","url":"https://e.com","bogus":1}`), 400, "invalid")
	wantError(t, e.do("GET", "/api/v1/webhooks/nope", nil), 404, "not_found")
	wantError(t, e.do("GET", "/api/v1/deliveries?status=LOST", nil), 400, "invalid")

	var list apiv1.List[apiv1.Webhook]
	e.must(e.do("GET", "/api/v1/webhooks?space=root", nil), 200, &list)
	if len(list.Items) != 2 || list.Items[0].ID != "chat" {
		t.Errorf("list %+v", list)
	}
	var up apiv1.Webhook
	e.must(e.do("PATCH", "/api/v1/webhooks/chat", map[string]any{"enabled": true, "labels": []string{"x"}}), 200, &up)
	if !up.Enabled || up.Labels[0] != "x" || up.URL != sl.URL {
		t.Errorf("updated %+v", up)
	}

	// A message through the service, delivered, and its record in the API.
	if err := n.Enqueue(context.Background(), []notify.Message{
		{Kind: notify.KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-1", Event: "run_updated:FINISHED"},
		{Kind: notify.KindInbox, SpaceID: "root", RunID: "run-1", Title: "Finished", Severity: "INFO"},
	}); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	var ds apiv1.List[apiv1.Delivery]
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.must(e.do("GET", "/api/v1/deliveries?run=run-1&endpoint=ops", nil), 200, &ds)
		if len(ds.Items) == 1 && ds.Items[0].Status == "DELIVERED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a := ds.Items[0].Attempts; len(a) != 1 || a[0].HTTPStatus != 202 || a[0].N != 1 || len(got) != 1 ||
		got[0].Get("X-Gantry-Delivery") != ds.Items[0].ID || got[0].Get("Authorization") != "Bearer "+headerToken {
		t.Errorf("delivery %+v, received %v", ds.Items[0], got)
	}

	var inbox apiv1.List[apiv1.Notification]
	e.must(e.do("GET", "/api/v1/notifications?run=run-1&space=root", nil), 200, &inbox)
	if len(inbox.Items) != 1 || inbox.Items[0].Title != "Finished" || inbox.Items[0].Read {
		t.Fatalf("inbox %+v", inbox)
	}
	var read apiv1.Notification
	e.must(e.do("POST", "/api/v1/notifications/"+inbox.Items[0].ID+"/read", nil), 200, &read)
	if !read.Read {
		t.Errorf("after read: %+v", read)
	}
	wantError(t, e.do("POST", "/api/v1/notifications/ntf-nope/read", nil), 404, "not_found")

	// No secret in any answer, nor in the logs.
	var all []string
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/ops", "/api/v1/webhooks/chat", "/api/v1/deliveries"} {
		r := e.do("GET", path, nil)
		all = append(all, string(r.body))
	}
	all = append(all, e.logs.String())
	for _, s := range []string{hookSecret, headerToken, slackToken} {
		if strings.Contains(strings.Join(all, "\n"), s) {
			t.Errorf("%q leaked", s)
		}
	}

	e.must(e.do("DELETE", "/api/v1/webhooks/ops", nil), http.StatusNoContent, nil)
	wantError(t, e.do("DELETE", "/api/v1/webhooks/ops", nil), 404, "not_found")
}

// TestDeliveryErrorsMaskEchoedTokens: a receiver that echoes the token of
// an endpoint's "Bearer <token>" header does not put it in the API.
func TestDeliveryErrorsMaskEchoedTokens(t *testing.T) {
	e, n := newNotifyEnv(t)
	const token = "s3cr3t-t0ken-value"
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid token "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), http.StatusUnauthorized)
	}))
	t.Cleanup(recv.Close)
	e.must(e.do("POST", "/api/v1/webhooks", map[string]any{"id": "ops", "url": recv.URL, "retries": 0,
		"headers": map[string]string{"Authorization": "Bearer " + token}}), http.StatusCreated, nil)
	if err := n.Enqueue(context.Background(), []notify.Message{
		{Kind: notify.KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-1"}}); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	var ds apiv1.List[apiv1.Delivery]
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.must(e.do("GET", "/api/v1/deliveries?run=run-1", nil), 200, &ds)
		if len(ds.Items) == 1 && ds.Items[0].Status == "FAILED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not failed: %+v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	body := string(e.do("GET", "/api/v1/deliveries?run=run-1", nil).body)
	if strings.Contains(body, token) || strings.Contains(e.logs.String(), token) || !strings.Contains(body, "invalid token *****") {
		t.Errorf("deliveries: %s\nlogs: %s", body, e.logs.String())
	}
}

// TestTeamsAndEmailEndpointsAPI: teams and email endpoints through the API
// (create, list, show, update), their secrets (the Teams URL, the SMTP
// password) never in an answer, the audit trail or the logs.
func TestTeamsAndEmailEndpointsAPI(t *testing.T) {
	e := newRBACEnv(t)
	const (
		teamsToken = "teams-url-token-value"
		smtpPass   = "smtp-password-value"
		smtpPass2  = "smtp-password-changed"
	)
	var tm apiv1.Webhook
	e.must(e.do("POST", "/api/v1/webhooks", map[string]any{"id": "ops-teams", "kind": "teams",
		"url": "https://example.webhook.office.com/webhookb2/" + teamsToken}), http.StatusCreated, &tm)
	if tm.Kind != "teams" || tm.URL != "https://example.webhook.office.com/"+secrets.Mask || tm.Email != nil {
		t.Errorf("teams endpoint %+v", tm)
	}
	var em apiv1.Webhook
	e.must(e.do("POST", "/api/v1/webhooks", map[string]any{"id": "ops-mail", "kind": "email", "retries": 2,
		"email": map[string]any{"smtp_host": "smtp.example.com", "smtp_username": "gantry", "smtp_password": smtpPass,
			"from": "gantry@example.com", "to": []string{"ops@example.com"}}}), http.StatusCreated, &em)
	want := apiv1.WebhookEmail{SMTPHost: "smtp.example.com", SMTPPort: 587, SMTPUsername: "gantry", HasSMTPPassword: true,
		TLS: "starttls", From: "gantry@example.com", To: []string{"ops@example.com"}}
	if em.Kind != "email" || em.URL != "smtp://smtp.example.com:587" || em.Email == nil || !reflect.DeepEqual(*em.Email, want) {
		t.Errorf("email endpoint %+v %+v", em, em.Email)
	}

	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "m2", "kind": "email"}), 400, "invalid")
	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "m3", "kind": "email",
		"email": map[string]any{"smtp_host": "smtp.example.com", "from": "g@example.com", "tls": "none"}}), 400, "invalid")
	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "m4", "kind": "email",
		"email": map[string]any{"smtp_host": "smtp.example.com", "from": "g@example.com", "bogus": 1}}), 400, "invalid")
	wantError(t, e.do("POST", "/api/v1/webhooks", map[string]any{"id": "m5", "kind": "teams", "url": "https://e.com/x",
		"email": map[string]any{"smtp_host": "smtp.example.com"}}), 400, "invalid")
	wantError(t, e.do("PATCH", "/api/v1/webhooks/ops-teams", map[string]any{"email": map[string]any{"smtp_port": 25}}), 400, "invalid")

	var up apiv1.Webhook
	e.must(e.do("PATCH", "/api/v1/webhooks/ops-mail", map[string]any{"email": map[string]any{"smtp_port": 2525,
		"smtp_password": smtpPass2, "to": []string{"a@example.com", "b@example.com"}}}), http.StatusOK, &up)
	if up.Email == nil || up.Email.SMTPPort != 2525 || len(up.Email.To) != 2 || !up.Email.HasSMTPPassword ||
		up.Email.SMTPHost != "smtp.example.com" || up.URL != "smtp://smtp.example.com:2525" {
		t.Errorf("updated %+v %+v", up, up.Email)
	}
	var list apiv1.List[apiv1.Webhook]
	e.must(e.do("GET", "/api/v1/webhooks", nil), http.StatusOK, &list)
	var sawEmail bool
	for _, w := range list.Items {
		sawEmail = sawEmail || w.ID == "ops-mail" && w.Email != nil && w.Email.SMTPPort == 2525
	}
	if !sawEmail {
		t.Errorf("list %+v", list.Items)
	}

	var all []string
	for _, path := range []string{"/api/v1/webhooks", "/api/v1/webhooks/ops-teams", "/api/v1/webhooks/ops-mail", "/api/v1/audit/events?limit=1000"} {
		all = append(all, string(e.do("GET", path, nil).body))
	}
	all = append(all, e.logs.String())
	text := strings.Join(all, "\n")
	for _, s := range []string{teamsToken, smtpPass, smtpPass2} {
		if strings.Contains(text, s) {
			t.Errorf("%q leaked:\n%s", s, text)
		}
	}
	var evs apiv1.List[apiv1.AuditEvent]
	e.must(e.do("GET", "/api/v1/audit/events?action=webhook.update&subject_id=ops-mail", nil), http.StatusOK, &evs)
	var change bytes.Buffer
	if len(evs.Items) == 1 {
		_ = json.Compact(&change, evs.Items[0].Change)
	}
	if !strings.Contains(change.String(), `"smtp_port":2525`) || !strings.Contains(change.String(), `"has_smtp_password":true`) {
		t.Errorf("the audit event of the update does not show the email settings: %d events, %s", len(evs.Items), change.String())
	}
}
