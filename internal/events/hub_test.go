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

// A key taken and released by everyone who took it is forgotten; one
// still taken by someone is kept and still woken; a released channel
// that was notified meanwhile changes nothing.
func TestHubRelease(t *testing.T) {
	h := NewHub()
	a := h.Chan("k")
	b := h.Chan("k")
	h.Release("k", a)
	if h.Keys() != 1 {
		t.Fatalf("released by one of two: %d keys, want the key kept", h.Keys())
	}
	h.Notify("k")
	select {
	case <-b:
	default:
		t.Fatal("the remaining waiter was not woken")
	}
	h.Release("k", b) // notified meanwhile: nothing to do
	c := h.Chan("k")
	h.Release("k", b) // an old channel does not release the new one
	if h.Keys() != 1 {
		t.Fatalf("%d keys, want the new one kept", h.Keys())
	}
	h.Release("k", c)
	if h.Keys() != 0 {
		t.Fatalf("%d keys after everyone released, want none", h.Keys())
	}
}
