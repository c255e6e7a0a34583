package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/gantry-iac/gantry/internal/apiv1"
	"github.com/gantry-iac/gantry/internal/auth"
)

// TestAuditPolicySampleReads: reading a policy's samples (the inputs its
// evaluations were given) is recorded, refused or not, in the policy's
// space; another refused read gets a generic event too, a granted one
// none.
func TestAuditPolicySampleReads(t *testing.T) {
	e := newRBACEnv(t)
	f := e.fixture(1)
	events := func(action string) []apiv1.AuditEvent {
		var l apiv1.List[apiv1.AuditEvent]
		e.must(e.do("GET", "/api/v1/audit/events?action="+action, nil), http.StatusOK, &l)
		return l.Items
	}
	reader := e.actor("reader", f.space, []string{auth.SpaceRead})
	samples := "/api/v1/policies/" + f.policy + "/samples"
	for _, path := range []string{samples, samples + "/smp-1"} {
		if r := e.as(reader, "GET", path, nil); r.status != http.StatusForbidden {
			t.Fatalf("GET %s as a space reader: %s, want 403", path, r)
		}
	}
	e.must(e.do("GET", samples, nil), http.StatusOK, nil)
	for action, want := range map[string][]string{ // newest first
		"policy.sample.list": {"success api_key::admin", "denied api_key::reader"},
		"policy.sample.read": {"denied api_key::reader"},
	} {
		evs := events(action)
		if len(evs) != len(want) {
			t.Errorf("%s: %d events, want %d: %+v", action, len(evs), len(want), evs)
			continue
		}
		for i, ev := range evs {
			if got := ev.Outcome + " " + ev.Actor; got != want[i] || ev.SubjectID != f.policy || ev.Space != f.space {
				t.Errorf("%s: event %+v (%s), want %s on %s in %s", action, ev, got, want[i], f.policy, f.space)
			}
			var change struct{ Path map[string]string }
			if action == "policy.sample.read" && (json.Unmarshal(ev.Change, &change) != nil || change.Path["key"] != "smp-1") {
				t.Errorf("%s: change %s, want the key", action, ev.Change)
			}
		}
	}
	// Other reads: refused ones only.
	other := e.actor("other", "root", []string{auth.RunTrigger})
	if r := e.as(other, "GET", "/api/v1/stacks/"+f.stack+"/env", nil); r.status != http.StatusForbidden {
		t.Fatalf("GET env without space:read: %s", r)
	}
	e.must(e.as(reader, "GET", "/api/v1/stacks/"+f.stack+"/env", nil), http.StatusOK, nil)
	if evs := events("stack.env.read"); len(evs) != 1 || evs[0].Outcome != "denied" || evs[0].Actor != "api_key::other" || evs[0].SubjectID != f.stack {
		t.Errorf("stack.env.read events: %+v", evs)
	}
}
