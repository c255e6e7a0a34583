package audit

import (
	"fmt"
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	var l failureLimiter
	t0 := time.Unix(1000, 0)
	steps := []struct {
		ip         string
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{"192.0.2.1", 0, true, 0},
		{"192.0.2.1", 100 * time.Millisecond, false, 0},
		{"192.0.2.1", 900 * time.Millisecond, false, 0},
		{"192.0.2.2", 900 * time.Millisecond, true, 0}, // another address has its own second
		{"192.0.2.1", time.Second, true, 2},            // the two in between are counted
		{"192.0.2.1", 3 * time.Second, true, 0},
	}
	for i, s := range steps {
		ok, n := l.allow(s.ip, t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d: allow(%s, +%v) = %v, %d; want %v, %d", i, s.ip, s.at, ok, n, s.ok, s.suppressed)
		}
	}
}

func TestFailureLimiterBounded(t *testing.T) {
	var l failureLimiter
	now := time.Unix(1000, 0)
	for i := range maxTracked + 10 {
		l.allow(string(rune(i)), now)
	}
	if len(l.byIP) > maxTracked {
		t.Errorf("tracks %d addresses, at most %d", len(l.byIP), maxTracked)
	}
}

// Many sources at once: at most globalPerSecond events a second in all,
// and the dropped ones are counted in the next event that gets through.
func TestFailureLimiterGlobalCap(t *testing.T) {
	var l failureLimiter
	now := time.Unix(1000, 0)
	allowed := 0
	for i := range 100 {
		if ok, _ := l.allow(fmt.Sprintf("2001:db8::%x", i), now); ok {
			allowed++
		}
	}
	if allowed != globalPerSecond {
		t.Fatalf("%d events in one second from 100 sources, want %d", allowed, globalPerSecond)
	}
	ok, suppressed := l.allow("2001:db8::ffff", now.Add(time.Second))
	if !ok || suppressed < 100-globalPerSecond {
		t.Fatalf("next second: allowed %v, suppressed %d, want the %d dropped counted", ok, suppressed, 100-globalPerSecond)
	}
}

// Failures counted without an event (throttled requests) are reported by
// the next event of their address, with those the limiter held back.
func TestFailureLimiterCount(t *testing.T) {
	var l failureLimiter
	t0 := time.Unix(1000, 0)
	l.count("192.0.2.9", t0) // before any event
	if ok, n := l.allow("192.0.2.9", t0); !ok || n != 1 {
		t.Fatalf("first event: %v, %d; want it with 1 suppressed", ok, n)
	}
	l.allow("192.0.2.9", t0.Add(time.Millisecond))
	for range 41 {
		l.count("192.0.2.9", t0.Add(time.Second))
	}
	l.count("192.0.2.10", t0.Add(time.Second))
	if ok, n := l.allow("192.0.2.9", t0.Add(61*time.Second)); !ok || n != 42 {
		t.Errorf("next event: %v, %d; want it with 42 suppressed", ok, n)
	}
}
