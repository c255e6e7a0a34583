package notify

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/db/dbtest"
	"github.com/gantry-iac/gantry/internal/notify/smtptest"
)

const (
	smtpUser     = "gantry-mailer"
	smtpPassword = "smtp-pass-Zq8w3"
)

// TestEmailDelivery sends through a real SMTP server (the npm package
// smtp-server) that offers STARTTLS with a self-signed certificate and
// requires AUTH PLAIN, and through one that offers no STARTTLS.
func TestEmailDelivery(t *testing.T) {
	tlsSrv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPassword})
	plainSrv := smtptest.Start(t, smtptest.Options{Username: smtpUser, Password: smtpPassword, NoSTARTTLS: true})
	n := 0
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, logs := newTestService(t, d)
		settings := func(srv *smtptest.Server) EmailSettings {
			return EmailSettings{Host: srv.Host, Port: srv.Port, Username: smtpUser, Password: smtpPassword, CAPEM: srv.CAPEM,
				From: "Gantry <gantry@example.com>", To: []string{"ops@example.com", "Dev <dev@example.com>"}}
		}
		mustCreate(t, s, Endpoint{ID: "mail", Kind: KindEmail, Enabled: true, Retries: 1, Email: settings(tlsSrv)})
		noCA := settings(tlsSrv)
		noCA.CAPEM = ""
		mustCreate(t, s, Endpoint{ID: "mail-no-ca", Kind: KindEmail, Enabled: true, Email: noCA})
		wrong := settings(tlsSrv)
		wrong.Password = "wrong-password-value"
		mustCreate(t, s, Endpoint{ID: "mail-wrong-password", Kind: KindEmail, Enabled: true, Retries: 3, Email: wrong})
		mustCreate(t, s, Endpoint{ID: "mail-no-starttls", Kind: KindEmail, Enabled: true, Retries: 3, Email: settings(plainSrv)})
		mustCreate(t, s, Endpoint{ID: "mail-plain-local", Kind: KindEmail, Enabled: true, Email: EmailSettings{
			Host: "localhost", Port: plainSrv.Port, TLS: TLSNone, From: "gantry@example.com", To: []string{"local@example.com"}}})
		start(t, s)
		before := len(tlsSrv.Messages())
		mustEnqueue(t, s,
			Message{Kind: KindEmail, EndpointID: "mail", SpaceID: "root", RunID: "run-ok", Event: "run_updated:FINISHED",
				Subject: "Run run-ok FINISHED ✓", Body: "Stack web deployed.\n.\nBye"},
			Message{Kind: KindEmail, EndpointID: "mail", SpaceID: "root", RunID: "run-override", Subject: "override",
				Body: "b", To: []string{"oncall@example.com"}},
			Message{Kind: KindEmail, EndpointID: "mail", SpaceID: "root", RunID: "run-temp", Subject: "s",
				To: []string{"temp-fail@example.com"}},
			Message{Kind: KindEmail, EndpointID: "mail", SpaceID: "root", RunID: "run-perm", Subject: "s",
				To: []string{"perm-fail@example.com"}},
			Message{Kind: KindEmail, EndpointID: "mail-no-ca", SpaceID: "root", RunID: "run-no-ca", Subject: "s"},
			Message{Kind: KindEmail, EndpointID: "mail-wrong-password", SpaceID: "root", RunID: "run-wrong-password", Subject: "s"},
			Message{Kind: KindEmail, EndpointID: "mail-no-starttls", SpaceID: "root", RunID: "run-no-starttls", Subject: "s"},
			Message{Kind: KindEmail, EndpointID: "mail-plain-local", SpaceID: "root", RunID: "run-plain", Subject: "plain", Body: "local relay"},
		)
		ok := waitDelivery(t, s, "run-ok")
		if ok.Status != StatusDelivered || len(ok.Attempts) != 1 || ok.Attempts[0].Error != "" || ok.Method != "SMTP" {
			t.Fatalf("delivery %+v", ok)
		}
		if got := waitDelivery(t, s, "run-override"); got.Status != StatusDelivered {
			t.Errorf("override: %+v", got)
		}
		n += 2
		msgs := tlsSrv.WaitMessages(t, before+2, 20*time.Second)[before:]
		byTo := map[string]smtptest.Event{}
		for _, m := range msgs {
			byTo[strings.Join(m.To, ",")] = m
			if !m.Secure || m.User != smtpUser || m.From != "gantry@example.com" {
				t.Errorf("message not sent over TLS by the authenticated user: %+v", m)
			}
		}
		m, found := byTo["ops@example.com,dev@example.com"]
		if !found {
			t.Fatalf("no message to the default recipients: %+v", msgs)
		}
		pm, err := mail.ReadMessage(strings.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("the message does not parse: %v\n%s", err, m.Raw)
		}
		subject, _ := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject"))
		body, _ := io.ReadAll(quotedprintable.NewReader(pm.Body))
		if subject != "Run run-ok FINISHED ✓" || string(body) != "Stack web deployed.\r\n.\r\nBye\r\n" ||
			pm.Header.Get("Message-ID") != "<"+ok.ID+"@example.com>" || pm.Header.Get(HeaderDelivery) != ok.ID ||
			pm.Header.Get(HeaderEvent) != "run_updated:FINISHED" || pm.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("message:\n%s", m.Raw)
		}
		if _, found := byTo["oncall@example.com"]; !found {
			t.Errorf("the rule's recipients were not used: %+v", msgs)
		}

		for run, want := range map[string]struct {
			status   string
			attempts int
			err      string
		}{
			"run-temp":           {StatusFailed, 2, "RCPT TO <temp-fail@example.com>: SMTP 451"},
			"run-perm":           {StatusFailed, 1, "RCPT TO <perm-fail@example.com>: SMTP 550"},
			"run-no-ca":          {StatusFailed, 1, "certificate"},
			"run-wrong-password": {StatusFailed, 1, "AUTH PLAIN: SMTP 535"},
			"run-no-starttls":    {StatusFailed, 1, "does not offer STARTTLS"},
			"run-plain":          {StatusDelivered, 1, ""},
		} {
			got := waitDelivery(t, s, run)
			if got.Status != want.status || len(got.Attempts) != want.attempts || !strings.Contains(got.Error, want.err) {
				t.Errorf("%s: %s after %d attempts (%q), want %s after %d with %q", run, got.Status, len(got.Attempts), got.Error,
					want.status, want.attempts, want.err)
			}
		}
		// Nothing went out in plain text to the server without STARTTLS
		// but the loopback relay's message, which has no credentials.
		for _, ev := range plainSrv.Events() {
			if ev.Event == "auth" || ev.Event == "message" && strings.Join(ev.To, ",") != "local@example.com" {
				t.Errorf("the server without STARTTLS got %+v", ev)
			}
		}
		ds, _, err := s.ListDeliveries(context.Background(), DeliveryFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var texts bytes.Buffer
		for _, d := range ds {
			texts.WriteString(d.Error + d.Body)
			for _, a := range d.Attempts {
				texts.WriteString(a.Error)
			}
		}
		texts.WriteString(logs.String())
		for _, secret := range []string{smtpPassword, "wrong-password-value"} {
			if strings.Contains(texts.String(), secret) {
				t.Errorf("the SMTP password %q leaked:\n%s", secret, texts.String())
			}
		}
	})
}

