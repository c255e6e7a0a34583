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
	waiters map[string]*waiters
	origin  string // tells this hub's payloads from other replicas'

	// Publish, if set, also sends every Notify to the other replicas
	// (PostgreSQL NOTIFY); what they receive goes to NotifyLocal.
	Publish func(keys []string)
}

// waiters are those of one key: its channel, and how many took it and did
// not Release it.
type waiters struct {
	c     chan struct{}
	taken int
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Hub{waiters: map[string]*waiters{}, origin: "@" + hex.EncodeToString(b)}
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
//
// The key is kept until it is notified. A caller waiting on keys that may
// never be notified again (the log of an ended run) calls Release when it
// stops waiting, so that the key is forgotten once nobody waits on it.
func (h *Hub) Chan(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := h.waiters[key]
	if !ok {
		w = &waiters{c: make(chan struct{})}
		h.waiters[key] = w
	}
	w.taken++
	return w.c
}

// Release says that a caller no longer waits on c, which Chan(key)
// returned: when nobody else who took it waits (or might), the key is
// forgotten. Releasing a channel already closed does nothing.
func (h *Hub) Release(key string, c <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := h.waiters[key]
	if !ok || w.c != c {
		return // notified meanwhile: forgotten already
	}
	if w.taken--; w.taken <= 0 {
		delete(h.waiters, key)
	}
}

// Keys returns how many keys the hub holds (waited on, not notified).
func (h *Hub) Keys() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waiters)
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
		if w, ok := h.waiters[key]; ok {
			close(w.c)
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
