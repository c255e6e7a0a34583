package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// TestAuditNamesWhatWasTouched: an attachment's event says which stack (and
// its space), refused attempts included, and an audit webhook's creation
// says its URL and header names, never a header value or the secret.
func TestAuditNamesWhatWasTouched(t *testing.T) {
	e := newRBACEnv(t)
	f, other := e.fixture(1), e.fixture(2)
	events := func(action string) []apiv1.AuditEvent {
		var l apiv1.List[apiv1.AuditEvent]
		e.must(e.do("GET", "/api/v1/audit/events?action="+action, nil), http.StatusOK, &l)
		return l.Items
	}
	stackOf := func(ev apiv1.AuditEvent) string {
		var c struct {
			After   struct{ Stack string } `json:"after"`
			Request struct{ Stack string } `json:"request"`
			Path    struct{ Stack string } `json:"path"`
		}
		_ = json.Unmarshal(ev.Change, &c)
		return c.After.Stack + c.Request.Stack + c.Path.Stack
	}
	updater := e.actor("updater", f.space, []string{auth.StackUpdate, auth.SpaceRead})
	for _, kind := range []struct {
		route, subject, action string
		status                 int
	}{
		{"/api/v1/policies/", f.policy, "policy.attach", http.StatusCreated},
		{"/api/v1/contexts/", f.context, "context.attach", http.StatusOK},
	} {
		e.must(e.as(updater, "POST", kind.route+kind.subject+"/attachments", map[string]any{"stack": f.stack}), kind.status, nil)
		// The stack of another space: hidden, answered as missing.
		if r := e.as(updater, "POST", kind.route+kind.subject+"/attachments", map[string]any{"stack": other.stack}); r.status != http.StatusNotFound {
			t.Errorf("%s to a hidden stack: %s", kind.action, r)
		}
		if r := e.as(updater, "POST", kind.route+kind.subject+"/attachments", map[string]any{"stack": "no-such-stack"}); r.status != http.StatusNotFound {
			t.Errorf("%s to a missing stack: %s", kind.action, r)
		}
		got := map[string]apiv1.AuditEvent{}
		for _, ev := range events(kind.action) {
			got[ev.Outcome+":"+stackOf(ev)] = ev
		}
		for key, sp := range map[string]string{"success:" + f.stack: f.space, "failed:" + other.stack: other.space, "failed:no-such-stack": ""} {
			ev, ok := got[key]
			if !ok {
				t.Errorf("%s: no event %s in %+v", kind.action, key, got)
				continue
			}
			if ev.Space != sp || ev.SubjectID != kind.subject {
				t.Errorf("%s %s: space %q subject %q, want %q %q", kind.action, key, ev.Space, ev.SubjectID, sp, kind.subject)
			}
		}
	}
	// Detaching names the stack in its path, and the stack's space.
	e.must(e.as(updater, "DELETE", "/api/v1/policies/"+f.policy+"/attachments/"+f.stack, nil), http.StatusNoContent, nil)
	if evs := events("policy.detach"); len(evs) != 1 || stackOf(evs[0]) != f.stack || evs[0].Space != f.space {
		t.Errorf("policy.detach events: %+v", evs)
	}

	e.must(e.do("POST", "/api/v1/audit/webhooks", map[string]any{"id": "siem", "url": "http://127.0.0.1:9/siem?tenant=t1",
		"secret": "hook-secret-value", "headers": map[string]string{"Authorization": "Bearer header-value-secret"}}), http.StatusCreated, nil)
	var created []apiv1.AuditEvent
	for _, ev := range events("audit_webhook.create") {
		if ev.SubjectID == "siem" {
			created = append(created, ev)
		}
	}
	if len(created) != 1 {
		t.Fatalf("audit_webhook.create events of siem: %+v", created)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, created[0].Change); err != nil {
		t.Fatal(err)
	}
	c := buf.String()
	if !strings.Contains(c, `"url":"http://127.0.0.1:9/siem?tenant=t1"`) || !strings.Contains(c, `"headers":["Authorization"]`) ||
		strings.Contains(c, "header-value-secret") || strings.Contains(c, "hook-secret-value") || created[0].Space != "root" {
		t.Errorf("audit_webhook.create: space %q change %s", created[0].Space, c)
	}
}
