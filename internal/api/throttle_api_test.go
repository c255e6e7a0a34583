package api_test

import "testing"

// Through the API: a source that keeps failing is refused with 429 and
// Retry-After, even with a good token, until the block ends.
func TestBruteForceThrottled(t *testing.T) {
	e := newAPIEnv(t)
	var last response
	for range 20 {
		last = e.send(request{method: "GET", path: "/api/v1/spaces", token: "gnt_wrong-token-000000000000000"})
	}
	if last.status != 401 {
		t.Fatalf("the 20th failure = %s, want 401", last)
	}
	r := e.send(request{method: "GET", path: "/api/v1/spaces", token: e.token})
	wantError(t, r, 429, "too_many_requests")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("no Retry-After in %s", r)
	}
}
