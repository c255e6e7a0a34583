package api

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gantry-iac/gantry/internal/errs"
	"github.com/gantry-iac/gantry/internal/httpx"
)

// authThrottle slows brute force: a source address (an IPv6 /64 counts as
// one) that failed to authenticate MaxFails times within Window is refused
// (429, Retry-After) for Block, whatever token it sends. Per server replica.
type authThrottle struct {
	MaxFails int
	Window   time.Duration
	Block    time.Duration

	mu        sync.Mutex
	sources   map[netip.Prefix]*failWindow
	lastSweep time.Time
}

type failWindow struct {
	start        time.Time
	fails        int
	blockedUntil time.Time
}

// maxSources bounds the memory the throttle uses (see failed).
const maxSources = 100000

func newAuthThrottle() *authThrottle {
	return &authThrottle{MaxFails: 20, Window: time.Minute, Block: time.Minute, sources: map[netip.Prefix]*failWindow{}}
}

// sourceOf groups a request's peer address: itself for IPv4, its /64 for
// IPv6 (one host usually has a whole /64).
func sourceOf(r *http.Request) (netip.Prefix, bool) {
	addr, err := netip.ParseAddr(httpx.ClientIP(r))
	if err != nil {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	return p, err == nil
}

// check refuses a source that is blocked.
func (t *authThrottle) check(r *http.Request, now time.Time) error {
	src, ok := sourceOf(r)
	if !ok {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.sources[src]
	if w == nil || !now.Before(w.blockedUntil) {
		return nil
	}
	wait := int(w.blockedUntil.Sub(now).Seconds()) + 1
	return &errs.Error{Kind: errs.TooManyRequests, Detail: httpx.RetryAfter(wait),
		Message: "too many failed authentications from this address: retry in " + strconv.Itoa(wait) + " s"}
}

// failed counts a failed authentication of the request's source.
func (t *authThrottle) failed(r *http.Request, now time.Time) {
	src, ok := sourceOf(r)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.sources[src]
	if w == nil && len(t.sources) >= maxSources {
		// Full: forget the finished windows, at most once a second (a
		// flood of new sources must not make every request scan); until
		// there is room, new sources are not tracked.
		if now.Sub(t.lastSweep) < time.Second {
			return
		}
		t.lastSweep = now
		t.sweep(now)
		if len(t.sources) >= maxSources {
			return
		}
	}
	if w == nil || now.Sub(w.start) > t.Window {
		w = &failWindow{start: now}
		t.sources[src] = w
	}
	w.fails++
	if w.fails >= t.MaxFails {
		w.blockedUntil = now.Add(t.Block)
		w.start, w.fails = now, 0
	}
}

// sweep forgets the sources whose window and block are over.
func (t *authThrottle) sweep(now time.Time) {
	for p, w := range t.sources {
		if now.Sub(w.start) > t.Window && !now.Before(w.blockedUntil) {
			delete(t.sources, p)
		}
	}
}
