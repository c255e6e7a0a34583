package audit

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// AuthFailedAction is the action of a failed authentication.
const AuthFailedAction = "auth.failed"

// maxTracked bounds how many source IPs the failure limiter remembers.
const maxTracked = 1 << 16

// failureLimiter lets through at most one failed-authentication event per
// source IP per second, and counts the others, which the next event of
// that IP reports. It is per process: with several replicas, one event per
// IP per second per replica.
type failureLimiter struct {
	mu   sync.Mutex
	byIP map[string]*ipFailures
	// A global cap across all sources, so that a flood from many addresses
	// (an IPv6 prefix) cannot turn into unbounded audit writes, each of
	// which takes the audit head's lock: at most globalPerSecond events a
	// second; the rest are counted in the next event that gets through.
	second        time.Time
	inSecond      int
	globalDropped int
}

// globalPerSecond bounds failed-authentication events across all sources.
const globalPerSecond = 20

type ipFailures struct {
	next       time.Time // no event before
	suppressed int       // failures not recorded since the last event
}

// allow reports whether a failure from ip at now gets an event, and how
// many failures of ip were suppressed since its last event.
func (l *failureLimiter) allow(ip string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.entry(ip, now)
	if now.Before(f.next) {
		f.suppressed++
		return false, 0
	}
	if sec := now.Truncate(time.Second); !sec.Equal(l.second) {
		l.second, l.inSecond = sec, 0
	}
	if l.inSecond >= globalPerSecond {
		l.globalDropped++
		f.suppressed++
		return false, 0
	}
	l.inSecond++
	n := f.suppressed + l.globalDropped
	l.globalDropped = 0
	f.next, f.suppressed = now.Add(time.Second), 0
	return true, n
}

// entry returns the record of ip, made if missing (making room first when
// too many are tracked). l.mu is held.
func (l *failureLimiter) entry(ip string, now time.Time) *ipFailures {
	if l.byIP == nil {
		l.byIP = map[string]*ipFailures{}
	}
	f := l.byIP[ip]
	if f == nil {
		if len(l.byIP) >= maxTracked {
			l.sweep(now)
		}
		f = &ipFailures{}
		l.byIP[ip] = f
	}
	return f
}

// count counts a failure of ip (at now) that gets no event of its own (the
// request was throttled): the next event of ip reports it.
func (l *failureLimiter) count(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.entry(ip, now)
	f.suppressed++
}

// sweep forgets the IPs with nothing suppressed whose second is over; if
// that is not enough (a spread-out flood), it forgets everything.
func (l *failureLimiter) sweep(now time.Time) {
	for ip, f := range l.byIP {
		if f.suppressed == 0 && !now.Before(f.next) {
			delete(l.byIP, ip)
		}
	}
	if len(l.byIP) >= maxTracked {
		clear(l.byIP)
	}
}

// RecordAuthFailure records that the request of ctx presented credentials
// that did not work (reason: the public message, never the credential),
// as actor [Unknown] with the request's source IP and outcome [Denied]; at
// most once per source IP per second: the failures in between are counted
// in the next event's change ("suppressed"). It reports whether an event
// was written.
func (s *Service) RecordAuthFailure(ctx context.Context, reason string) (bool, error) {
	req, _ := RequestFrom(ctx)
	ok, suppressed := s.failures.allow(req.SourceIP, s.now())
	if !ok {
		return false, nil
	}
	change, err := json.Marshal(struct {
		Reason     string `json:"reason"`
		Suppressed int    `json:"suppressed,omitempty"`
	}{reason, suppressed})
	if err != nil {
		return false, err
	}
	_, err = s.Record(ctx, Event{Actor: Unknown, Roles: []string{}, Action: AuthFailedAction, Outcome: Denied, Change: change})
	return err == nil, err
}

// CountAuthFailure counts a failed authentication of the request of ctx
// that its source was refused for anyway (429: the brute-force throttle):
// in memory only, never a write (the throttle protects the server), and
// reported in the "suppressed" of the next event of that source IP.
func (s *Service) CountAuthFailure(ctx context.Context) {
	req, _ := RequestFrom(ctx)
	s.failures.count(req.SourceIP, s.now())
}
