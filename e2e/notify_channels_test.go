package e2e

import (
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/notify/smtptest"
)

// teamsAndEmailPolicy routes every FINISHED run to a Teams endpoint and to
// two email endpoints (one whose server offers no STARTTLS).
const teamsAndEmailPolicy = `package spacelift

teams contains {
	"channel_id": "ops-teams",
	"title": sprintf("Run %s finished", [input.run_updated.run.id]),
	"message": sprintf("Stack %s is %s", [input.run_updated.stack.id, input.run_updated.state]),
} if {
	input.run_updated.state == "FINISHED"
}

email contains {
	"endpoint_id": endpoint,
	"subject": sprintf("[gantry] %s finished ✓", [input.run_updated.stack.id]),
	"body": sprintf("Run %s finished.\n%s", [input.run_updated.run.id, input.run_updated.urls.run]),
} if {
	input.run_updated.state == "FINISHED"
	some endpoint in ["ops-mail", "plain-mail"]
}
`

// TestTeamsAndEmailNotifications: a notification policy routes a FINISHED
// run to a Microsoft Teams endpoint (a local receiver checking the Adaptive
// Card) and to an email endpoint (a real SMTP server, the npm package
// smtp-server, with STARTTLS and AUTH PLAIN); both deliveries become
// DELIVERED with their attempts in `gantry notification deliveries`. An
// email endpoint whose server offers no STARTTLS fails without sending.
// The SMTP password and the Teams URL's token appear in no API answer and
// not in the server's log.
func TestTeamsAndEmailNotifications(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	const (
		smtpUser   = "gantry-e2e"
		smtpPass   = "e2e-smtp-Pw-4242"
		teamsToken = "e2e-teams-token-0f9a8b7c6d"
	)
	var mu sync.Mutex
	var cards [][]byte
	var bad []string
	teams := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if r.Method != "POST" || r.URL.Path != "/webhookb2/"+teamsToken || r.Header.Get("Content-Type") != "application/json" {
			bad = append(bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		cards = append(cards, b)
		w.WriteHeader(http.StatusAccepted) // as Workflows answers
	}))
	defer teams.Close()
	smtpSrv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass})
	plainSrv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPass, NoSTARTTLS: true})

	s := StartServer(t, ServerConfig{})
	passFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(passFile, []byte(smtpPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var tw apiv1.Webhook
	s.MustJSON(t, &tw, "webhook", "create", "--id", "ops-teams", "--teams", "--webhook-url", teams.URL+"/webhookb2/"+teamsToken)
	if tw.Kind != "teams" || strings.Contains(tw.URL, teamsToken) {
		t.Fatalf("teams endpoint %+v", tw)
	}
	var ew apiv1.Webhook
	s.MustJSON(t, &ew, "webhook", "create", "--id", "ops-mail", "--smtp-host", smtpSrv.Host, "--smtp-port", strconv.Itoa(smtpSrv.Port),
		"--smtp-username", smtpUser, "--smtp-password-file", passFile, "--smtp-ca-file", smtpSrv.CAFile,
		"--from", "Gantry <gantry@example.com>", "--to", "ops@example.com", "--to", "Dev Team <dev@example.com>")
	if ew.Kind != "email" || ew.Email == nil || !ew.Email.HasSMTPPassword || ew.Email.TLS != "starttls" {
		t.Fatalf("email endpoint %+v", ew)
	}
	s.MustGantry(t, "webhook", "create", "--id", "plain-mail", "--email", "--smtp-host", plainSrv.Host, "--smtp-port",
		strconv.Itoa(plainSrv.Port), "--smtp-username", smtpUser, "--smtp-password-file", passFile, "--retries", "0",
		"--from", "gantry@example.com", "--to", "ops@example.com")
	s.createPolicy(t, "teams-and-email", "NOTIFICATION", teamsAndEmailPolicy)
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "channels", repo.URL, "--autodeploy")
	r := s.WaitRun(t, s.Deploy(t, "channels").ID, "FINISHED")

	// Every delivery reaches its final status; read them as a user would.
	var ds []apiv1.Delivery
	if !poll(waitTimeout, 300*time.Millisecond, func() bool {
		s.MustJSON(t, &ds, "notification", "deliveries", "--run", r.ID)
		final := 0
		for _, d := range ds {
			if d.Status == "DELIVERED" || d.Status == "FAILED" {
				final++
			}
		}
		return len(ds) == 3 && final == 3
	}) {
		t.Fatalf("deliveries not done: %+v", ds)
	}
	byEndpoint := map[string]apiv1.Delivery{}
	for _, d := range ds {
		byEndpoint[d.Endpoint] = d
	}
	td, ed, pd := byEndpoint["ops-teams"], byEndpoint["ops-mail"], byEndpoint["plain-mail"]
	if td.Status != "DELIVERED" || td.Kind != "teams" || len(td.Attempts) != 1 || td.Attempts[0].N != 1 || td.Attempts[0].HTTPStatus != 202 {
		t.Errorf("teams delivery %+v", td)
	}
	if ed.Status != "DELIVERED" || ed.Kind != "email" || ed.Method != "SMTP" || len(ed.Attempts) != 1 || ed.Attempts[0].N != 1 ||
		ed.Attempts[0].Error != "" {
		t.Errorf("email delivery %+v", ed)
	}
	if pd.Status != "FAILED" || len(pd.Attempts) != 1 || !strings.Contains(pd.Error, "does not offer STARTTLS") {
		t.Errorf("delivery to the server without STARTTLS %+v", pd)
	}
	table := s.MustGantry(t, "notification", "deliveries", "--run", r.ID)
	if !strings.Contains(table, "DELIVERED") || !strings.Contains(table, "does not offer STARTTLS") {
		t.Errorf("deliveries table:\n%s", table)
	}

	// The Teams card, exactly.
	mu.Lock()
	gotCards, gotBad := append([][]byte(nil), cards...), append([]string(nil), bad...)
	mu.Unlock()
	if len(gotCards) != 1 || len(gotBad) != 0 {
		t.Fatalf("teams receiver got %d cards, unexpected requests %v", len(gotCards), gotBad)
	}
	var card, want any
	wantJSON := `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,
		"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"1.4",
		"body":[{"type":"TextBlock","text":"Run ` + r.ID + ` finished","weight":"Bolder","size":"Medium","wrap":true},
		{"type":"TextBlock","text":"Stack channels is FINISHED","wrap":true}],
		"actions":[{"type":"Action.OpenUrl","title":"Open run","url":"` + s.URL + `/api/v1/runs/` + r.ID + `"}]}}]}`
	if err := json.Unmarshal([]byte(wantJSON), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(gotCards[0], &card); err != nil || !reflect.DeepEqual(card, want) {
		t.Errorf("teams card\n got %s\nwant %s (%v)", gotCards[0], wantJSON, err)
	}

	// The email: over TLS, authenticated, to the default recipients.
	msgs := smtpSrv.WaitMessages(t, 1, waitTimeout)
	m := msgs[0]
	if len(msgs) != 1 || !m.Secure || m.User != smtpUser || m.From != "gantry@example.com" ||
		strings.Join(m.To, ",") != "ops@example.com,dev@example.com" {
		t.Fatalf("messages %+v", msgs)
	}
	pm, err := mail.ReadMessage(strings.NewReader(m.Raw))
	if err != nil {
		t.Fatalf("the email does not parse: %v\n%s", err, m.Raw)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject"))
	body, _ := io.ReadAll(quotedprintable.NewReader(pm.Body))
	wantBody := "Run " + r.ID + " finished.\r\n" + s.URL + "/api/v1/runs/" + r.ID + "\r\n"
	if subject != "[gantry] channels finished ✓" || string(body) != wantBody || pm.Header.Get("Message-ID") != "<"+ed.ID+"@example.com>" ||
		pm.Header.Get("X-Gantry-Event") != "run_updated:FINISHED" {
		t.Errorf("email subject %q body %q\n%s", subject, body, m.Raw)
	}
	for _, ev := range plainSrv.Events() {
		t.Errorf("the server without STARTTLS got %+v", ev)
	}

	// No secret in the API's answers or the server's log.
	var texts []string
	for _, args := range [][]string{{"webhook", "list"}, {"webhook", "show", "--id", "ops-mail"}, {"webhook", "show", "--id", "ops-teams"},
		{"notification", "deliveries", "--run", r.ID}} {
		texts = append(texts, s.MustGantry(t, withJSON(args)...))
	}
	var events json.RawMessage
	s.getJSON(t, "/api/v1/audit/events?limit=1000", &events)
	texts = append(texts, string(events), s.Log())
	all := strings.Join(texts, "\n")
	for _, secret := range []string{smtpPass, teamsToken} {
		if strings.Contains(all, secret) {
			t.Errorf("%q appears in an API answer or the server log", secret)
		}
	}
	if !strings.Contains(string(events), "webhook.create") {
		t.Errorf("the audit trail lacks the endpoints' creation")
	}
}

// --notification-deny-cidrs keeps deliveries away from the ranges it names
// (here loopback, where the receiver listens): the delivery fails at once,
// naming the address, and the receiver gets nothing.
func TestNotificationDenyCIDRs(t *testing.T) {
	t.Parallel()
	requireSetup(t)
	var hits sync.Map
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Store(r.URL.Path, true) }))
	defer recv.Close()
	s := StartServer(t, ServerConfig{Args: []string{"--notification-deny-cidrs", "127.0.0.0/8,::1/128"}})
	s.MustGantry(t, "webhook", "create", "--id", "local", "--webhook-url", recv.URL+"/hook")
	s.createPolicy(t, "on-finish", "NOTIFICATION", `package spacelift

webhook contains {"endpoint_id": "local"} if input.run_updated.state == "FINISHED"
`)
	repo := NewRepo(t, map[string]string{"main.tf": staticConfig("v1")})
	s.CreateStack(t, "denied", repo.URL, "--autodeploy")
	r := s.WaitRun(t, s.Deploy(t, "denied").ID, "FINISHED")
	var ds []apiv1.Delivery
	if !poll(waitTimeout, 300*time.Millisecond, func() bool {
		s.MustJSON(t, &ds, "notification", "deliveries", "--run", r.ID)
		return len(ds) == 1 && ds[0].Status == "FAILED"
	}) {
		t.Fatalf("deliveries: %+v", ds)
	}
	if !strings.Contains(ds[0].Error, "127.0.0.1") || !strings.Contains(ds[0].Error, "not allowed") || len(ds[0].Attempts) != 1 {
		t.Fatalf("delivery to a denied range: %+v", ds[0])
	}
	if _, ok := hits.Load("/hook"); ok {
		t.Fatal("the receiver in a denied range got the delivery")
	}
}
