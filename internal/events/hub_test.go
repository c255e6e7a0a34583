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
