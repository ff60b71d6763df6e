package store

import (
	"fmt"
	"testing"
	"time"
)

func TestValueCacheBoundsAndExpiry(t *testing.T) {
	now := time.Now()
	entry := int64(len("k00") + 10 + cacheEntryOverhead)
	c := newValueCache(3 * entry)
	for i := range 3 {
		c.put(fmt.Sprintf("k%02d", i), make([]byte, 10), true, time.Time{})
	}
	if _, ok := c.get("k00", now); !ok { // k00 is now the most recently used
		t.Fatal("k00 missing before the cache is full")
	}
	c.put("k03", make([]byte, 10), true, time.Time{})
	if _, ok := c.get("k01", now); ok {
		t.Error("the least recently used entry survived a put past the bound")
	}
	for _, k := range []string{"k00", "k02", "k03"} {
		if _, ok := c.get(k, now); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if c.size > c.max {
		t.Errorf("size %d over the bound %d", c.size, c.max)
	}

	c.put("k02", make([]byte, maxCachedValue+1), true, time.Time{})
	if _, ok := c.get("k02", now); ok {
		t.Error("a value over the size limit was kept (or its older value was)")
	}

	c.put("k04", nil, false, now.Add(time.Second))
	if e, ok := c.get("k04", now); !ok || e.found {
		t.Errorf("a remembered absence: %v, %v", e, ok)
	}
	if _, ok := c.get("k04", now.Add(time.Second)); ok {
		t.Error("an entry past its expiry was served")
	}
	if len(c.m) != c.lru.Len() {
		t.Errorf("map %d entries, list %d", len(c.m), c.lru.Len())
	}

	off := newValueCache(-1)
	off.put("k", []byte("v"), true, time.Time{})
	if _, ok := off.get("k", now); ok {
		t.Error("a disabled cache served a value")
	}
}
