package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/notify"
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