// TestEmailDeniedAddress: the SMTP host's resolved address goes through
// the deny list, and tls none only reaches loopback addresses.
func TestEmailDeniedAddress(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		s, _ := newTestService(t, d)
		s.DenyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		mustCreate(t, s, Endpoint{ID: "meta", Kind: KindEmail, Enabled: true, Retries: 3, Email: EmailSettings{
			Host: "169.254.169.254", Port: 25, From: "g@example.com", To: []string{"o@example.com"}}})
		mustCreate(t, s, Endpoint{ID: "local", Kind: KindEmail, Enabled: true, Retries: 3, Email: EmailSettings{
			Host: "localhost", Port: 2525, TLS: TLSNone, From: "g@example.com", To: []string{"o@example.com"}}})
		start(t, s)
		mustEnqueue(t, s,
			Message{Kind: KindEmail, EndpointID: "meta", SpaceID: "root", RunID: "run-meta", Subject: "s"},
			Message{Kind: KindEmail, EndpointID: "local", SpaceID: "root", RunID: "run-local", Subject: "s"})
		for run, want := range map[string]string{
			"run-meta":  "connecting to 169.254.169.254 is not allowed",
			"run-local": "is not allowed: it is in the denied range 127.0.0.0/8",
		} {
			if got := waitDelivery(t, s, run); got.Status != StatusFailed || len(got.Attempts) != 1 || !strings.Contains(got.Error, want) {
				t.Errorf("%s: %s after %d attempts: %q, want FAILED at once with %q", run, got.Status, len(got.Attempts), got.Error, want)
			}
		}
	})
	// tls none: a non-loopback resolved address is refused by the dialer.
	ctrl := controlSMTPDial(nil, true)
	for addr, ok := range map[string]bool{"127.0.0.1:25": true, "[::1]:25": true, "10.0.0.1:25": false, "[::ffff:127.0.0.1]:25": true} {
		err := ctrl("tcp", addr, nil)
		if (err == nil) != ok {
			t.Errorf("tls none to %s: %v", addr, err)
		}
		if err != nil && !classify("connecting", err).final {
			t.Errorf("tls none to %s is retried: %v", addr, err)
		}
	}
}
