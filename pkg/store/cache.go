package store

import (
	"container/list"
	"sync"
	"time"
)

// valueCache remembers values of keys recently read or written, so that a
// Redis transaction can read them without a round trip. It is a guess: the
// commit script checks every value a transaction read, so an entry another
// replica made stale costs a retry, never a wrong answer. Least recently
// used entries go first once the values and keys exceed max bytes.
type valueCache struct {
	max int64

	mu   sync.Mutex
	size int64
	m    map[string]*list.Element
	lru  list.List // of *cacheEntry, most recently used first
}

// cacheEntry is immutable once in the cache.
type cacheEntry struct {
	key   string
	value []byte
	found bool
	exp   time.Time // when the server drops the key, when known
}

// cacheEntryOverhead approximates the bytes an entry costs beyond its key
// and value: the entry, its list element and its map slot.
const cacheEntryOverhead = 128

// maxCachedValue: a larger value is not remembered (it would push out many
// small ones, and sending it is the cost of the round trip anyway).
const maxCachedValue = 64 << 10

func newValueCache(maxBytes int64) *valueCache {
	return &valueCache{max: maxBytes, m: map[string]*list.Element{}}
}

func (c *valueCache) get(key string, now time.Time) (*cacheEntry, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !e.exp.IsZero() && !now.Before(e.exp) {
		c.remove(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e, true
}

// put remembers the value of key (found false: the key is absent), whose
// expiry on the server is exp when known. value is kept as given: the
// caller must not change it afterwards.
func (c *valueCache) put(key string, value []byte, found bool, exp time.Time) {
	if c.max <= 0 {
		return
	}
	if len(value) > maxCachedValue {
		c.forget(key)
		return
	}
	e := &cacheEntry{key: key, value: value, found: found, exp: exp}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.remove(el)
	}
	c.m[key] = c.lru.PushFront(e)
	c.size += e.cost()
	for c.size > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *valueCache) forget(key string) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.remove(el)
	}
}

// remove drops an entry (c.mu held).
func (c *valueCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.m, e.key)
	c.size -= e.cost()
}

func (e *cacheEntry) cost() int64 { return int64(len(e.key) + len(e.value) + cacheEntryOverhead) }
