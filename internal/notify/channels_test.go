package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/errs"
)

// auditLog collects the audit events of a service.
type auditLog struct {
	mu     sync.Mutex
	events []string
}

func (a *auditLog) hook(_ context.Context, action, _, id, _ string, before, after any) error {
	b, _ := json.Marshal(map[string]any{"action": action, "id": id, "before": before, "after": after})
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, string(b))
	return nil
}

func (a *auditLog) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.events, "\n")
}

func TestEmailAndTeamsEndpoints(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		s, logs := newTestService(t, d)
		var audit auditLog
		s.Audit = audit.hook
		teams := mustCreate(t, s, Endpoint{ID: "ops-teams", Kind: KindTeams, Enabled: true,
			URL: "https://example.webhook.office.com/webhookb2/abc/IncomingWebhook/teams-url-token/def"})
		if teams.URL != "https://example.webhook.office.com/*****" {
			t.Errorf("teams URL shown as %q", teams.URL)
		}
		mail := mustCreate(t, s, Endpoint{ID: "ops-mail", Kind: KindEmail, Enabled: true, Retries: 3, Email: EmailSettings{
			Host: "smtp.example.com", Username: "gantry", Password: "smtp-password-value", From: "Gantry <gantry@example.com>",
			To: []string{"ops@example.com", "OPS@example.com", "Dev Team <dev@example.com>"}}})
		want := EmailSettings{Host: "smtp.example.com", Port: 587, Username: "gantry", HasPassword: true, TLS: TLSStartTLS,
			From: `"Gantry" <gantry@example.com>`, To: []string{"ops@example.com", `"Dev Team" <dev@example.com>`}}
		if got := mail.Email; got.Password != "" || !equalSettings(got, want) || mail.URL != "smtp://smtp.example.com:587" {
			t.Errorf("email endpoint = %+v %q, want %+v", got, mail.URL, want)
		}
		list, err := s.ListEndpoints(ctx, "root")
		if err != nil || len(list) != 2 || list[0].Email.Password != "" || !list[0].Email.HasPassword {
			t.Fatalf("list = %+v, %v", list, err)
		}

		// Update: the port and recipients change, the password stays.
		port, to := 2525, []string{"oncall@example.com"}
		up, err := s.UpdateEndpoint(ctx, "ops-mail", EndpointUpdate{Email: EmailUpdate{Port: &port, To: &to}})
		if err != nil || up.Email.Port != 2525 || len(up.Email.To) != 1 || !up.Email.HasPassword || up.Email.Host != "smtp.example.com" {
			t.Fatalf("update = %+v, %v", up, err)
		}
		r, err := s.revealed(ctx, "ops-mail")
		if err != nil || r.Email.Password != "smtp-password-value" {
			t.Fatalf("revealed password %q, %v", r.Email.Password, err)
		}
		newPass := "another-password-value"
		if _, err := s.UpdateEndpoint(ctx, "ops-mail", EndpointUpdate{Email: EmailUpdate{Password: &newPass}}); err != nil {
			t.Fatal(err)
		}
		if r, _ = s.revealed(ctx, "ops-mail"); r.Email.Password != newPass {
			t.Errorf("password not changed")
		}
		none := TLSNone
		if _, err := s.UpdateEndpoint(ctx, "ops-mail", EndpointUpdate{Email: EmailUpdate{TLS: &none}}); !errs.Is(err, errs.Invalid) ||
			!strings.Contains(err.Error(), "loopback") {
			t.Errorf("tls none to a remote host: %v", err)
		}
		host := "smtp.example.com"
		if _, err := s.UpdateEndpoint(ctx, "ops-teams", EndpointUpdate{Email: EmailUpdate{Host: &host}}); !errs.Is(err, errs.Invalid) {
			t.Errorf("SMTP settings on a teams endpoint: %v", err)
		}
		u := "https://example.com/x"
		if _, err := s.UpdateEndpoint(ctx, "ops-mail", EndpointUpdate{URL: &u}); !errs.Is(err, errs.Invalid) {
			t.Errorf("a URL on an email endpoint: %v", err)
		}
		for _, e := range []Endpoint{
			{ID: "x1", Kind: KindEmail, URL: "https://example.com", Email: EmailSettings{Host: "h.example", From: "a@h.example"}},
			{ID: "x2", Kind: KindEmail, Secret: "s", Email: EmailSettings{Host: "h.example", From: "a@h.example"}},
			{ID: "x3", Kind: KindSlack, URL: "https://hooks.slack.com/x", Email: EmailSettings{Host: "h.example"}},
			{ID: "x4", Kind: KindTeams, URL: "ftp://example.com"},
			{ID: "x5", Kind: KindEmail, Email: EmailSettings{Host: "mail.example.com", From: "a@h.example", TLS: TLSNone}},
		} {
			if _, err := s.CreateEndpoint(ctx, e); !errs.Is(err, errs.Invalid) {
				t.Errorf("CreateEndpoint(%s) = %v, want invalid", e.ID, err)
			}
		}

		// Nothing secret in the audit trail, the logs or the stored display.
		all := audit.String() + logs.String()
		for _, secret := range []string{"smtp-password-value", newPass, "teams-url-token"} {
			if strings.Contains(all, secret) {
				t.Errorf("secret %q in the audit trail or logs:\n%s", secret, all)
			}
		}
		if !strings.Contains(audit.String(), `"has_smtp_password":true`) || !strings.Contains(audit.String(), `"smtp_port":2525`) {
			t.Errorf("the audit trail lacks the email settings:\n%s", audit.String())
		}
		var n int
		if err := d.QueryRow(ctx, `SELECT COUNT(*) FROM notify_endpoints WHERE smtp_password_sealed LIKE '%password-value%'
			OR url_sealed LIKE '%teams-url-token%' OR url_display LIKE '%teams-url-token%'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d rows hold a secret in clear (%v)", n, err)
		}
	})
}

func equalSettings(a, b EmailSettings) bool {
	return reflect.DeepEqual(a, b)
}

func TestTeamsDelivery(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, logs := newTestService(t, d)
		ok := newReceiver(t, func(n int, w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) })
		// A receiver that echoes the path (with its token) in an error.
		echo := newReceiver(t, func(n int, w http.ResponseWriter) {
			http.Error(w, "bad webhook /webhookb2/echoed-teams-token", http.StatusBadRequest)
		})
		mustCreate(t, s, Endpoint{ID: "teams", Kind: KindTeams, URL: ok.url + "/webhookb2/teams-token", Enabled: true})
		mustCreate(t, s, Endpoint{ID: "teams-echo", Kind: KindTeams, URL: echo.url + "/webhookb2/echoed-teams-token", Enabled: true})
		start(t, s)
		mustEnqueue(t, s,
			Message{Kind: KindTeams, EndpointID: "teams", SpaceID: "root", RunID: "run-1", Event: "run_updated:FINISHED",
				Title: "Run finished", Text: "Stack web: run-1 FINISHED", RunURL: "https://gantry.example.com/api/v1/runs/run-1"},
			Message{Kind: KindTeams, EndpointID: "teams-echo", SpaceID: "root", RunID: "run-2", Text: "x"})
		got := waitDelivery(t, s, "run-1")
		if got.Status != StatusDelivered || len(got.Attempts) != 1 || got.Attempts[0].HTTPStatus != http.StatusAccepted {
			t.Fatalf("delivery %+v", got)
		}
		reqs := ok.requests()
		if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].header.Get("Content-Type") != "application/json" ||
			string(reqs[0].body) != got.Body {
			t.Fatalf("requests %+v", reqs)
		}
		var card struct {
			Type        string `json:"type"`
			Attachments []struct {
				ContentType string  `json:"contentType"`
				ContentURL  *string `json:"contentUrl"`
				Content     struct {
					Type, Version string
					Body          []map[string]any `json:"body"`
					Actions       []map[string]any `json:"actions"`
				} `json:"content"`
			} `json:"attachments"`
		}
		if err := json.Unmarshal(reqs[0].body, &card); err != nil || card.Type != "message" || len(card.Attachments) != 1 {
			t.Fatalf("card %s (%v)", reqs[0].body, err)
		}
		c := card.Attachments[0]
		if c.ContentType != "application/vnd.microsoft.card.adaptive" || c.ContentURL != nil || c.Content.Type != "AdaptiveCard" ||
			len(c.Content.Body) != 2 || c.Content.Body[0]["text"] != "Run finished" || c.Content.Body[1]["text"] != "Stack web: run-1 FINISHED" ||
			len(c.Content.Actions) != 1 || c.Content.Actions[0]["url"] != "https://gantry.example.com/api/v1/runs/run-1" {
			t.Errorf("card %s", reqs[0].body)
		}
		failed := waitDelivery(t, s, "run-2")
		all := failed.Error + logs.String()
		if failed.Status != StatusPending && failed.Status != StatusFailed || !strings.Contains(failed.Error, "HTTP 400") {
			t.Errorf("echo delivery %+v", failed)
		}
		for _, secret := range []string{"teams-token", "echoed-teams-token"} {
			if strings.Contains(all, secret) {
				t.Errorf("the Teams URL token %q leaked:\n%s", secret, all)
			}
		}
	})
}

func TestNewKindsMismatch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		rc := newReceiver(t, nil)
		mustCreate(t, s, Endpoint{ID: "chat", Kind: KindSlack, URL: rc.url + "/slack", Enabled: true})
		mustCreate(t, s, Endpoint{ID: "teams", Kind: KindTeams, URL: rc.url + "/teams", Enabled: true})
		mustCreate(t, s, Endpoint{ID: "hook", URL: rc.url + "/hook", Enabled: true})
		mustCreate(t, s, Endpoint{ID: "mail", Kind: KindEmail, Enabled: true,
			Email: EmailSettings{Host: "127.0.0.1", TLS: TLSNone, From: "g@example.com", To: []string{"o@example.com"}}})
		mustEnqueue(t, s,
			Message{Kind: KindTeams, EndpointID: "chat", SpaceID: "root", RunID: "run-teams-slack", Text: "x"},
			Message{Kind: KindTeams, EndpointID: "mail", SpaceID: "root", RunID: "run-teams-mail", Text: "x"},
			Message{Kind: KindEmail, EndpointID: "hook", SpaceID: "root", RunID: "run-email-hook", Subject: "s"},
			Message{Kind: KindEmail, EndpointID: "teams", SpaceID: "root", RunID: "run-email-teams", Subject: "s"},
			Message{Kind: KindSlack, EndpointID: "teams", SpaceID: "root", RunID: "run-slack-teams", Text: "x"},
			Message{Kind: KindWebhook, EndpointID: "mail", SpaceID: "root", RunID: "run-webhook-mail"},
			Message{Kind: KindEmail, SpaceID: "root", RunID: "run-email-none", Subject: "s"},
			Message{Kind: KindEmail, EndpointID: "mail", SpaceID: "root", RunID: "run-email-inject", Subject: "s\r\nBcc: v@example.com"},
		)
		start(t, s)
		for run, want := range map[string]string{
			"run-teams-slack":  `endpoint "chat" is a slack endpoint: teams messages need a teams endpoint`,
			"run-teams-mail":   `endpoint "mail" is an email endpoint: teams messages need a teams endpoint`,
			"run-email-hook":   `endpoint "hook" is a webhook endpoint: email messages need an email endpoint`,
			"run-email-teams":  `endpoint "teams" is a teams endpoint: email messages need an email endpoint`,
			"run-slack-teams":  `endpoint "teams" is a teams endpoint: slack messages need a slack endpoint`,
			"run-webhook-mail": `endpoint "mail" is an email endpoint: webhook messages need a webhook endpoint`,
			"run-email-none":   `the email message names no endpoint (endpoint_id is empty)`,
			"run-email-inject": `the email subject holds a line break: header injection is refused`,
		} {
			if got := waitDelivery(t, s, run); got.Status != StatusFailed || got.Error != want || len(got.Attempts) != 0 {
				t.Errorf("%s: %s %q after %d attempts, want FAILED %q", run, got.Status, got.Error, len(got.Attempts), want)
			}
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}
