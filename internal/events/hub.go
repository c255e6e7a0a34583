// Package events wakes waiters inside one process when something they wait
// for may have happened (a run became claimable, a log grew, a run changed
// state). It carries no data: waiters re-read the store. Across replicas the
// waiters also re-read on a short timer, so a lost wake-up only costs latency.
package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// Hub is a set of named wake-up channels.
type Hub struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
	origin  string // tells this hub's payloads from other replicas'

	// Publish, if set, also sends every Notify to the other replicas
	// (PostgreSQL NOTIFY); what they receive goes to NotifyLocal.
	Publish func(keys []string)
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Hub{waiters: map[string]chan struct{}{}, origin: "@" + hex.EncodeToString(b)}
}

// Payload is what Publish sends to the other replicas for keys: this hub's
// origin, then the keys, separated by spaces.
func (h *Hub) Payload(keys []string) string {
	return h.origin + " " + strings.Join(keys, " ")
}

// NotifyRemote wakes the waiters of the keys in a payload received from
// the replicas. The hub's own payloads come back too (PostgreSQL delivers a
// NOTIFY to every listener, the sender's included); their waiters were
// woken when they were sent, so they are ignored: waking them again would
// make every claim and log follower read the store twice.
func (h *Hub) NotifyRemote(payload string) {
	keys := strings.Fields(payload)
	if len(keys) > 0 && strings.HasPrefix(keys[0], "@") {
		if keys[0] == h.origin {
			return
		}
		keys = keys[1:]
	}
	h.NotifyLocal(keys...)
}

// Chan returns a channel closed at the next Notify(key). Take it before
// reading the store, then wait on it, so no notification is missed.
func (h *Hub) Chan(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.waiters[key]
	if !ok {
		c = make(chan struct{})
		h.waiters[key] = c
	}
	return c
}

// Notify wakes every waiter of the keys, here and on other replicas.
func (h *Hub) Notify(keys ...string) {
	h.NotifyLocal(keys...)
	if h.Publish != nil && len(keys) > 0 {
		h.Publish(keys)
	}
}

// NotifyLocal wakes the waiters of the keys in this process.
func (h *Hub) NotifyLocal(keys ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, key := range keys {
		if c, ok := h.waiters[key]; ok {
			close(c)
			delete(h.waiters, key)
		}
	}
}

// Wait blocks until c is closed, ctx ends, or d passes. It reports whether
// c was closed.
func Wait(ctx context.Context, c <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}
