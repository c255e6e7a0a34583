package events

import (
	"context"
	"testing"
	"time"
)

func TestHubNotify(t *testing.T) {
	h := NewHub()
	c := h.Chan("a")
	other := h.Chan("b")
	go h.Notify("a")
	if !Wait(context.Background(), c, time.Second) {
		t.Fatal("not woken")
	}
	if Wait(context.Background(), other, 10*time.Millisecond) {
		t.Fatal("woken by another key")
	}
	c2 := h.Chan("a")
	if c2 == c {
		t.Fatal("closed channel reused")
	}
}

// A payload wakes the waiters of another replica's hub, not of the hub that
// sent it (PostgreSQL echoes a NOTIFY back to its sender), and a payload
// without an origin (an older replica) wakes everyone.
func TestNotifyRemote(t *testing.T) {
	a, b := NewHub(), NewHub()
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	ca, cb := a.Chan("pool:x"), b.Chan("pool:x")
	other := b.Chan("log:y")
	payload := a.Payload([]string{"pool:x", "log:y"})
	a.NotifyRemote(payload)
	if closed(ca) {
		t.Error("a hub's own payload woke its waiters again")
	}
	b.NotifyRemote(payload)
	if !closed(cb) || !closed(other) {
		t.Errorf("another hub's payload %q did not wake both keys", payload)
	}
	a.NotifyRemote("pool:x")
	if !closed(ca) {
		t.Error("a payload without an origin did not wake the waiter")
	}
}
