package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// session is one signed-in operator.
type session struct {
	// operator is the name they gave; fingerprint names their token.
	operator, fingerprint string
	// token is what they pasted: the console calls decision and notify
	// with it, so that the guard authorizes each call as the operator's
	// own. It stays in memory, never in the cookie.
	token string
	// csrf must come back with every form the session posts.
	csrf    string
	expires time.Time
}

// sessions holds the signed-in operators by the hash of their cookie, at
// most max of them.
type sessions struct {
	mu  sync.Mutex
	m   map[[sha256.Size]byte]*session
	max int
	ttl time.Duration
}

func newSessions(max int, ttl time.Duration) *sessions {
	return &sessions{m: map[[sha256.Size]byte]*session{}, max: max, ttl: ttl}
}

// randomToken is 32 random bytes, base64url: a session id or a CSRF token.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session at now and returns its cookie value. When the
// map is full the expired sessions go, then the oldest.
func (s *sessions) create(now time.Time, operator, fingerprint, token string) (string, *session) {
	id := randomToken()
	se := &session{operator: operator, fingerprint: fingerprint, token: token, csrf: randomToken(), expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		var oldest [sha256.Size]byte
		var oldestAt time.Time
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
				continue
			}
			if oldestAt.IsZero() || v.expires.Before(oldestAt) {
				oldest, oldestAt = k, v.expires
			}
		}
		if len(s.m) >= s.max {
			delete(s.m, oldest)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = se
	return id, se
}

// get returns the live session of a cookie value.
func (s *sessions) get(now time.Time, id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[k]
	if !ok {
		return nil, false
	}
	if !now.Before(se.expires) {
		delete(s.m, k)
		return nil, false
	}
	return se, true
}

// end removes a session.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

// limiter allows max attempts per client address in each window, and
// holds at most maxKeys addresses: past that, a new address is refused
// until windows run out, so that a flood of addresses cannot grow memory.
type limiter struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	maxKeys int
	m       map[string]*attempts
}

type attempts struct {
	n     int
	start time.Time
}

func newLimiter(max int, window time.Duration, maxKeys int) *limiter {
	return &limiter{max: max, window: window, maxKeys: maxKeys, m: map[string]*attempts{}}
}

// allow counts an attempt from key at now and reports whether it may go on.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.m[key]
	if ok && now.Sub(a.start) >= l.window {
		a.n, a.start = 0, now
	}
	if !ok {
		if len(l.m) >= l.maxKeys {
			for k, v := range l.m {
				if now.Sub(v.start) >= l.window {
					delete(l.m, k)
				}
			}
			if len(l.m) >= l.maxKeys {
				return false
			}
		}
		a = &attempts{start: now}
		l.m[key] = a
	}
	a.n++
	return a.n <= l.max
}
