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
	// Addrs is the address of one Redis primary (standalone, or replicated
	// with its replicas on standby). Redis Cluster is not supported: a
	// transaction writes keys of several hash slots (an entity and the
	// index of its keyspace), which a cluster cannot do atomically.
	Addrs []string
	// Username and Password, when the server requires them.
	Username, Password string
	// DB selects the database.
	DB int
	// KeyPrefix is prepended to every key (several deployments on one server).
	KeyPrefix string
	// Keyspaces are the declarations of the services that use the store
	// (at least one). Keys of scannable keyspaces are also kept in a sorted
	// index (one ZSET per keyspace) so that scans are ordered; every other
	// key is a plain point-read string. A key outside them is refused.
	Keyspaces []Keyspace
	// CacheBytes bounds the values an Update remembers to skip reads
	// (default 16 MiB; negative: none, every Update reads what it reads).
	CacheBytes int64
	// DialTimeout, ReadTimeout and WriteTimeout bound every call (defaults
	// 2s, 1s, 1s); a call whose context has an earlier deadline ends at that
	// deadline instead.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
}

// DefaultRedisCacheBytes is RedisOptions.CacheBytes when unset.
const DefaultRedisCacheBytes = 16 << 20

// Redis is the distributed store: several replicas share state through it.
//
// Update is an optimistic transaction checked by the server in one round
// trip. The function's reads are served from a per-process cache of values
// recently read or written (a miss reads the server); the commit is one Lua
// script that checks that every key read still holds what the transaction
// saw (the same value, or still absent) and, only then, applies every
// write and index change. On a mismatch the script returns the current
// values of the keys that differ, the cache takes them and the function runs
// again. The check, not the cache, makes the transaction serialisable: it
// runs as if at the script's instant, whatever other replicas wrote before.
// An Update whose reads are all cached costs one round trip. A key of a
// keyspace declared PresumeAbsent is read as absent without a round trip,
// and checked in the same way.
type Redis struct {
	c      *redis.Client
	prefix string
	ks     Keyspaces
	cache  *valueCache
	commit *redis.Script
}

