package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures the Redis store.
type RedisOptions struct {
	// Addrs: one address for a standalone server, several for a cluster.
	Addrs []string
	// Username and Password, when the server requires them.
	Username, Password string
	// DB selects the database (standalone only).
	DB int
	// KeyPrefix is prepended to every key (several deployments on one server).
	KeyPrefix string
	// ScanNamespaces are the key prefixes Scan may be called with. Keys under
	// them are also kept in a sorted index (one ZSET per namespace) so that
	// scans are ordered; every other key is a plain point-read string.
	ScanNamespaces []string
	// DialTimeout, ReadTimeout and WriteTimeout bound every call (defaults
	// 2s, 1s, 1s); a call whose context has an earlier deadline ends at that
	// deadline instead.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
}

// DefaultScanNamespaces are the prefixes the Pushback services scan.
var DefaultScanNamespaces = []string{"scoring/source/", "scoring/change/", "decision/user/", "intake/event/", "intake/pending/", "intake/forward/",
	"notify/delivery/", "notify/due/", "notify/incidents/", "notify/held/"}

// Redis is the distributed store: several replicas share state through it.
// Update is an optimistic transaction (WATCH every key read, MULTI/EXEC the
// writes, retry on conflict), so read-modify-write of one user's state is
// atomic across replicas.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	ns     []string
}

// OpenRedis connects to Redis and checks the connection.
func OpenRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DialTimeout, 2*time.Second)
	def(&opts.ReadTimeout, time.Second)
	def(&opts.WriteTimeout, time.Second)
	if opts.ScanNamespaces == nil {
		opts.ScanNamespaces = DefaultScanNamespaces
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: opts.Addrs, Username: opts.Username, Password: opts.Password, DB: opts.DB,
		DialTimeout: opts.DialTimeout, ReadTimeout: opts.ReadTimeout, WriteTimeout: opts.WriteTimeout,
		// No retries, of commands or of dials (go-redis dials five times,
		// 100ms apart, by default): callers run under tight deadlines and
		// decide themselves, and a refused connection should fail a call at
		// once, not after its whole deadline.
		MaxRetries: -1, DialerRetries: 1, PoolSize: 64, MinIdleConns: 4,
		// Socket reads and writes end at the caller's deadline, not only at
		// ReadTimeout: a hung server (stopped, swapping, a black-holed
		// network) would otherwise hold a 50ms Decide for a whole second.
		ContextTimeoutEnabled: true,
	})
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis: ping %v: %w", opts.Addrs, err)
	}
	return &Redis{c: c, prefix: opts.KeyPrefix, ns: opts.ScanNamespaces}, nil
}

// rkey maps a store key to a Redis key. The part up to the fourth "/" is a
// hash tag, so every key of one entity (scoring/user/{tenant}/{user},
// decision/user/{tenant}/{user}/...) lands on one cluster slot.
func (r *Redis) rkey(key []byte) string {
	var b strings.Builder
	b.Grow(len(r.prefix) + len(key) + 2)
	b.WriteString(r.prefix)
	b.WriteByte('{')
	cut, slashes := len(key), 0
	for i, c := range key {
		if c == '/' {
			slashes++
			if slashes == 4 {
				cut = i
				break
			}
		}
	}
	b.Write(key[:cut])
	b.WriteByte('}')
	b.Write(key[cut:])
	return b.String()
}

func (r *Redis) namespace(key []byte) string {
	for _, ns := range r.ns {
		if bytes.HasPrefix(key, []byte(ns)) {
			return ns
		}
	}
	return ""
}

func (r *Redis) indexKey(ns string) string { return r.prefix + "{idx:" + ns + "}" }

// Get implements Store.
func (r *Redis) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, err := r.c.Get(ctx, r.rkey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, err
}

type redisWrite struct {
	key    []byte
	value  []byte
	ttl    time.Duration
	delete bool
}

type redisTxn struct {
	ctx     context.Context
	r       *Redis
	tx      *redis.Tx
	writes  []redisWrite
	pending map[string]int // key -> index in writes
}

