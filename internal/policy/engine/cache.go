package engine

import (
	"container/list"
	"sync"
)

// Cache holds compiled policies by SourceHash, compiling each source once
// (concurrent requests for the same source wait for one compilation) and
// keeping at most max of them, dropping the least recently used. Failed
// compilations are not kept. Policies of the same source share one
// compiled entry; each call returns its own copy, named as its source
// (errors name the right policy). A Cache is safe for concurrent use.
type Cache struct {
	max int

	mu      sync.Mutex
	entries map[string]*list.Element // of *cacheEntry
	order   *list.List               // front: most recently used
}

type cacheEntry struct {
	hash   string
	name   string        // Source.Name of the compilation
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
		return e.result(src)
	}
	e := &cacheEntry{hash: hash, name: src.Name, done: make(chan struct{})}
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
	return e.result(src)
}

// result returns the entry's policy, or error, for src: a copy named
// src.Name sharing the prepared query. A failure is compiled again under
// src's name when another name compiled it (failures are rare and not
// kept), so the errors name src.
func (e *cacheEntry) result(src Source) (*Policy, error) {
	if e.err != nil {
		if e.name != src.Name {
			return Compile(src)
		}
		return nil, e.err
	}
	p := *e.policy
	p.Name = src.Name
	return &p, nil
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
