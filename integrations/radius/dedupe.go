package radius

import (
	"sync"
	"time"
)

// maxAnswered bounds the answers kept for retransmits. Past it the oldest
// goes first; a retransmit arriving later than that is worked on again, and
// Decide's attempt id still makes it one decision.
const maxAnswered = 1 << 16

// dupKey identifies a request as RFC 5080 section 2.2.2 does: a
// retransmission has the same source address and port, identifier and
// Request Authenticator.
type dupKey struct {
	src  string
	id   byte
	auth [16]byte
}

// dupState is what begin found.
type dupState int

const (
	// dupNew: nothing known; the caller works on the request and calls
	// finish.
	dupNew dupState = iota
	// dupInFlight: the request is being worked on; the retransmit is dropped
	// and the answer goes out when it is ready.
	dupInFlight
	// dupAnswered: the answer is known; it is sent again as it was.
	dupAnswered
)

type dupEntry struct {
	answer  []byte // nil while in flight
	expires time.Time
}

type answeredKey struct {
	key   dupKey
	entry *dupEntry
}

// dupCache remembers requests in flight and, for a window, their answers,
// so that the VPN's retransmits cost one decision and one upstream call (one
// push), and get the same answer.
type dupCache struct {
	mu       sync.Mutex
	window   time.Duration
	max      int
	entries  map[dupKey]*dupEntry
	answered []answeredKey // in order of expiry
}

func newDupCache(window time.Duration, max int) *dupCache {
	return &dupCache{window: window, max: max, entries: map[dupKey]*dupEntry{}}
}

// begin looks k up, and marks it in flight when it is new.
func (c *dupCache) begin(k dupKey, now time.Time) ([]byte, dupState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if e, ok := c.entries[k]; ok {
		if e.answer == nil {
			return nil, dupInFlight
		}
		return e.answer, dupAnswered
	}
	c.entries[k] = &dupEntry{}
	return nil, dupNew
}

// finish records the answer of a request begun; a nil answer (the request
// was dropped) forgets it, so that a retransmit is worked on.
func (c *dupCache) finish(k dupKey, answer []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if answer == nil {
		delete(c.entries, k)
		return
	}
	e := &dupEntry{answer: answer, expires: now.Add(c.window)}
	c.entries[k] = e
	c.answered = append(c.answered, answeredKey{k, e})
	for len(c.answered) > c.max {
		c.drop()
	}
}

// expire forgets the answers whose window has passed.
func (c *dupCache) expire(now time.Time) {
	for len(c.answered) > 0 && !now.Before(c.answered[0].entry.expires) {
		c.drop()
	}
}

// drop forgets the oldest answer.
func (c *dupCache) drop() {
	a := c.answered[0]
	if c.entries[a.key] == a.entry {
		delete(c.entries, a.key)
	}
	// The spent front is freed when append next moves the slice to a new
	// array (reslicing shrinks its capacity).
	c.answered[0] = answeredKey{}
	c.answered = c.answered[1:]
}

// len is the number of requests known (tests).
func (c *dupCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
