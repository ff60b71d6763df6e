package scoring

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/pushbackhq/pushback/services/scoring/engine"
)

// sourceCache keeps the recent users of the sources (IPs and ASNs) this
// process has seen, for a store no other process writes: every mark on a
// source is written by this process, which applies it here once its
// transaction has committed, so a push reads its sources from memory
// instead of scanning their marks in the store (a busy network's scan was
// the largest single cost of an assessment).
//
// A push that reads a source between another push's commit and that
// push's apply counts it without that one mark: a lower bound for an
// instant, as a busy source's bounded read of the store always was. The
// user's own mark (its vouched flag) is still read from the store, inside
// the transaction, where a concurrent change to it is a conflict.
//
// A source not in the cache is read from the store once; marks committed
// while that read is under way are kept aside and merged into what it
// returns, so none is lost. The cache holds at most about max sources,
// dropping those idle longest first among a sample; a dropped source is
// read from the store again when next seen.
type sourceCache struct {
	seed   maphash.Seed
	shards [sourceShards]sourceShard
	// perShard bounds each shard; keep is engine.SprayConfig.MaxUsers and window
	// its window in milliseconds.
	perShard     int
	keep         int
	windowMillis int64
}

const sourceShards = 16

// maxCachedSources bounds the sources a scoring service keeps in memory:
// at most MaxUsers marks of 32 bytes each, far fewer for most (one user's
// IP), so a few tens of MB at worst.
const maxCachedSources = 1 << 16

type sourceShard struct {
	mu sync.Mutex
	m  map[string]*cachedSource
}

// cachedSource is one source's recent users, oldest first, or, while
// loading, the marks committed since its read from the store began.
type cachedSource struct {
	users   []engine.SourceUser
	loading bool
}

func newSourceCache(maxSources int, sp engine.SprayConfig) *sourceCache {
	c := &sourceCache{seed: maphash.MakeSeed(), perShard: max(maxSources/sourceShards, 1), keep: max(sp.MaxUsers, 1), windowMillis: sp.Window.Milliseconds()}
	for i := range c.shards {
		c.shards[i].m = map[string]*cachedSource{}
	}
	return c
}

func (c *sourceCache) shard(key string) *sourceShard {
	return &c.shards[maphash.String(c.seed, key)%sourceShards]
}

// get returns a copy of the source's users. Without them (ok false) the
// caller reads the store and hands the result to fill; its own read is
// then the one that loads the source.
func (c *sourceCache) get(key []byte) (src *engine.SourceState, ok bool) {
	// maphash.Bytes is maphash.String of the same bytes: the shard of the
	// string key, without making the string unless it is stored.
	sh := &c.shards[maphash.Bytes(c.seed, key)%sourceShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, found := sh.m[string(key)]; found {
		if e.loading {
			return nil, false
		}
		// Room for one more: the push that asked inserts its own mark
		// (engine.NoteSource) without growing a second copy.
		return &engine.SourceState{Users: append(make([]engine.SourceUser, 0, len(e.users)+1), e.users...)}, true
	}
	if len(sh.m) >= c.perShard {
		sh.evict()
	}
	sh.m[string(key)] = &cachedSource{loading: true}
	return nil, false
}

// fill keeps what a read of the store returned for a source that get did
// not have, merged with the marks committed since. A source another read
// has filled meanwhile keeps what it has (it already merged those marks).
func (c *sourceCache) fill(key string, src *engine.SourceState) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, found := sh.m[key]
	if !found || !e.loading {
		return
	}
	pending := e.users
	e.users, e.loading = slices.Clone(src.Users), false
	for _, m := range pending {
		c.merge(e, m)
	}
}

// forget drops a source whose read failed, so the next push reads again.
func (c *sourceCache) forget(key string) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, found := sh.m[key]; found && e.loading {
		delete(sh.m, key)
	}
}

// apply merges the marks a committed transaction wrote on a source.
func (c *sourceCache) apply(key string, marks []engine.SourceUser) {
	sh := c.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, found := sh.m[key]
	if !found {
		// Not cached: the next push reads the store, which holds the mark.
		return
	}
	for _, m := range marks {
		if e.loading {
			e.users = append(e.users, m)
			continue
		}
		c.merge(e, m)
	}
}

// committed applies the marks of a committed transaction, by source key
// (c nil: no cache, nothing to do).
func (c *sourceCache) committed(marks map[string][]engine.SourceUser) {
	if c == nil {
		return
	}
	for k, ms := range marks {
		c.apply(k, ms)
	}
}

// merge puts mark m in e (the user's mark replaced), keeps e in time
// order, and drops what is outside the window of the newest mark or past
// the users a source keeps, as the engine does.
func (c *sourceCache) merge(e *cachedSource, m engine.SourceUser) {
	if i := slices.IndexFunc(e.users, func(u engine.SourceUser) bool { return u.User == m.User }); i >= 0 {
		e.users = slices.Delete(e.users, i, i+1)
	}
	i, _ := slices.BinarySearchFunc(e.users, m.At, func(u engine.SourceUser, at int64) int {
		if u.At <= at {
			return -1
		}
		return 1
	})
	e.users = slices.Insert(e.users, i, m)
	from := e.users[len(e.users)-1].At - c.windowMillis
	drop := 0
	for drop < len(e.users) && e.users[drop].At <= from {
		drop++
	}
	drop = max(drop, len(e.users)-c.keep)
	e.users = slices.Delete(e.users, 0, drop)
}

// evict drops, among a sample of the shard, the source whose newest mark
// is oldest (one still loading is spared: its read would be lost).
func (sh *sourceShard) evict() {
	victim, oldest, seen := "", int64(1<<62), 0
	for k, e := range sh.m {
		if !e.loading {
			newest := int64(0)
			if len(e.users) > 0 {
				newest = e.users[len(e.users)-1].At
			}
			if newest < oldest {
				victim, oldest = k, newest
			}
		}
		if seen++; seen >= 32 {
			break
		}
	}
	if victim != "" {
		delete(sh.m, victim)
	}
}
