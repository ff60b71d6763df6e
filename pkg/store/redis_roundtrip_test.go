package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/redis/go-redis/v9"
)

// roundTrips counts the calls a client makes to the server: one per
// command, one per pipeline. The handshake of a new connection (which the
// pool also makes in the background) is not a call.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !handshake(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select", "ping":
		return true
	}
	return false
}

// benchKeyspaces are shaped like the services' own.
func benchKeyspaces() []Keyspace {
	return []Keyspace{
		{Prefix: "user/", HashTagParts: 2},
		{Prefix: "attempt/", HashTagParts: 2, PresumeAbsent: true},
		{Prefix: "record/", HashTagParts: 2},
		{Prefix: "index/", Scannable: true, HashTagParts: 2},
	}
}

func openCounted(t testing.TB, addr string, cacheBytes int64) (*Redis, *roundTrips) {
	t.Helper()
	r, err := OpenRedis(context.Background(), RedisOptions{Addrs: []string{addr}, Keyspaces: benchKeyspaces(), CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	h := &roundTrips{}
	r.c.AddHook(h)
	return r, h
}

// updateCost runs one Update of fn on s and returns the round trips it
// made (h counts those of s).
func updateCost(t *testing.T, s *Redis, h *roundTrips, fn func(Txn) error) int64 {
	t.Helper()
	before := h.n.Load()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
	return h.n.Load() - before
}

// increment is the typical Update: read one user's state, write it back
// with a TTL.
func increment(key []byte) func(tx Txn) error {
	return func(tx Txn) error {
		n := 0
		v, err := tx.Get(key)
		switch {
		case err == nil:
			_, _ = fmt.Sscan(string(v), &n)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return tx.Set(key, fmt.Append(nil, n+1), time.Hour)
	}
}

// TestRedisUpdateRoundTrips counts what an Update costs: one round trip
// when what it reads is cached, one more per read that is not, one more
// when another replica changed what it read.
func TestRedisUpdateRoundTrips(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, ha := openCounted(t, srv.Addr, 0)
	b, _ := openCounted(t, srv.Addr, 0)
	k := []byte("user/acme/alice")
	if err := a.Update(ctx, increment(k)); err != nil { // loads the script
		t.Fatal(err)
	}
	cost := func(s *Redis, h *roundTrips, fn func(Txn) error) int64 { t.Helper(); return updateCost(t, s, h, fn) }
	for i := range 5 {
		if n := cost(a, ha, increment(k)); n != 1 {
			t.Fatalf("warm update %d: %d round trips, want 1", i, n)
		}
	}
	if n := cost(a, ha, increment([]byte("user/acme/bob"))); n != 2 {
		t.Fatalf("update of a key never read: %d round trips, want 2 (a read, the commit)", n)
	}
	if err := b.Update(ctx, increment(k)); err != nil {
		t.Fatal(err)
	}
	if n := cost(a, ha, increment(k)); n != 2 {
		t.Fatalf("update after another replica's write: %d round trips, want 2 (a refused commit, the commit)", n)
	}
	if v, err := a.Get(ctx, k); err != nil || string(v) != "8" {
		t.Fatalf("counter = %q, %v; want 8", v, err)
	}
	readOnly := func(tx Txn) error { _, err := tx.Get(k); return err }
	if n := cost(a, ha, readOnly); n != 1 {
		t.Fatalf("read-only update of a cached key: %d round trips, want 1 (the check)", n)
	}

	off, hoff := openCounted(t, srv.Addr, -1)
	for i := range 3 {
		if n := cost(off, hoff, increment(k)); n != 2 {
			t.Fatalf("update %d without a cache: %d round trips, want 2", i, n)
		}
	}
}

// TestRedisPresumedAbsentKeys: a key of a keyspace presumed absent costs no
// read of its own; when another replica wrote it, the commit's check hands
// its value back and the function runs again on it; replicas racing to
// create one key create it once.
func TestRedisPresumedAbsentKeys(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a, ha := openCounted(t, srv.Addr, 0)
	b, _ := openCounted(t, srv.Addr, 0)
	createOnce := func(key []byte, value string, saw *string) func(Txn) error {
		return func(tx Txn) error {
			*saw = ""
			v, err := tx.Get(key)
			if err == nil {
				*saw = string(v)
				return nil
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			return tx.Set(key, []byte(value), time.Hour)
		}
	}
	cost := func(s *Redis, h *roundTrips, fn func(Txn) error) int64 { t.Helper(); return updateCost(t, s, h, fn) }
	var saw string
	if err := a.Update(ctx, createOnce([]byte("attempt/acme/alice/a0"), "a", &saw)); err != nil { // loads the script
		t.Fatal(err)
	}
	if n := cost(a, ha, createOnce([]byte("attempt/acme/alice/a1"), "a", &saw)); n != 1 || saw != "" {
		t.Fatalf("create of an absent key: %d round trips, saw %q; want 1 (the commit) and nothing", n, saw)
	}
	if err := b.Update(ctx, createOnce([]byte("attempt/acme/alice/a2"), "b", &saw)); err != nil {
		t.Fatal(err)
	}
	if n := cost(a, ha, createOnce([]byte("attempt/acme/alice/a2"), "a", &saw)); n != 2 || saw != "b" {
		t.Fatalf("key another replica wrote: %d round trips, saw %q; want 2 (a refused check, the check) and b", n, saw)
	}
	if v, err := a.Get(ctx, []byte("attempt/acme/alice/a2")); err != nil || string(v) != "b" {
		t.Fatalf("attempt/acme/alice/a2 = %q, %v; want b", v, err)
	}
	// A transaction that only reads sees the other replica's key too.
	if err := b.Update(ctx, createOnce([]byte("attempt/acme/alice/a3"), "b", &saw)); err != nil {
		t.Fatal(err)
	}
	readOnly := func(tx Txn) error {
		v, err := tx.Get([]byte("attempt/acme/alice/a3"))
		saw = string(v)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if n := cost(a, ha, readOnly); n != 2 || saw != "b" {
		t.Fatalf("read-only transaction over a key another replica wrote: %d round trips, saw %q; want 2 and b", n, saw)
	}
	// Without a cache, the value a refused check hands back is what the
	// next run reads: the key is not presumed absent again.
	off, hoff := openCounted(t, srv.Addr, -1)
	if err := b.Update(ctx, createOnce([]byte("attempt/acme/alice/a4"), "b", &saw)); err != nil {
		t.Fatal(err)
	}
	if n := cost(off, hoff, createOnce([]byte("attempt/acme/alice/a4"), "off", &saw)); n != 2 || saw != "b" {
		t.Fatalf("without a cache, a key another replica wrote: %d round trips, saw %q; want 2 and b", n, saw)
	}
	// Replicas racing to create one key: one creates it, every other
	// transaction sees its value.
	key := []byte("attempt/acme/bob/x")
	var wg sync.WaitGroup
	var created atomic.Int64
	seen := make([]string, 32)
	for i := range seen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := []*Redis{a, b}[i%2].Update(ctx, createOnce(key, fmt.Sprint(i), &seen[i])); err != nil {
				t.Error(err)
			} else if seen[i] == "" {
				created.Add(1)
			}
		}()
	}
	wg.Wait()
	v, err := b.Get(ctx, key)
	if err != nil || created.Load() != 1 {
		t.Fatalf("%d transactions created the key (%q, %v), want 1", created.Load(), v, err)
	}
	for i, s := range seen {
		if s != "" && s != string(v) {
			t.Fatalf("transaction %d saw %q, the store holds %q", i, s, v)
		}
	}
}

// BenchmarkRedisUpdate prices Updates against a local redis-server:
//
//	counter: read one key, write it back with a TTL (a user's state)
//	decision: read two keys (one absent), write four, one indexed
func BenchmarkRedisUpdate(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	const users = 256
	for _, cache := range []struct {
		name  string
		bytes int64
	}{{"cached", 0}, {"uncached", -1}} {
		r, h := openCounted(b, srv.Addr, cache.bytes)
		b.Run("counter/"+cache.name, func(b *testing.B) {
			start := h.n.Load()
			i := 0
			for b.Loop() {
				if err := r.Update(ctx, increment(fmt.Appendf(nil, "user/acme/u%d", i%users))); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(h.n.Load()-start)/float64(i), "roundtrips/op")
		})
		b.Run("decision/"+cache.name, func(b *testing.B) {
			start := h.n.Load()
			state := make([]byte, 512)
			i := 0
			for b.Loop() {
				u := fmt.Sprintf("%s/u%d", cache.name, i%users)
				err := r.Update(ctx, func(tx Txn) error {
					if _, err := tx.Get([]byte("attempt/" + u + fmt.Sprintf("/a%d", i))); !errors.Is(err, ErrNotFound) {
						return fmt.Errorf("attempt: %w", err)
					}
					if _, err := tx.Get([]byte("user/" + u)); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					id := fmt.Sprintf("%020d", i)
					for _, w := range []struct {
						key string
						v   []byte
					}{{"user/" + u, state}, {"attempt/" + u + fmt.Sprintf("/a%d", i), []byte(id)}, {"record/" + id, state}, {"index/" + u + "/" + id, []byte(id)}} {
						if err := tx.Set([]byte(w.key), w.v, time.Hour); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(h.n.Load()-start)/float64(i), "roundtrips/op")
		})
	}
}
