package engine

import (
	"container/list"
	"sync"
)

// Cache holds compiled policies by SourceHash, compiling each source once
// (concurrent requests for the same source wait for one compilation) and
// keeping at most max of them, dropping the least recently used. Failed
// compilations are not kept. A Cache is safe for concurrent use.
type Cache struct {
	max int

	mu      sync.Mutex
	entries map[string]*list.Element // of *cacheEntry
	order   *list.List               // front: most recently used
}

type cacheEntry struct {
	hash   string
	done   chan struct{} // closed when policy/err are set
	policy *Policy
	err    error
}

// NewCache returns a cache of at most max compiled policies (at least 1).
func NewCache(size int) *Cache {
	return &Cache{max: max(size, 1), entries: map[string]*list.Element{}, order: list.New()}
}

// Compile returns the compiled policy for src, compiling it on first use.
func (c *Cache) Compile(src Source) (*Policy, error) {
	hash := SourceHash(src)
	c.mu.Lock()
	if el, ok := c.entries[hash]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		<-e.done
		return e.policy, e.err
	}
	e := &cacheEntry{hash: hash, done: make(chan struct{})}
	c.entries[hash] = c.order.PushFront(e)
	c.evict()
	c.mu.Unlock()

	e.policy, e.err = Compile(src)
	close(e.done)
	if e.err != nil {
		c.mu.Lock()
		if el, ok := c.entries[hash]; ok && el.Value.(*cacheEntry) == e {
			c.order.Remove(el)
			delete(c.entries, hash)
		}
		c.mu.Unlock()
	}
	return e.policy, e.err
}

// Len is the number of policies held (compiled or being compiled).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// evict drops least recently used entries beyond max; c.mu is held.
func (c *Cache) evict() {
	for c.order.Len() > c.max {
		el := c.order.Back()
		c.order.Remove(el)
		delete(c.entries, el.Value.(*cacheEntry).hash)
	}
}
