package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestAuditActionsCoverRoutes: every route that changes something has its
// audit action, and every entry of the table is a registered route, so a
// new route without an action fails here.
func TestAuditActionsCoverRoutes(t *testing.T) {
	registered := map[string]bool{}
	for _, r := range sourceRoutes(t) {
		registered[r.pattern] = true
		method, path, ok := strings.Cut(r.pattern, " ")
		if !ok || strings.HasPrefix(path, "/api/worker/") || strings.HasPrefix(path, "/auth/") {
			continue // the sign-in handlers record their own events
		}
		read := method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
		ra, hasEntry := auditActions[r.pattern]
		if !read && !hasEntry {
			t.Errorf("%s changes something but has no entry in auditActions", r.pattern)
		}
		if !hasEntry {
			continue
		}
		if !actionRE.MatchString(ra.action) || ra.subject == "" {
			t.Errorf("%s: action %q, subject %q", r.pattern, ra.action, ra.subject)
		}
		if ra.idFrom != fromResponse && !strings.Contains(path, "{"+ra.idFrom+"}") && ra.subject != "audit" {
			t.Errorf("%s: the subject id is read from {%s}, which the pattern lacks", r.pattern, ra.idFrom)
		}
		if ra.idFrom == fromResponse && method != http.MethodPost {
			t.Errorf("%s: only a POST creates, so only a POST takes its subject id from the answer", r.pattern)
		}
	}
	for pattern := range auditActions {
		if !registered[pattern] {
			t.Errorf("auditActions has %s, which is no route", pattern)
		}
	}
}

func TestAuditedRoute(t *testing.T) {
	tests := []struct {
		method, pattern string
		action          string
		audited         bool
	}{
		{"POST", "POST /api/v1/stacks/{id}/runs", "run.trigger", true},
		{"DELETE", "DELETE /api/v1/policies/{id}", "policy.delete", true},
		{"GET", "GET /api/v1/stacks", "", false},
		{"HEAD", "GET /api/v1/stacks/{id}/tfstate", "state.download", true},
		{"POST", "/api/v1/", "", false},
		{"POST", "", "", false},
		{"POST", "POST /api/v1/widgets/{id}", "widget.post", true}, // not in the table
	}
	for _, tt := range tests {
		ra, ok := auditedRoute(tt.method, tt.pattern)
		if ok != tt.audited || ra.action != tt.action {
			t.Errorf("auditedRoute(%s, %q) = %+v, %v", tt.method, tt.pattern, ra, ok)
		}
	}
	for _, tt := range []struct {
		method, pattern, action, subject string
		ok                               bool
	}{
		{"GET", "GET /api/v1/policies/{id}/attachments", "policy.attachments.read", "policy", true},
		{"HEAD", "GET /api/v1/stacks/{id}/env/effective", "stack.env.effective.read", "stack", true},
		{"GET", "GET /api/v1/worker-pools/{id}/workers", "worker_pool.workers.read", "worker_pool", true},
		{"GET", "GET /api/v1/runs/{id}/policy-receipts", "run.policy_receipts.read", "run", true},
		{"GET", "GET /api/v1/audit/events", "audit.events.read", "audit", true},
		{"POST", "POST /api/v1/stacks", "", "", false},
		{"GET", "GET /healthz", "", "", false},
	} {
		ra, ok := refusedRead(tt.method, tt.pattern)
		if ok != tt.ok || ra.action != tt.action || ra.subject != tt.subject || (ok && (!actionRE.MatchString(ra.action) || ra.idFrom != "id")) {
			t.Errorf("refusedRead(%s, %q) = %+v, %v", tt.method, tt.pattern, ra, ok)
		}
	}
	if got := pathParams("DELETE /api/v1/policies/{id}/attachments/{stack}", "/api/v1/policies/p1/attachments/s1"); got["id"] != "p1" || got["stack"] != "s1" {
		t.Errorf("pathParams = %v", got)
	}
}
