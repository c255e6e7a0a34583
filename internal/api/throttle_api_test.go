package api_test

import "testing"

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