func (t *redisTxn) Get(key []byte) ([]byte, error) {
	if i, ok := t.pending[string(key)]; ok {
		w := t.writes[i]
		if w.delete {
			return nil, ErrNotFound
		}
		return bytes.Clone(w.value), nil
	}
	rk := t.r.rkey(key)
	if err := t.tx.Watch(t.ctx, rk).Err(); err != nil {
		return nil, err
	}
	v, err := t.tx.Get(t.ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, err
}

func (t *redisTxn) record(w redisWrite) {
	if i, ok := t.pending[string(w.key)]; ok {
		t.writes[i] = w
		return
	}
	t.pending[string(w.key)] = len(t.writes)
	t.writes = append(t.writes, w)
}

func (t *redisTxn) Set(key, value []byte, ttl time.Duration) error {
	t.record(redisWrite{key: bytes.Clone(key), value: bytes.Clone(value), ttl: ttl})
	return nil
}

func (t *redisTxn) Delete(key []byte) error {
	t.record(redisWrite{key: bytes.Clone(key), delete: true})
	return nil
}

// Update implements Store.
func (r *Redis) Update(ctx context.Context, fn func(tx Txn) error) error {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			t := &redisTxn{ctx: ctx, r: r, tx: tx, pending: map[string]int{}}
			if err := fn(t); err != nil {
				return err
			}
			if len(t.writes) == 0 {
				return nil
			}
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for _, w := range t.writes {
					rk := r.rkey(w.key)
					ns := r.namespace(w.key)
					if w.delete {
						p.Del(ctx, rk)
						if ns != "" {
							p.ZRem(ctx, r.indexKey(ns), string(w.key))
						}
						continue
					}
					p.Set(ctx, rk, w.value, w.ttl)
					if ns != "" {
						p.ZAdd(ctx, r.indexKey(ns), redis.Z{Member: string(w.key)})
					}
				}
				return nil
			})
			return err
		})
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return ErrConflict
}

// Scan implements Store. Index entries whose key expired are skipped and
// removed.
func (r *Redis) Scan(ctx context.Context, opts ScanOptions) ([]Item, error) {
	ns := r.namespace(opts.Prefix)
	if ns == "" {
		return nil, fmt.Errorf("redis: scan prefix %q is not under a scan namespace", opts.Prefix)
	}
	idx := r.indexKey(ns)
	lo, hi := "["+string(opts.Prefix), "["+string(opts.Prefix)+"\xff"
	if opts.After != nil {
		if opts.Reverse {
			hi = "(" + string(opts.After)
		} else {
			lo = "(" + string(opts.After)
		}
	}
	var items []Item
	batch := int64(256)
	if opts.Limit > 0 && int64(opts.Limit) < batch {
		batch = int64(opts.Limit)
	}
	for {
		by := &redis.ZRangeBy{Min: lo, Max: hi, Count: batch}
		var keys []string
		var err error
		if opts.Reverse {
			keys, err = r.c.ZRevRangeByLex(ctx, idx, &redis.ZRangeBy{Min: lo, Max: hi, Count: batch}).Result()
		} else {
			keys, err = r.c.ZRangeByLex(ctx, idx, by).Result()
		}
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return items, nil
		}
		vals := make([]*redis.StringCmd, len(keys))
		_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				vals[i] = p.Get(ctx, r.rkey([]byte(k)))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		var stale []any
		for i, k := range keys {
			v, err := vals[i].Bytes()
			if errors.Is(err, redis.Nil) {
				stale = append(stale, k)
				continue
			}
			if err != nil {
				return nil, err
			}
			items = append(items, Item{Key: []byte(k), Value: v})
			if opts.Limit > 0 && len(items) >= opts.Limit {
				break
			}
		}
		if len(stale) > 0 {
			r.dropStale(ctx, idx, stale)
		}
		if opts.Limit > 0 && len(items) >= opts.Limit {
			return items, nil
		}
		last := keys[len(keys)-1]
		if opts.Reverse {
			hi = "(" + last
		} else {
			lo = "(" + last
		}
		if int64(len(keys)) < batch {
			return items, nil
		}
	}
}

// dropStale removes index entries whose keys expired, atomically with
// checking that they are still gone: a key written again between the scan's
// read and the removal keeps its entry (otherwise no scan would find it
// again). When a watched key changes, nothing is removed; a later scan
// retries.
func (r *Redis) dropStale(ctx context.Context, idx string, stale []any) {
	keys := make([]string, len(stale))
	for i, k := range stale {
		keys[i] = r.rkey([]byte(k.(string)))
	}
	_ = r.c.Watch(ctx, func(tx *redis.Tx) error {
		exists := make([]*redis.IntCmd, len(keys))
		if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				exists[i] = p.Exists(ctx, k)
			}
			return nil
		}); err != nil {
			return err
		}
		var gone []any
		for i, e := range exists {
			if e.Val() == 0 {
				gone = append(gone, stale[i])
			}
		}
		if len(gone) == 0 {
			return nil
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRem(ctx, idx, gone...)
			return nil
		})
		return err
	}, keys...)
}

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }
