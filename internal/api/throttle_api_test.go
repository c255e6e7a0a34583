package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/api"
	"github.com/gantry-iac/gantry/internal/audit"
)

// Through the API: a source that keeps failing gets 429 and Retry-After
// for its bad tokens, while a good token from the same address still works.
func TestBruteForceThrottled(t *testing.T) {
	e := newAPIEnv(t)
	bad := request{method: "GET", path: "/api/v1/spaces", token: "gnt_wrong-token-000000000000000"}
	var last response
	for range 20 {
		last = e.send(bad)
	}
	if last.status != 401 {
		t.Fatalf("the 20th failure = %s, want 401", last)
	}
	r := e.send(bad)
	wantError(t, r, 429, "too_many_requests")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("no Retry-After in %s", r)
	}
	if ok := e.send(request{method: "GET", path: "/api/v1/spaces", token: e.token}); ok.status != 200 {
		t.Fatalf("a good token from a throttled address = %s, want 200", ok)
	}
}

// Every failed authentication is accounted for in the audit trail, those
// answered 429 by the throttle too: without an event (a write) each, but
// counted in the "suppressed" of the source's next auth.failed event, so
// that the events and what they suppressed add up to every failure.
func TestThrottledAuthFailuresAudited(t *testing.T) {
	e := newRBACEnv(t, func(a *api.API) { api.SetAuthThrottle(a, 3, 2*time.Second) })
	statuses := map[int]int{}
	bad := func(i int) int {
		r := e.send(request{method: "GET", path: "/api/v1/whoami", token: fmt.Sprintf("gnt_bogus%d", i)})
		statuses[r.status]++
		return r.status
	}
	sent := 0
	for range 3 {
		if s := bad(sent); s != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", sent+1, s)
		}
		sent++
	}
	for range 5 {
		if s := bad(sent); s != http.StatusTooManyRequests {
			t.Fatalf("failure %d: %d, want 429", sent+1, s)
		}
		sent++
	}
	// Once the block is over, the next bad token is told 401 again and its
	// event reports the failures before it.
	for deadline := time.Now().Add(10 * time.Second); ; {
		s := bad(sent)
		sent++
		if s == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still throttled after the block")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var events, accounted int
	for deadline := time.Now().Add(5 * time.Second); ; {
		events, accounted = 0, 0
		for _, ev := range e.trailSince(0) {
			if ev.Action != audit.AuthFailedAction {
				continue
			}
			var ch struct{ Suppressed int }
			if err := json.Unmarshal(ev.Change, &ch); err != nil {
				t.Fatal(err)
			}
			events++
			accounted += 1 + ch.Suppressed
		}
		if accounted == sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if accounted != sent {
		t.Errorf("the audit trail accounts for %d failed authentications (%d events), want all %d (%v)", accounted, events, sent, statuses)
	}
	if events > statuses[http.StatusUnauthorized] {
		t.Errorf("%d auth.failed events for %d requests answered 401: throttled requests wrote events", events, statuses[http.StatusUnauthorized])
	}
}
