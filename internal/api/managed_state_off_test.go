package api_test

import (
	"strings"
	"testing"
)

// Turning managed state off on a stack with state in Gantry is refused
// unless forced: its runs would plan from nothing and throw their state
// away. A stack without state may turn it off freely.
func TestManagedStateOffNeedsForce(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("fresh", nil)
	e.createStack("web", nil)
	doc := stateDoc(1, "lin-1", 1)
	if r := e.tfstate("POST", "web", "", e.token, doc, nil); r.status != 200 {
		t.Fatalf("POST state = %s", r)
	}
	off := map[string]any{"managed_state": false}

	if r := e.do("PATCH", "/api/v1/stacks/fresh", off); r.status != 200 {
		t.Errorf("turning managed state off without state = %s, want 200", r)
	}
	for _, q := range []string{"", "?force=false"} {
		d := wantError(t, e.do("PATCH", "/api/v1/stacks/web"+q, off), 409, "conflict")
		for _, want := range []string{"empty state", "gantry stack state show --id web", "-migrate-state", "force"} {
			if !strings.Contains(d.Message, want) {
				t.Errorf("message %q does not say %q", d.Message, want)
			}
		}
	}
	var got struct {
		ManagedState bool `json:"managed_state"`
	}
	e.must(e.do("GET", "/api/v1/stacks/web", nil), 200, &got)
	if !got.ManagedState {
		t.Fatal("a refused update turned managed state off")
	}
	// Other fields alone are not refused.
	if r := e.do("PATCH", "/api/v1/stacks/web", map[string]any{"description": "d"}); r.status != 200 {
		t.Errorf("PATCH without managed_state = %s, want 200", r)
	}
	e.must(e.do("PATCH", "/api/v1/stacks/web?force=true", off), 200, &got)
	if got.ManagedState {
		t.Error("forced update left managed state on")
	}
	// The versions kept from before stay readable.
	if r := e.do("GET", "/api/v1/stacks/web/state/versions/current", nil); r.status != 200 || string(r.body) != doc {
		t.Errorf("current version after turning managed state off = %s, want the stored document", r)
	}
	if r := e.do("GET", "/api/v1/stacks/web/state/versions", nil); r.status != 200 {
		t.Errorf("versions after turning managed state off = %s, want 200", r)
	}
}

// A stack without managed state and without versions says so, not that
// it has no state yet.
func TestUnmanagedStateReads(t *testing.T) {
	e := newAPIEnv(t)
	e.createStack("own", map[string]any{"managed_state": false})
	for _, path := range []string{"/api/v1/stacks/own/state/versions", "/api/v1/stacks/own/state/versions/current"} {
		d := wantError(t, e.do("GET", path, nil), 409, "conflict")
		if !strings.Contains(d.Message, "does not use managed state") {
			t.Errorf("GET %s: message %q, want it to say the stack does not use managed state", path, d.Message)
		}
	}
}
