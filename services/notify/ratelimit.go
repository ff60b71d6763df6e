package notify

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"time"

	notifyv1 "github.com/pushbackhq/pushback/gen/pushback/notify/v1"
	"github.com/pushbackhq/pushback/pkg/store"
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

// off reports whether the limit lets everything through.
func (l RateLimit) off() bool { return l.Every < 0 || l.Every == 0 && l.Burst == 0 }

// bucket is a token bucket: tokens available at a time.
type bucket struct {
	tokens float64
	at     time.Time
}

// spend takes a token from b at now. It returns the bucket after the
// attempt and how long until a token is available (zero when one was
// spent; nothing is spent otherwise). A zero bucket is a full one.
func (l RateLimit) spend(b bucket, now time.Time) (bucket, time.Duration) {
	burst := float64(max(l.Burst, 1))
	every := max(l.Every, time.Millisecond)
	if b.at.IsZero() {
		b = bucket{tokens: burst, at: now}
	}
	if now.After(b.at) {
		b.tokens = min(burst, b.tokens+float64(now.Sub(b.at))/float64(every))
		b.at = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return b, 0
	}
	return b, max(time.Duration((1-b.tokens)*float64(every)), time.Millisecond)
}

// refill is how long an untouched bucket takes to fill up again: after it,
// a missing bucket and a stored one are the same.
func (l RateLimit) refill() time.Duration {
	return time.Duration(max(l.Burst, 1)+1) * max(l.Every, time.Millisecond)
}

func (b bucket) marshal() []byte {
	out := binary.BigEndian.AppendUint64(nil, math.Float64bits(b.tokens))
	return binary.BigEndian.AppendUint64(out, uint64(b.at.UnixNano()))
}

func unmarshalBucket(v []byte) (bucket, bool) {
	if len(v) != 16 {
		return bucket{}, false
	}
	tokens := math.Float64frombits(binary.BigEndian.Uint64(v))
	if math.IsNaN(tokens) || math.IsInf(tokens, 0) {
		return bucket{}, false
	}
	return bucket{tokens: tokens, at: time.Unix(0, int64(binary.BigEndian.Uint64(v[8:])))}, true
}

// limiter keeps a token bucket per channel in the store, so that every
// notify replica sharing the store spends from the same budget and a
// restart does not hand out a fresh burst.
type limiter struct {
	st     store.Store
	limits map[string]RateLimit
	def    RateLimit

	mu sync.Mutex
	// emptyUntil holds, per channel, a time before which its bucket has no
	// token. Tokens only accrue with time (other replicas only spend them),
	// so until then the worker skips the channel's deliveries without
	// reading the store.
	emptyUntil map[string]time.Time
}

func newLimiter(st store.Store, limits map[string]RateLimit, def RateLimit) *limiter {
	return &limiter{st: st, limits: limits, def: def, emptyUntil: map[string]time.Time{}}
}

func (l *limiter) limit(channel string) RateLimit {
	if lim, ok := l.limits[channel]; ok {
		return lim
	}
	return l.def
}

// noteEmpty records that channel has no token before until.
func (l *limiter) noteEmpty(channel string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emptyUntil[channel] = until
}

// empty reports whether channel has no token at now. It reads the bucket
// without spending, so a round over a backlog the limit holds back writes
// nothing; a bucket that cannot be read is not empty (the limit is a
// courtesy, take decides).
func (l *limiter) empty(ctx context.Context, channel string, now time.Time) bool {
	lim := l.limit(channel)
	if lim.off() {
		return false
	}
	l.mu.Lock()
	until := l.emptyUntil[channel]
	l.mu.Unlock()
	if now.Before(until) {
		return true
	}
	var b bucket
	v, err := l.st.Get(ctx, rateKey(channel))
	switch {
	case err == nil:
		b, _ = unmarshalBucket(v)
	case !errors.Is(err, store.ErrNotFound):
		return false
	}
	if _, wait := lim.spend(b, now); wait > 0 {
		l.noteEmpty(channel, now.Add(wait))
		return true
	}
	return false
}

// rateKey is the bucket of one channel.
func rateKey(channel string) []byte { return []byte("notify/rate/" + store.KeyPart(channel)) }

// take spends a token of channel at now, or returns how long until one is
// available (nothing is spent then).
func (l *limiter) take(ctx context.Context, channel string, now time.Time) (time.Duration, error) {
	lim := l.limit(channel)
	if lim.off() {
		return 0, nil
	}
	key := rateKey(channel)
	var wait time.Duration
	err := l.st.Update(ctx, func(tx store.Txn) error {
		var b bucket
		v, err := tx.Get(key)
		switch {
		case err == nil:
			// An unreadable bucket is a full one: the limit is a courtesy
			// to people, not a security boundary.
			b, _ = unmarshalBucket(v)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		b, wait = lim.spend(b, now)
		return tx.Set(key, b.marshal(), lim.refill())
	})
	if err == nil && wait > 0 {
		l.noteEmpty(channel, now.Add(wait))
	}
	return wait, err
}
