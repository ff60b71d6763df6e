package notify

import (
	"sync"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
)

// RateLimit bounds the deliveries of one channel: Burst at once, then one
// every Every. A negative Every disables the limit.
type RateLimit struct {
	Every time.Duration
	Burst int
}

// rateLimited reports whether kind reaches people and so is rate limited.
func rateLimited(kind notifyv1.Kind) bool {
	return kind == notifyv1.Kind_KIND_SOC_ALERT || kind == notifyv1.Kind_KIND_USER_NOTICE
}

// limiter is a token bucket per channel, on the injected clock. It lives in
// the process: after a restart a channel starts with a full burst.
type limiter struct {
	mu      sync.Mutex
	limits  map[string]RateLimit
	def     RateLimit
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(limits map[string]RateLimit, def RateLimit) *limiter {
	return &limiter{limits: limits, def: def, buckets: map[string]*bucket{}}
}

// take spends a token of channel at now, or returns how long until one is
// available (nothing is spent then).
func (l *limiter) take(channel string, now time.Time) time.Duration {
	lim, ok := l.limits[channel]
	if !ok {
		lim = l.def
	}
	if lim.Every < 0 || lim.Every == 0 && lim.Burst == 0 {
		return 0
	}
	burst := float64(max(lim.Burst, 1))
	every := max(lim.Every, time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[channel]
	if b == nil {
		b = &bucket{tokens: burst, at: now}
		l.buckets[channel] = b
	}
	if now.After(b.at) {
		b.tokens = min(burst, b.tokens+float64(now.Sub(b.at))/float64(every))
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return max(time.Duration((1-b.tokens)*float64(every)), time.Millisecond)
}
