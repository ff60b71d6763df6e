package outbound

import (
	"context"
	"sync"
	"time"
)

// TokenCache keeps an OAuth access token (a client credentials grant, say)
// until shortly before it expires. Callers that find no valid token share
// one fetch, and each waits for it no longer than its own context; the
// fetch outlives a caller that gives up, so the others still get its
// token. Safe for concurrent use.
type TokenCache struct {
	// Fetch asks for a new token and says how long it lives.
	Fetch func(ctx context.Context) (token string, life time.Duration, err error)
	// Margin is how long before its expiry a token of life is replaced.
	Margin func(life time.Duration) time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu       sync.Mutex
	token    string
	validTo  time.Time
	inflight *tokenFetch
}

type tokenFetch struct {
	done  chan struct{}
	token string
	err   error
}

func (t *TokenCache) now() time.Time {
	if t.Now == nil {
		return time.Now()
	}
	return t.Now()
}

// Get returns a valid token, fetching one when there is none.
func (t *TokenCache) Get(ctx context.Context) (string, error) {
	t.mu.Lock()
	if t.token != "" && t.now().Before(t.validTo) {
		tok := t.token
		t.mu.Unlock()
		return tok, nil
	}
	f := t.inflight
	if f == nil {
		f = &tokenFetch{done: make(chan struct{})}
		t.inflight = f
		// The fetch outlives a caller that gives up; the HTTP client's
		// timeout bounds it.
		go t.run(context.WithoutCancel(ctx), f)
	}
	t.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (t *TokenCache) run(ctx context.Context, f *tokenFetch) {
	start := t.now()
	tok, life, err := t.Fetch(ctx)
	t.mu.Lock()
	if err == nil {
		margin := time.Duration(0)
		if t.Margin != nil {
			margin = t.Margin(life)
		}
		t.token, t.validTo = tok, start.Add(life-margin)
	}
	t.inflight = nil
	t.mu.Unlock()
	f.token, f.err = tok, err
	close(f.done)
}

// Invalidate drops tok if it is still the cached token (the API refused
// it); a newer token another caller fetched meanwhile is kept.
func (t *TokenCache) Invalidate(tok string) {
	t.mu.Lock()
	if t.token == tok {
		t.token = ""
	}
	t.mu.Unlock()
}

// Cached returns the token held now ("" when none), for redacting it.
func (t *TokenCache) Cached() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.token
}
