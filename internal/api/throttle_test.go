package api

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
)

func TestAuthThrottle(t *testing.T) {
	th := newAuthThrottle()
	th.MaxFails, th.Window, th.Block = 3, time.Minute, 30*time.Second
	now := time.Now()
	r := httptest.NewRequest("GET", "/api/v1/spaces", nil)
	r.RemoteAddr = "203.0.113.7:5555"
	other := httptest.NewRequest("GET", "/api/v1/spaces", nil)
	other.RemoteAddr = "203.0.113.8:5555"
	v6a := httptest.NewRequest("GET", "/", nil)
	v6a.RemoteAddr = "[2001:db8:1:2::1]:1"
	v6b := httptest.NewRequest("GET", "/", nil)
	v6b.RemoteAddr = "[2001:db8:1:2::ffff]:1"
	for i := 0; i < 2; i++ {
		th.failed(r, now)
		if err := th.check(r, now); err != nil {
			t.Fatalf("blocked after %d failures", i+1)
		}
	}
	th.failed(r, now)
	err := th.check(r, now.Add(time.Second))
	if !errs.Is(err, errs.TooManyRequests) {
		t.Fatalf("after 3 failures: %v, want too many requests", err)
	}
	if th.check(other, now) != nil {
		t.Fatal("another address is blocked too")
	}
	if th.check(r, now.Add(31*time.Second)) != nil {
		t.Fatal("still blocked after the block ended")
	}
	// One IPv6 /64 is one source.
	for range 3 {
		th.failed(v6a, now)
	}
	if !errs.Is(th.check(v6b, now), errs.TooManyRequests) {
		t.Fatal("another address of the same /64 is not blocked")
	}
}
