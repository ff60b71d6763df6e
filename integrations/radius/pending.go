package radius

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"sync"
	"time"
)

// maxPending bounds the challenges waiting for an answer. Past it a new
// challenge is refused rather than an older one dropped: a flood of logins
// must not erase the prompt a real user is reading.
const maxPending = 1 << 14

// statePrefix starts the State of the gate's own passcode prompts, so that
// a packet dump tells them from the MFA proxy's.
const statePrefix = "pushback:"

var errTooManyPending = errors.New("radius: too many challenges waiting for an answer")

// pendingKind says whose challenge an Access-Challenge was.
type pendingKind int

const (
	// ownPrompt: the gate asked for a passcode (number matching).
	ownPrompt pendingKind = iota
	// relayed: the MFA proxy's own challenge, relayed to the VPN.
	relayed
)

// pending is a challenge the VPN may answer once, from the same VPN, for
// the same user, before it expires.
type pending struct {
	kind    pendingKind
	user    string
	srcIP   netip.Addr
	nasID   string
	attempt attempt
	// password is what the user typed before the gate's prompt (without a
	// factor suffix), to be joined with the passcode. Zeroed when taken.
	password []byte
	expires  time.Time
}

// wipe zeroes the password held.
func (p *pending) wipe() { clear(p.password) }

// matches reports whether a continuation comes from where the challenge
// went.
func (p *pending) matches(user string, srcIP netip.Addr, nasID string) bool {
	return p.user == user && p.srcIP == srcIP && p.nasID == nasID
}

type pendingState struct {
	state string
	p     *pending
}

// pendingStore holds challenges by their State attribute.
type pendingStore struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	m     map[string]*pending
	order []pendingState // in order of expiry
}

func newPendingStore(ttl time.Duration, max int) *pendingStore {
	return &pendingStore{ttl: ttl, max: max, m: map[string]*pending{}}
}

// newState returns a fresh, unguessable State for the gate's own prompt.
func newState() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return statePrefix + hex.EncodeToString(b[:])
}

// put records p under state until the store's ttl has passed.
func (s *pendingStore) put(state string, p *pending, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if len(s.m) >= s.max {
		return errTooManyPending
	}
	if old, ok := s.m[state]; ok {
		old.wipe()
	}
	p.expires = now.Add(s.ttl)
	s.m[state] = p
	s.order = append(s.order, pendingState{state, p})
	return nil
}

// take removes and returns the challenge of state: each is answered once.
// The caller wipes it when done.
func (s *pendingStore) take(state string, now time.Time) (*pending, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	p, ok := s.m[state]
	if ok {
		delete(s.m, state)
	}
	return p, ok
}

func (s *pendingStore) expire(now time.Time) {
	for len(s.order) > 0 && !now.Before(s.order[0].p.expires) {
		e := s.order[0]
		// A challenge taken is the taker's to wipe.
		if s.m[e.state] == e.p {
			delete(s.m, e.state)
			e.p.wipe()
		}
		s.order[0] = pendingState{}
		s.order = s.order[1:]
	}
}

// len is the number of challenges waiting (tests).
func (s *pendingStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
