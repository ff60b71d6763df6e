package decision

import (
	"crypto/sha256"
	"sync"
	"time"
)

// replayGuard remembers the signatures of signed Decide calls that carry no
// attempt id, for as long as a signature is valid, so that a captured call
// cannot be sent again to count as one more push. (With an attempt id a
// repeat is harmless: it is answered from the stored decision.) It is per
// process and bounded; beyond its size the oldest signatures are forgotten.
type replayGuard struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	seen  map[[sha256.Size]byte]time.Time
	order []guarded // in the order seen, for expiry
}

type guarded struct {
	sum [sha256.Size]byte
	at  time.Time
}

func newReplayGuard(ttl time.Duration, max int) *replayGuard {
	return &replayGuard{ttl: ttl, max: max, seen: map[[sha256.Size]byte]time.Time{}}
}

// firstUse records sig at now and reports whether it was not seen within
// the window before.
func (g *replayGuard) firstUse(sig string, now time.Time) bool {
	sum := sha256.Sum256([]byte(sig))
	g.mu.Lock()
	defer g.mu.Unlock()
	drop := 0
	for drop < len(g.order) && (now.Sub(g.order[drop].at) > g.ttl || len(g.order)-drop >= g.max) {
		if g.seen[g.order[drop].sum].Equal(g.order[drop].at) {
			delete(g.seen, g.order[drop].sum)
		}
		drop++
	}
	g.order = g.order[drop:]
	if at, ok := g.seen[sum]; ok && now.Sub(at) <= g.ttl {
		return false
	}
	g.seen[sum] = now
	g.order = append(g.order, guarded{sum: sum, at: now})
	return true
}