// OpenRedis connects to Redis and checks the connection.
func OpenRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	switch len(opts.Addrs) {
	case 0:
		return nil, errors.New("redis: no address")
	case 1:
	default:
		return nil, errors.New("redis: give one address (a standalone or replicated primary); Redis Cluster is not supported")
	}
	ks, err := NewKeyspaces(opts.Keyspaces...)
	if err != nil {
		return nil, err
	}
	if ks.Len() == 0 {
		return nil, errors.New("redis: no keyspace declared")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DialTimeout, 2*time.Second)
	def(&opts.ReadTimeout, time.Second)
	def(&opts.WriteTimeout, time.Second)
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultRedisCacheBytes
	}
	c := redis.NewClient(&redis.Options{
		Addr: opts.Addrs[0], Username: opts.Username, Password: opts.Password, DB: opts.DB,
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
	return &Redis{c: c, prefix: opts.KeyPrefix, ks: ks, cache: newValueCache(opts.CacheBytes), commit: redis.NewScript(commitScript)}, nil
}

// rkey maps a store key of keyspace k to a Redis key: the key prefix, then
// the key with its hash tag (the keyspace's prefix and its HashTagParts
// parts) in braces, so the keys of one entity share a slot.
func (r *Redis) rkey(k Keyspace, key []byte) string {
	cut := k.hashTagEnd(key)
	var b strings.Builder
	b.Grow(len(r.prefix) + len(key) + 2)
	b.WriteString(r.prefix)
	b.WriteByte('{')
	b.Write(key[:cut])
	b.WriteByte('}')
	b.Write(key[cut:])
	return b.String()
}

func (r *Redis) indexKey(k Keyspace) string { return r.prefix + "{idx:" + k.Prefix + "}" }

// Get implements Store. It reads the server, never the cache.
func (r *Redis) Get(ctx context.Context, key []byte) ([]byte, error) {
	k, err := r.ks.check(key)
	if err != nil {
		return nil, err
	}
	v, err := r.c.Get(ctx, r.rkey(k, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		r.cache.put(string(key), nil, false, time.Time{})
		return nil, ErrNotFound
	}
	if err == nil {
		r.cache.put(string(key), bytes.Clone(v), true, time.Time{})
	}
	return v, err
}

type redisWrite struct {
	key    []byte
	ks     Keyspace
	value  []byte
	ttl    time.Duration
	delete bool
}

// redisRead is what a transaction saw of a key.
type redisRead struct {
	ks    Keyspace
	value []byte
	found bool
}

type redisTxn struct {
	ctx     context.Context
	r       *Redis
	reads   map[string]redisRead
	order   []string // keys of reads, in the order read
	cached  bool     // some read came from the cache: unverified until the script runs
	failed  error    // the store failed a read
	writes  []redisWrite
	pending map[string]int // key -> index in writes
	// learned holds the values a refused commit handed back, for the
	// next run of the function: it reads them whatever the cache keeps
	// (a key presumed absent would otherwise be presumed absent again).
	learned map[string]redisRead
}

func (t *redisTxn) Get(key []byte) ([]byte, error) {
	k, err := t.r.ks.check(key)
	if err != nil {
		return nil, err
	}
	if i, ok := t.pending[string(key)]; ok {
		w := t.writes[i]
		if w.delete {
			return nil, ErrNotFound
		}
		return bytes.Clone(w.value), nil
	}
	rd, ok := t.reads[string(key)]
	if !ok {
		if l, seen := t.learned[string(key)]; seen {
			// Handed back by the last refused commit: checked again
			// by this one.
			rd = redisRead{ks: k, value: l.value, found: l.found}
			t.cached = true
		} else if e, hit := t.r.cache.get(string(key), time.Now()); hit {
			rd = redisRead{ks: k, value: e.value, found: e.found}
			t.cached = true
		} else if k.PresumeAbsent {
			// Unverified, as a cached value is: the commit's check
			// confirms the key is absent, or hands back its value.
			rd = redisRead{ks: k}
			t.cached = true
		} else {
			v, err := t.r.c.Get(t.ctx, t.r.rkey(k, key)).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
				rd = redisRead{ks: k}
			case err != nil:
				t.failed = err
				return nil, err
			default:
				rd = redisRead{ks: k, value: v, found: true}
			}
			t.r.cache.put(string(key), rd.value, rd.found, time.Time{})
		}
		t.reads[string(key)] = rd
		t.order = append(t.order, string(key))
	}
	if !rd.found {
		return nil, ErrNotFound
	}
	return bytes.Clone(rd.value), nil
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
	k, err := t.r.ks.check(key)
	if err != nil {
		return err
	}
	t.record(redisWrite{key: bytes.Clone(key), ks: k, value: bytes.Clone(value), ttl: ttl})
	return nil
}

func (t *redisTxn) Delete(key []byte) error {
	k, err := t.r.ks.check(key)
	if err != nil {
		return err
	}
	t.record(redisWrite{key: bytes.Clone(key), ks: k, delete: true})
	return nil
}

// Update implements Store.
//
// fn's outcome is returned only once every value it read is known to be
// current at one instant. A transaction that wrote commits through the
// script's check. One that read from the cache but wrote nothing or
// returned an error is checked by the same script, with no writes: a value
// remembered from before another replica's write must not decide. One that
// read only from the server and wrote nothing or returned an error returns
// at once, as a sequence of Gets would.
func (r *Redis) Update(ctx context.Context, fn func(tx Txn) error) error {
	learned := map[string]redisRead{}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t := &redisTxn{ctx: ctx, r: r, reads: map[string]redisRead{}, pending: map[string]int{}, learned: learned}
		ferr := fn(t)
		if t.failed != nil {
			// A read the store failed: fn's writes may rest on what it
			// did instead, and are not committed.
			if ferr == nil {
				ferr = t.failed
			}
			return ferr
		}
		if errors.Is(ferr, ErrKeyspace) {
			return ferr
		}
		if ferr != nil || len(t.writes) == 0 {
			if !t.cached {
				return ferr
			}
			t.writes = nil
		}
		ok, err := r.run(ctx, t)
		if err != nil {
			return err
		}
		if ok {
			return ferr
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
	return ErrConflict
}

// commitScript checks the reads of a transaction and applies its writes.
//
//	KEYS: the keys read, then the keys written, then the indexes written
//	ARGV: nreads, nwrites; per read: "1" and the value seen, or "0" and
//	      "" for a key seen absent;
//	      per write: "s" or "d", value, ttl in ms (0: none),
//	      KEYS position of its index (0: none), index member
//
// It returns nothing when it applied the writes, otherwise position and
// current value (nil when absent) of every read key that changed, having
// written nothing. Every check precedes the first write, and Redis decides
// on memory at a script's first write and lets the later ones through, so
// a script that changes anything changes everything (short of an index key
// that something else turned into another type).
const commitScript = `
local nr, nw = tonumber(ARGV[1]), tonumber(ARGV[2])
local changed = {}
for i = 1, nr do
  local v = redis.call('GET', KEYS[i])
  local same
  if v then same = ARGV[1 + 2 * i] == '1' and ARGV[2 + 2 * i] == v else same = ARGV[1 + 2 * i] == '0' end
  if not same then
    changed[#changed + 1] = i
    changed[#changed + 1] = v
  end
end
if #changed > 0 then return changed end
local a = 3 + 2 * nr
for j = 1, nw do
  local k, ix = KEYS[nr + j], tonumber(ARGV[a + 3])
  if ARGV[a] == 'd' then
    redis.call('DEL', k)
    if ix > 0 then redis.call('ZREM', KEYS[ix], ARGV[a + 4]) end
  else
    local px = tonumber(ARGV[a + 2])
    if px > 0 then redis.call('SET', k, ARGV[a + 1], 'PX', px) else redis.call('SET', k, ARGV[a + 1]) end
    if ix > 0 then redis.call('ZADD', KEYS[ix], 0, ARGV[a + 4]) end
  end
  a = a + 5
end
return changed
`

// run runs the commit script for t: true when it committed (or, with no
// writes, when every read was current). On a mismatch the cache takes the
// current values. On an error the outcome is unknown, and the cache forgets
// every key t touched.
func (r *Redis) run(ctx context.Context, t *redisTxn) (bool, error) {
	keys := make([]string, 0, len(t.order)+2*len(t.writes))
	args := make([]any, 0, 2+2*len(t.order)+5*len(t.writes))
	args = append(args, len(t.order), len(t.writes))
	for _, key := range t.order {
		rd := t.reads[key]
		keys = append(keys, r.rkey(rd.ks, []byte(key)))
		if rd.found {
			args = append(args, "1", rd.value)
		} else {
			args = append(args, "0", "")
		}
	}
	for _, w := range t.writes {
		keys = append(keys, r.rkey(w.ks, w.key))
	}
	var idx map[string]int
	for _, w := range t.writes {
		op, px := "s", int64(0)
		if w.delete {
			op = "d"
		} else if w.ttl > 0 {
			px = max(w.ttl.Milliseconds(), 1)
		}
		pos := 0
		if w.ks.Scannable {
			ik := r.indexKey(w.ks)
			if pos = idx[ik]; pos == 0 {
				keys = append(keys, ik)
				pos = len(keys)
				if idx == nil {
					idx = map[string]int{}
				}
				idx[ik] = pos
			}
		}
		args = append(args, op, w.value, px, pos, w.key)
	}
	res, err := r.commit.Run(ctx, r.c, keys, args...).Slice()
	if err != nil {
		for _, key := range t.order {
			r.cache.forget(key)
		}
		for _, w := range t.writes {
			r.cache.forget(string(w.key))
		}
		return false, err
	}
	if len(res) == 0 {
		now := time.Now()
		for _, w := range t.writes {
			var exp time.Time
			if w.ttl > 0 {
				exp = now.Add(w.ttl)
			}
			r.cache.put(string(w.key), w.value, !w.delete, exp)
		}
		return true, nil
	}
	for i := 0; i+1 < len(res); i += 2 {
		pos, ok := res[i].(int64)
		if !ok || pos < 1 || int(pos) > len(t.order) {
			return false, fmt.Errorf("redis: commit script answered %v", res)
		}
		key := t.order[pos-1]
		switch v := res[i+1].(type) {
		case nil:
			r.cache.put(key, nil, false, time.Time{})
			t.learned[key] = redisRead{}
		case string:
			r.cache.put(key, []byte(v), true, time.Time{})
			t.learned[key] = redisRead{value: []byte(v), found: true}
		default:
			return false, fmt.Errorf("redis: commit script answered %T", v)
		}
	}
	return false, nil
}

// Scan implements Store. Index entries whose key expired are skipped and
// removed.
func (r *Redis) Scan(ctx context.Context, opts ScanOptions) ([]Item, error) {
	ks, err := r.ks.checkScan(opts.Prefix)
	if err != nil {
		return nil, err
	}
	idx := r.indexKey(ks)
	lo, hi := "["+string(opts.Prefix), "+"
	if end := PrefixEnd(opts.Prefix); end != nil {
		hi = "(" + string(end)
	}
	// A cursor outside the prefix skips nothing: the index holds the whole
	// keyspace, and the range must not leave the prefix.
	if opts.After != nil {
		end := PrefixEnd(opts.Prefix)
		if opts.Reverse && (end == nil || bytes.Compare(opts.After, end) < 0) {
			hi = "(" + string(opts.After)
		} else if !opts.Reverse && bytes.Compare(opts.After, opts.Prefix) >= 0 {
			lo = "(" + string(opts.After)
		}
	}
	var items []Item
	batch := int64(256)
	if opts.Limit > 0 && int64(opts.Limit) < batch {
		batch = int64(opts.Limit)
	}
	for {
		args := redis.ZRangeArgs{Key: idx, Start: lo, Stop: hi, ByLex: true, Count: batch}
		if opts.Reverse {
			args.Start, args.Stop, args.Rev = hi, lo, true
		}
		keys, err := r.c.ZRangeArgs(ctx, args).Result()
		if err != nil {
			return nil, err
		}
		if len(keys) == 0 {
			return items, nil
		}
		vals := make([]*redis.StringCmd, len(keys))
		_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				vals[i] = p.Get(ctx, r.rkey(ks, []byte(k)))
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
			r.dropStale(ctx, ks, stale)
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
func (r *Redis) dropStale(ctx context.Context, ks Keyspace, stale []any) {
	idx := r.indexKey(ks)
	keys := make([]string, len(stale))
	for i, k := range stale {
		keys[i] = r.rkey(ks, []byte(k.(string)))
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
