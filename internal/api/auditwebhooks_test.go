package api_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/audit"
	"github.com/gantry-iac/gantry/internal/secrets"
)

const (
	auditHookSecret = "audit-hook-secret-1234"
	auditHookToken  = "Bearer siem-token-5678"
)

func TestAuditWebhooksAPI(t *testing.T) {
	e := newAuditEnv(t)
	box, err := secrets.NewBox(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	fwdLogs := &lockedBuffer{}
	f := audit.NewForwarder(e.audit, box, slog.New(slog.NewTextHandler(fwdLogs, nil)))
	f.PollInterval = 10 * time.Millisecond

	var mu sync.Mutex
	bodies := map[int64][]byte{}
	var order []int64
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(auditHookSecret))
		m.Write(body)
		if r.Header.Get("X-Signature-256") != "sha256="+hex.EncodeToString(m.Sum(nil)) || r.Header.Get("Authorization") != auditHookToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev apiv1.AuditEvent
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		bodies[ev.Seq], order = body, append(order, ev.Seq)
		mu.Unlock()
	}))
	t.Cleanup(rc.Close)

	e.createStack("web", nil) // event 1, before the webhook: not sent
	var hook apiv1.AuditWebhook
	e.must(e.do("POST", "/api/v1/audit/webhooks", map[string]any{"id": "siem", "url": rc.URL, "secret": auditHookSecret,
		"headers": map[string]string{"Authorization": auditHookToken}}), http.StatusCreated, &hook)
	if hook.ID != "siem" || !hook.HasSecret || hook.Headers["Authorization"] != secrets.Mask || hook.DeliveredSeq != 1 {
		t.Errorf("created %+v", hook)
	}
	wantError(t, e.do("POST", "/api/v1/audit/webhooks", map[string]any{"id": "siem", "url": rc.URL}), http.StatusConflict, "conflict")
	wantError(t, e.do("POST", "/api/v1/audit/webhooks", map[string]any{"id": "x", "url": rc.URL, "bogus": 1}), http.StatusBadRequest, "invalid")
	wantError(t, e.do("DELETE", "/api/v1/audit/webhooks/nope", nil), http.StatusNotFound, "not_found")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.createStack("api", nil)
	var head int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ds apiv1.List[apiv1.AuditDelivery]
		e.must(e.do("GET", "/api/v1/audit/deliveries", nil), http.StatusOK, &ds)
		if len(ds.Items) != 1 {
			t.Fatalf("deliveries %+v", ds)
		}
		if d := ds.Items[0]; d.Lag == 0 && d.DeliveredSeq > 1 {
			if d.Webhook != "siem" || d.Attempts != 0 || d.Flagged || d.LastError != "" || d.LastDeliveredAt == nil {
				t.Errorf("delivery %+v", d)
			}
			head = d.HeadSeq
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v (logs %s)", ds, fwdLogs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if want := seqs(2, head); !reflect.DeepEqual(order, want) {
		t.Errorf("received %v, want %v", order, want)
	}
	got := bodies[2]
	mu.Unlock()
	// The body is the event as the API lists it.
	var page apiv1.List[apiv1.AuditEvent]
	e.must(e.do("GET", "/api/v1/audit/events?limit=1000", nil), http.StatusOK, &page)
	var listed []byte
	for _, ev := range page.Items {
		if ev.Seq == 2 {
			listed, _ = json.Marshal(ev)
		}
	}
	var a, b map[string]any
	_ = json.Unmarshal(got, &a)
	_ = json.Unmarshal(listed, &b)
	if !reflect.DeepEqual(a, b) || a["action"] != "audit_webhook.create" || a["hash"] == "" {
		t.Errorf("forwarded %s\nlisted %s", got, listed)
	}

	list := e.do("GET", "/api/v1/audit/webhooks", nil)
	e.must(list, http.StatusOK, nil)
	for _, r := range [][]byte{list.body, []byte(e.logs.String()), []byte(fwdLogs.String())} {
		if bytes.Contains(r, []byte(auditHookSecret)) || bytes.Contains(r, []byte("siem-token-5678")) {
			t.Errorf("a secret leaked: %s", r)
		}
	}
	e.must(e.do("DELETE", "/api/v1/audit/webhooks/siem", nil), http.StatusNoContent, nil)
	var actions []string
	for _, ev := range e.events() {
		if strings.HasPrefix(ev.Action, "audit_webhook.") {
			actions = append(actions, ev.Action+":"+ev.SubjectID+":"+ev.Outcome)
		}
	}
	want := []string{"audit_webhook.create:siem:success", "audit_webhook.create::failed", "audit_webhook.create::failed",
		"audit_webhook.delete:nope:failed", "audit_webhook.delete:siem:success"}
	if !reflect.DeepEqual(actions, want) {
		t.Errorf("audited %v, want %v", actions, want)
	}
}

func seqs(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}
