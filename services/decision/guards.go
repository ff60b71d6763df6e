package decision

import (
	"hash/maphash"
	"sync"

	"github.com/pushbackhq/pushback/services/decision/guard"
)

// guards keeps every user's guard state in memory, so concurrent attempts
// for one user are ordered, and counted, in this process whatever the store
// and scoring do: an answer the store could not record still counts toward
// the next one. The store holds the same state for restarts and replicas;
// the two merge (see guard.State.Merge).
type guards struct {
	seed     maphash.Seed
	shards   [guardShards]guardShard
	perShard int
}

const guardShards = 64

type guardShard struct {
	mu sync.Mutex
	m  map[string]*guardEntry
}

// guardEntry is one user's state; mu orders that user's attempts.
type guardEntry struct {
	mu sync.Mutex
	st guard.State
}

// newGuards keeps at most about max users (idle ones are dropped first).
func newGuards(maxUsers int) *guards {
	g := &guards{seed: maphash.MakeSeed(), perShard: max(maxUsers/guardShards, 1)}
	for i := range g.shards {
		g.shards[i].m = map[string]*guardEntry{}
	}
	return g
}

// entry returns the user's entry, making room when the shard is full.
func (g *guards) entry(key string, now int64) *guardEntry {
	sh := &g.shards[maphash.String(g.seed, key)%guardShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[key]; ok {
		return e
	}
	if len(sh.m) >= g.perShard {
		sh.evict(now)
	}
	e := &guardEntry{}
	sh.m[key] = e
	return e
}

// evict drops idle entries, or one arbitrary entry when none is idle: a
// dropped entry loses only what the store already holds or never could.
func (sh *guardShard) evict(now int64) {
	dropped, seen := 0, 0
	var any string
	for k, e := range sh.m {
		any = k
		if e.mu.TryLock() {
			idle := e.st.Idle(now)
			e.mu.Unlock()
			if idle {
				delete(sh.m, k)
				dropped++
			}
		}
		if seen++; seen >= 64 {
			break
		}
	}
	if dropped == 0 {
		delete(sh.m, any)
	}
}

// update applies f to the user's state under its lock.
func (g *guards) update(key string, now int64, f func(st *guard.State)) {
	e := g.entry(key, now)
	e.mu.Lock()
	f(&e.st)
	e.mu.Unlock()
}

// len counts the entries (tests).
func (g *guards) len() int {
	n := 0
	for i := range g.shards {
		g.shards[i].mu.Lock()
		n += len(g.shards[i].m)
		g.shards[i].mu.Unlock()
	}
	return n
}
