package notify

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
)

func TestTeamsCardShape(t *testing.T) {
	for _, tc := range []struct {
		name, title, message, runURL, want string
	}{
		{"title and run", "Run failed", "Stack <web> & co failed", "https://gantry.example.com/api/v1/runs/run-1",
			`{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,` +
				`"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"1.4",` +
				`"body":[{"type":"TextBlock","text":"Run failed","weight":"Bolder","size":"Medium","wrap":true},` +
				`{"type":"TextBlock","text":"Stack <web> & co failed","wrap":true}],` +
				`"actions":[{"type":"Action.OpenUrl","title":"Open run","url":"https://gantry.example.com/api/v1/runs/run-1"}]}}]}`},
		{"no title, no run URL", "", "hello", "",
			`{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,` +
				`"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"1.4",` +
				`"body":[{"type":"TextBlock","text":"hello","wrap":true}]}}]}`},
		{"relative run URL is no link", "  ", "hello", "/api/v1/runs/run-1",
			`{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,` +
				`"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"1.4",` +
				`"body":[{"type":"TextBlock","text":"hello","wrap":true}]}}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := teamsCardJSON(tc.title, tc.message, tc.runURL)
			if string(got) != tc.want {
				t.Fatalf("card\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatal("not JSON")
			}
		})
	}
}

func TestTeamsMessageBody(t *testing.T) {
	if _, reason := messageBody(Message{Kind: KindTeams, Title: "only a title"}); reason != "the teams message is empty" {
		t.Errorf("empty teams message: %q", reason)
	}
	body, reason := messageBody(Message{Kind: KindTeams, Text: "m", RunURL: "http://127.0.0.1:8080/api/v1/runs/r"})
	if reason != "" || !strings.Contains(body, `"url":"http://127.0.0.1:8080/api/v1/runs/r"`) {
		t.Errorf("teams body %s (%s)", body, reason)
	}
}

// parseBuilt builds m and reads it back as a mail message, checking every
// line ends with CRLF and is at most 998 bytes.
func parseBuilt(t *testing.T, m outgoingEmail) (*mail.Message, string) {
	t.Helper()
	raw, err := m.build()
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	for i, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\r\n")), []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") || len(line) > 998 {
			t.Fatalf("line %d is not a CRLF line of at most 998 bytes: %q", i, line)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("not a mail message: %v\n%s", err, raw)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg, string(body)
}

func TestEmailBuild(t *testing.T) {
	from, _ := mail.ParseAddress("Gantry <gantry@example.com>")
	to1, _ := mail.ParseAddress("ops@example.com")
	to2, _ := mail.ParseAddress("Zoë Ops <zoe@example.com>")
	date := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	body := "Run run-1 of stack web FINISHED.\n\nÉtat: ✓ — a line that is long enough to be wrapped by quoted-printable encoding, " +
		"which keeps lines under 76 characters\n.leading dot\n"
	msg, got := parseBuilt(t, outgoingEmail{From: from, To: []*mail.Address{to1, to2}, Subject: "Déploiement terminé ✓",
		Body: body, MessageID: "dlv-01ABC@example.com", Date: date, Extra: [][2]string{{HeaderDelivery, "dlv-01ABC"}}})
	h := msg.Header
	for k, want := range map[string]string{
		"MIME-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Message-ID":                "<dlv-01ABC@example.com>",
		HeaderDelivery:              "dlv-01ABC",
		"Date":                      "Sun, 01 Mar 2026 12:30:00 +0000",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if raw := h.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
		t.Errorf("a non-ASCII subject is Q-encoded, got %q", raw)
	}
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(h.Get("Subject")); err != nil || s != "Déploiement terminé ✓" {
		t.Errorf("subject decodes to %q (%v)", s, err)
	}
	if a, err := h.AddressList("From"); err != nil || len(a) != 1 || a[0].Address != "gantry@example.com" || a[0].Name != "Gantry" {
		t.Errorf("From = %v (%v)", a, err)
	}
	if a, err := h.AddressList("To"); err != nil || len(a) != 2 || a[1].Name != "Zoë Ops" || a[1].Address != "zoe@example.com" {
		t.Errorf("To = %v (%v)", a, err)
	}
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if want := strings.ReplaceAll(body, "\n", "\r\n"); got != want {
		t.Errorf("body\n got %q\nwant %q", got, want)
	}

	// ASCII stays plain; a long non-ASCII subject is folded into encoded
	// words of at most 75 bytes.
	msg, _ = parseBuilt(t, outgoingEmail{From: from, To: []*mail.Address{to1}, Subject: "Run FINISHED", Date: date, MessageID: "x@y"})
	if s := msg.Header.Get("Subject"); s != "Run FINISHED" {
		t.Errorf("ASCII subject %q", s)
	}
	long := strings.Repeat("é", 300)
	raw, err := outgoingEmail{From: from, To: []*mail.Address{to1}, Subject: long, Date: date, MessageID: "x@y"}.build()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("?=\r\n =?utf-8?q?")) {
		t.Errorf("a long subject is not folded:\n%s", raw)
	}
	msg, _ = parseBuilt(t, outgoingEmail{From: from, To: []*mail.Address{to1}, Subject: long, Date: date, MessageID: "x@y"})
	if s, err := dec.DecodeHeader(msg.Header.Get("Subject")); err != nil || s != long {
		t.Errorf("long subject decodes to %q (%v)", s, err)
	}
}

func TestEmailHeaderInjectionRefused(t *testing.T) {
	from, _ := mail.ParseAddress("gantry@example.com")
	to, _ := mail.ParseAddress("ops@example.com")
	for _, subject := range []string{"hi\r\nBcc: victim@example.com", "hi\nBcc: victim@example.com", "hi\rX: y"} {
		_, err := outgoingEmail{From: from, To: []*mail.Address{to}, Subject: subject, Date: time.Now(), MessageID: "x@y"}.build()
		if !errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), "header injection") {
			t.Errorf("subject %q: %v", subject, err)
		}
		if _, reason := messageBody(Message{Kind: KindEmail, Subject: subject}); !strings.Contains(reason, "header injection") {
			t.Errorf("messageBody with subject %q: %q", subject, reason)
		}
	}
	_, err := outgoingEmail{From: from, To: []*mail.Address{to}, Subject: "s", Date: time.Now(), MessageID: "x@y",
		Extra: [][2]string{{HeaderEvent, "run_updated:FAILED\r\nBcc: victim@example.com"}}}.build()
	if err == nil || !strings.Contains(err.Error(), "header injection") {
		t.Errorf("an extra header with a line break: %v", err)
	}
	for _, addr := range []string{"ops@example.com\r\nBcc: victim@example.com", "ops@example.com\nBcc: v@example.com",
		"not an address", "a@b.example, c@d.example", ""} {
		if _, err := parseAddress("to", addr); !errs.Is(err, errs.Invalid) {
			t.Errorf("address %q accepted", addr)
		}
		if _, reason := messageBody(Message{Kind: KindEmail, Subject: "s", To: []string{addr}}); reason == "" {
			t.Errorf("messageBody accepted recipient %q", addr)
		}
	}
	if _, reason := emailBody(Message{Kind: KindEmail, Subject: "s"}, nil); !strings.Contains(reason, "no recipients") {
		t.Errorf("no recipients: %q", reason)
	}
	body, reason := emailBody(Message{Kind: KindEmail, Subject: "s", Body: "b"}, []string{"ops@example.com"})
	if reason != "" || body != `{"subject":"s","body":"b","to":["ops@example.com"]}` {
		t.Errorf("default recipients: %s (%s)", body, reason)
	}
}

func TestEmailSettingsValidation(t *testing.T) {
	const ca = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
	ok := EmailSettings{Host: "smtp.example.com", From: "gantry@example.com"}
	for _, tc := range []struct {
		name string
		edit func(*EmailSettings)
		want string // "" for valid
	}{
		{"defaults", func(*EmailSettings) {}, ""},
		{"no host", func(s *EmailSettings) { s.Host = "" }, "needs an SMTP host"},
		{"bad host", func(s *EmailSettings) { s.Host = "smtp example.com" }, "not a host name"},
		{"host with CRLF", func(s *EmailSettings) { s.Host = "a.example\r\nRCPT" }, "not a host name"},
		{"bad tls", func(s *EmailSettings) { s.TLS = "ssl" }, `tls must be "starttls", "tls" or "none"`},
		{"none to a remote host", func(s *EmailSettings) { s.TLS = TLSNone }, "only allowed to a loopback SMTP host"},
		{"none to a private address", func(s *EmailSettings) { s.TLS, s.Host = TLSNone, "10.0.0.5" }, "only allowed to a loopback SMTP host"},
		{"none to localhost", func(s *EmailSettings) { s.TLS, s.Host = TLSNone, "localhost" }, ""},
		{"none to ::1", func(s *EmailSettings) { s.TLS, s.Host = TLSNone, "::1" }, ""},
		{"none with credentials", func(s *EmailSettings) { s.TLS, s.Host, s.Username, s.Password = TLSNone, "127.0.0.1", "u", "p" },
			"only sent over TLS"},
		{"port", func(s *EmailSettings) { s.Port = 70000 }, "port must be from 1 to 65535"},
		{"password without user", func(s *EmailSettings) { s.Password = "p" }, "needs a username"},
		{"user without password", func(s *EmailSettings) { s.Username = "u" }, "needs a password"},
		{"password with CRLF", func(s *EmailSettings) { s.Username, s.Password = "u", "p\r\n" }, "one line"},
		{"bad CA", func(s *EmailSettings) { s.CAPEM = ca }, "no PEM certificate"},
		{"no from", func(s *EmailSettings) { s.From = "" }, "from address is empty"},
		{"bad from", func(s *EmailSettings) { s.From = "gantry" }, "not an email address"},
		{"from injection", func(s *EmailSettings) { s.From = "g@example.com\r\nBcc: v@example.com" }, "header injection"},
		{"bad to", func(s *EmailSettings) { s.To = []string{"ops@example.com", "nope"} }, "not an email address"},
		{"too many to", func(s *EmailSettings) { s.To = make([]string, 51) }, "at most 50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			err := validateEmail(&s)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (!errs.Is(err, errs.Invalid) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want invalid mentioning %q", err, tc.want)
			}
		})
	}
	s := ok
	if err := validateEmail(&s); err != nil || s.Port != DefaultSMTPPort || s.TLS != TLSStartTLS || displaySMTP(s) != "smtp://smtp.example.com:587" {
		t.Errorf("defaults: %+v %v", s, err)
	}
	s = ok
	s.TLS = TLSImplicit
	if err := validateEmail(&s); err != nil || s.Port != DefaultSMTPSPort || displaySMTP(s) != "smtps://smtp.example.com:465" {
		t.Errorf("implicit TLS defaults: %+v %v", s, err)
	}
}
