package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/notify/smtptest"
)

// notifyServer is the real API with notifications and a running
// dispatcher; it returns the CLI flags and the notify service.
func notifyServer(t *testing.T) ([]string, *notify.Service) {
	t.Helper()
	ta := newTestAPI(t)
	n := notify.NewService(ta.D, ta.Box, ta.Log)
	n.BackoffBase, n.PollInterval = 5*time.Millisecond, 20*time.Millisecond
	ta.API.Notify = n
	flags := ta.serve(nil)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return flags, n
}

func TestWebhookCommands(t *testing.T) {
	isolate(t)
	conn, n := notifyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	t.Cleanup(recv.Close)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("file-secret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := cli("webhook", "create", "--id", "ops", "--webhook-url", recv.URL, "--secret-file", secretFile,
		"--header", "Authorization=Bearer header-token-value", "--label", "team", "--retries", "2")
	if code != 0 || !strings.Contains(out, "Secret:") || !strings.Contains(out, "set (write-only)") ||
		!strings.Contains(out, "Authorization=*****") || strings.Contains(out, "header-token-value") {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = cli("webhook", "create", "--id", "chat", "--slack", "--webhook-url", "https://hooks.slack.com/services/T/B/slack-url-token")
	if code != 0 || strings.Contains(out, "slack-url-token") || !strings.Contains(out, "slack") {
		t.Errorf("create slack: exit %d\n%s", code, out)
	}
	code, _, errOut = cli("webhook", "create", "--id", "bad", "--webhook-url", "ftp://example.com")
	if code != 1 || !strings.Contains(errOut, "http or https") {
		t.Errorf("bad url: exit %d %s", code, errOut)
	}
	if code, _, _ = cli("webhook", "create", "--id", "x", "--webhook-url", recv.URL, "--secret", "a", "--secret-file", secretFile); code != 2 {
		t.Errorf("--secret with --secret-file: exit %d, want 2", code)
	}
	if code, _, errOut = cli("webhook", "update", "--id", "ops"); code != 2 || !strings.Contains(errOut, "nothing to update") {
		t.Errorf("empty update: exit %d %s", code, errOut)
	}

	code, out, _ = cli("webhook", "list", "-o", "json")
	var list []apiv1.Webhook
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || len(list) != 2 || list[1].ID != "ops" || list[1].Retries != 2 {
		t.Fatalf("list: exit %d %v\n%s", code, err, out)
	}
	code, out, _ = cli("webhook", "update", "--id", "chat", "--enabled=false", "-o", "json")
	var up apiv1.Webhook
	if err := json.Unmarshal([]byte(out), &up); code != 0 || err != nil || up.Enabled {
		t.Errorf("update: exit %d %v %s", code, err, out)
	}
	if code, out, _ = cli("webhook", "show", "--id", "ops"); code != 0 || !strings.Contains(out, "team") {
		t.Errorf("show: exit %d %s", code, out)
	}

	if err := n.Enqueue(context.Background(), []notify.Message{
		{Kind: notify.KindWebhook, EndpointID: "ops", SpaceID: "root", RunID: "run-1", Event: "run_updated:FAILED"},
		{Kind: notify.KindWebhook, EndpointID: "gone", SpaceID: "root", RunID: "run-1"},
		{Kind: notify.KindInbox, SpaceID: "root", RunID: "run-1", Title: "Run failed", Severity: "ERROR"},
	}); err != nil {
		t.Fatal(err)
	}
	n.Wake()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, _ = cli("notification", "deliveries", "--run", "run-1", "--status", "DELIVERED")
		if code == 0 && strings.Contains(out, "ops") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery: exit %d\n%s", code, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, _ = cli("notification", "deliveries", "--endpoint", "gone")
	if code != 0 || !strings.Contains(out, "FAILED") || !strings.Contains(out, `endpoint "gone" does not exist`) {
		t.Errorf("failed delivery: exit %d\n%s", code, out)
	}
	code, out, _ = cli("notification", "list", "--run", "run-1", "-o", "json")
	var inbox []apiv1.Notification
	if err := json.Unmarshal([]byte(out), &inbox); code != 0 || err != nil || len(inbox) != 1 || inbox[0].Severity != "ERROR" {
		t.Fatalf("notification list: exit %d %v %s", code, err, out)
	}
	if code, out, _ = cli("notification", "read", "--id", inbox[0].ID); code != 0 || !strings.Contains(out, "true") {
		t.Errorf("read: exit %d %s", code, out)
	}
	if code, out, _ = cli("webhook", "delete", "--id", "ops"); code != 0 || !strings.Contains(out, `Deleted webhook "ops"`) {
		t.Errorf("delete: exit %d %s", code, out)
	}
	if code, _, errOut = cli("webhook", "show", "--id", "ops"); code != 1 || !strings.Contains(errOut, "not_found") {
		t.Errorf("show deleted: exit %d %s", code, errOut)
	}
}

func TestWebhookTeamsAndEmailCommands(t *testing.T) {
	isolate(t)
	conn, n := notifyServer(t)
	cli := func(args ...string) (int, string, string) { return runMain(append(args, conn...)...) }
	srv := smtptest.Start(t, smtptest.Options{Username: "mailer", Password: "cli-smtp-password"})
	dir := t.TempDir()
	passFile, wrongFile := filepath.Join(dir, "password"), filepath.Join(dir, "wrong")
	for f, v := range map[string]string{passFile: "cli-smtp-password\n", wrongFile: "not-the-password\n"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := cli("webhook", "create", "--id", "ops-teams", "--teams", "--webhook-url", "https://example.webhook.office.com/webhookb2/teams-cli-token")
	if code != 0 || strings.Contains(out, "teams-cli-token") || !strings.Contains(out, "teams") {
		t.Errorf("create teams: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli("webhook", "create", "--id", "ops-mail", "--smtp-host", srv.Host, "--smtp-port", fmt.Sprint(srv.Port),
		"--smtp-username", "mailer", "--smtp-password-file", wrongFile, "--smtp-ca-file", srv.CAFile,
		"--from", "Gantry <gantry@example.com>", "--to", "ops@example.com", "--to", "dev@example.com", "--retries", "0")
	if code != 0 || strings.Contains(out, "not-the-password") {
		t.Fatalf("create email: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"email", "SMTP host:", srv.Host, "starttls", "SMTP password:", "set (write-only)", "SMTP CA:",
		"ops@example.com,dev@example.com", "smtp://" + srv.Addr()} {
		if !strings.Contains(out, want) {
			t.Errorf("create email output lacks %q:\n%s", want, out)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"webhook", "create", "--id", "x"}, 2, "webhook-url"},
		{[]string{"webhook", "create", "--id", "x", "--slack", "--smtp-host", "h.example"}, 2, "--smtp-host is for email endpoints"},
		{[]string{"webhook", "create", "--id", "x", "--email", "--webhook-url", "https://e.com"}, 2, "no --webhook-url"},
		{[]string{"webhook", "create", "--id", "x", "--email", "--from", "g@example.com"}, 2, "needs --smtp-host and --from"},
		{[]string{"webhook", "create", "--id", "x", "--smtp-host", "smtp.example.com", "--from", "g@example.com", "--tls", "none"}, 1, "loopback"},
		{[]string{"webhook", "create", "--id", "x", "--teams", "--slack", "--webhook-url", "https://e.com"}, 2, "--slack and --teams cannot be combined"},
		{[]string{"webhook", "update", "--id", "ops-teams", "--smtp-port", "25"}, 1, "email endpoints only"},
	} {
		if code, out, errOut := cli(tc.args...); code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}

	send := func(run string) {
		t.Helper()
		if err := n.Enqueue(context.Background(), []notify.Message{{Kind: notify.KindEmail, EndpointID: "ops-mail", SpaceID: "root",
			RunID: run, Event: "run_updated:FINISHED", Subject: "Run " + run, Body: "done"}}); err != nil {
			t.Fatal(err)
		}
		n.Wake()
	}
	waitStatus := func(run, status string) apiv1.Delivery {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, out, _ := cli("notification", "deliveries", "--run", run, "-o", "json")
			var ds []apiv1.Delivery
			if code == 0 && json.Unmarshal([]byte(out), &ds) == nil && len(ds) == 1 && ds[0].Status == status {
				return ds[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("delivery of %s not %s: exit %d\n%s", run, status, code, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The wrong password fails at once (535), then the right one delivers.
	send("run-wrong")
	if d := waitStatus("run-wrong", "FAILED"); len(d.Attempts) != 1 || !strings.Contains(d.Error, "535") {
		t.Errorf("wrong password: %+v", d)
	}
	code, out, errOut = cli("webhook", "update", "--id", "ops-mail", "--smtp-password-file", passFile, "--to", "oncall@example.com", "-o", "json")
	var up apiv1.Webhook
	if err := json.Unmarshal([]byte(out), &up); code != 0 || err != nil || up.Email == nil || !up.Email.HasSMTPPassword ||
		len(up.Email.To) != 1 || up.Email.To[0] != "oncall@example.com" || up.Email.SMTPPort != srv.Port {
		t.Fatalf("update: exit %d %v\n%s%s", code, err, out, errOut)
	}
	send("run-ok")
	if d := waitStatus("run-ok", "DELIVERED"); len(d.Attempts) != 1 || d.Attempts[0].Error != "" || d.Method != "SMTP" {
		t.Errorf("delivered: %+v", d)
	}
	msgs := srv.WaitMessages(t, 1, 10*time.Second)
	if m := msgs[0]; !m.Secure || m.User != "mailer" || strings.Join(m.To, ",") != "oncall@example.com" || !strings.Contains(m.Raw, "Subject: Run run-ok") {
		t.Errorf("message %+v", m)
	}
	code, out, _ = cli("notification", "deliveries", "--endpoint", "ops-mail")
	if code != 0 || !strings.Contains(out, "DELIVERED") || !strings.Contains(out, "FAILED") {
		t.Errorf("deliveries table: exit %d\n%s", code, out)
	}
	code, out, _ = cli("webhook", "list")
	if code != 0 || !strings.Contains(out, "smtp://"+srv.Addr()) || strings.Contains(out, "teams-cli-token") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
}
