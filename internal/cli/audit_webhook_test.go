package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/auth"
	"github.com/gantry-iac/gantry/internal/db"
	"github.com/gantry-iac/gantry/internal/httpx"
	"github.com/gantry-iac/gantry/internal/notify"
	"github.com/gantry-iac/gantry/internal/secrets"
	spacepkg "github.com/gantry-iac/gantry/internal/space"
)

func TestAuditWebhookCommands(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	d, err := db.Open(ctx, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	spaces := spacepkg.NewService(d)
	if err := spaces.EnsureRoot(ctx); err != nil {
		t.Fatal(err)
	}
	keys := auth.NewKeys(d)
	token, err := keys.Create(ctx, "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.NewBox(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	svc := audit.NewService(d, nil)
	fwd := audit.NewForwarder(svc, box, nil)
	fwd.PollInterval = 10 * time.Millisecond
	a := &api.API{Spaces: spaces, Keys: keys, Log: slog.New(slog.DiscardHandler), Audit: svc}
	mux := http.NewServeMux()
	a.Routes(mux)
	srv := httptest.NewServer(httpx.WithRequestID(a.Audited(mux)))
	t.Cleanup(srv.Close)

	const secret, hdr = "cli-audit-secret-42", "Bearer cli-siem-token"
	var mu sync.Mutex
	var got []int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Signature-256") != notify.Sign(secret, body) || r.Header.Get("Authorization") != hdr {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		var ev apiv1.AuditEvent
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got = append(got, ev.Seq)
		mu.Unlock()
	}))
	t.Cleanup(rc.Close)

	gantry := func(args ...string) (int, string, string) {
		return runMain(append(args, "--url", srv.URL, "--token", token)...)
	}
	code, out, errOut := gantry("space", "create", "--id", "dev", "--name", "dev") // event 1
	wantRun(t, code, out, errOut, 0)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = gantry("audit", "webhook", "create", "--id", "siem", "--webhook-url", rc.URL,
		"--secret-file", secretFile, "--header", "Authorization="+hdr, "--from-seq", "1")
	wantRun(t, code, out, errOut, 0, "siem", "set (write-only)", "Authorization="+secrets.Mask, "starts at event 1")
	code, out, errOut = gantry("audit", "webhook", "create", "--id", "later", "--webhook-url", rc.URL+"/later")
	wantRun(t, code, out, errOut, 0, "after event 2, the current head")
	code, out, errOut = gantry("audit", "webhook", "list")
	wantRun(t, code, out, errOut, 0, "ID", "siem", "later", rc.URL)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fwd.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	var ds []apiv1.AuditDelivery
	for {
		code, out, errOut = gantry("audit", "deliveries", "-o", "json")
		wantRun(t, code, out, errOut, 0)
		if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 2 {
			t.Fatalf("deliveries %s: %v", out, err)
		}
		if ds[1].Webhook == "siem" && ds[1].Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if len(got) < 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("received %v, want 1, 2, 3...", got)
	}
	mu.Unlock()
	code, out, errOut = gantry("audit", "deliveries")
	wantRun(t, code, out, errOut, 0, "WEBHOOK", "LAG", "siem", "later")
	code, out, errOut = gantry("audit", "webhook", "delete", "--id", "later")
	wantRun(t, code, out, errOut, 0, "later deleted")
	code, out, errOut = gantry("audit", "webhook", "list", "-o", "json")
	wantRun(t, code, out, errOut, 0)
	if strings.Contains(out, secret) || strings.Contains(out, "cli-siem-token") || strings.Contains(out, `"later"`) {
		t.Errorf("list after delete: %s", out)
	}
}
