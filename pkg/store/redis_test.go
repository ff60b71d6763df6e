package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
	"github.com/pushbackhq/pushback/pkg/store/redistest"
	"github.com/pushbackhq/pushback/pkg/store/storetest"
)

func TestRedisConformance(t *testing.T) {
	srv := redistest.Start(t)
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T, ks []store.Keyspace) store.Store {
		s, err := store.OpenRedis(context.Background(), store.RedisOptions{
			Addrs:     []string{srv.Addr},
			KeyPrefix: fmt.Sprintf("t%d:", n.Add(1)),
			Keyspaces: ks,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestOpenRedisRefuses(t *testing.T) {
	srv := redistest.Start(t)
	for name, opts := range map[string]store.RedisOptions{
		"no keyspace":      {Addrs: []string{srv.Addr}},
		"nested keyspaces": {Addrs: []string{srv.Addr}, Keyspaces: []store.Keyspace{{Prefix: "a/"}, {Prefix: "a/b/"}}},
		"a cluster":        {Addrs: []string{srv.Addr, srv.Addr}, Keyspaces: storetest.Keyspaces()},
	} {
		if s, err := store.OpenRedis(context.Background(), opts); err == nil {
			_ = s.Close()
			t.Errorf("OpenRedis with %s succeeded", name)
		}
	}
}

// TestRedisReplicasSeeEachOthersWrites plays two replicas on one Redis:
// each remembers the values it read and wrote, and the other changes them
// behind its back. Every transaction still decides on current values: its
// writes, its error and its reads alike.
func TestRedisReplicasSeeEachOthersWrites(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	open := func() store.Store {
		s, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: storetest.Keyspaces()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	k := []byte("ctr/n")
	set := func(s store.Store, v string) {
		t.Helper()
		if err := s.Update(ctx, func(tx store.Txn) error { return tx.Set(k, []byte(v), 0) }); err != nil {
			t.Fatal(err)
		}
	}
	read := func(s store.Store) (v string, calls int) {
		t.Helper()
		err := s.Update(ctx, func(tx store.Txn) error {
			calls++
			b, err := tx.Get(k)
			v = string(b)
			if errors.Is(err, store.ErrNotFound) {
				v = "absent"
				return nil
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return v, calls
	}

	set(a, "1") // a remembers 1
	set(b, "2")
	if v, _ := read(a); v != "2" {
		t.Fatalf("a read-only transaction on a replica read %q, want the other replica's 2", v)
	}

	// A decision taken on a remembered value that another replica changed
	// is taken again.
	set(b, "3")
	stale := errors.New("refused on 2")
	calls := 0
	err := a.Update(ctx, func(tx store.Txn) error {
		calls++
		v, err := tx.Get(k)
		if err != nil {
			return err
		}
		if string(v) == "2" {
			return stale
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("an error decided on a stale value: %v after %d calls; want nil after 2", err, calls)
	}

	// A remembered absence.
	if err := b.Update(ctx, func(tx store.Txn) error { return tx.Delete(k) }); err != nil {
		t.Fatal(err)
	}
	if v, _ := read(a); v != "absent" {
		t.Fatalf("read %q after the other replica deleted the key", v)
	}
	set(b, "4")
	if err := a.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get(k)
		if err == nil {
			return tx.Set(k, append(v, '+'), 0)
		}
		if errors.Is(err, store.ErrNotFound) {
			return tx.Set(k, []byte("new"), 0)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, k); err != nil || string(v) != "4+" {
		t.Fatalf("after a write on a remembered absence: %q, %v; want 4+", v, err)
	}
}

// TestRedisReplicasIncrementAtomically: several replicas, each with its own
// cache, add to one counter at once; none of the additions is lost.
func TestRedisReplicasIncrementAtomically(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	const replicas, workers, each = 3, 4, 20
	var wg sync.WaitGroup
	k := []byte("ctr/n")
	var stores []store.Store
	for range replicas {
		s, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: storetest.Keyspaces()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	for _, s := range stores {
		for range workers {
			wg.Go(func() {
				for range each {
					err := s.Update(ctx, func(tx store.Txn) error {
						n := 0
						v, err := tx.Get(k)
						if err == nil {
							_, _ = fmt.Sscan(string(v), &n)
						} else if !errors.Is(err, store.ErrNotFound) {
							return err
						}
						return tx.Set(k, []byte(fmt.Sprint(n+1)), time.Hour)
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if v, err := stores[0].Get(ctx, k); err != nil || string(v) != fmt.Sprint(replicas*workers*each) {
		t.Fatalf("counter = %q, %v; want %d", v, err, replicas*workers*each)
	}
}

// TestRedisRememberedValueThatExpired: a replica remembers a value whose
// TTL it never knew (another replica wrote it); once Redis expired it, a
// transaction sees it absent.
func TestRedisRememberedValueThatExpired(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	open := func() store.Store {
		s, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: storetest.Keyspaces()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	k := []byte("ttl/a")
	if err := b.Update(ctx, func(tx store.Txn) error { return tx.Set(k, []byte("x"), 200*time.Millisecond) }); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, k); err != nil { // a remembers x, with no expiry
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Get(ctx, k); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key with a 200ms TTL still present after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var seen []string
	err := a.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get(k)
		if errors.Is(err, store.ErrNotFound) {
			seen = append(seen, "absent")
			return tx.Set(k, []byte("fresh"), 0)
		}
		seen = append(seen, string(v))
		return tx.Set(k, append(v, '+'), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, k); err != nil || string(v) != "fresh" {
		t.Fatalf("after the update = %q, %v (runs saw %v); want fresh", v, err, seen)
	}
}

// TestRedisScriptFlushed: a server that lost its scripts (a restart, SCRIPT
// FLUSH) is sent the script again.
func TestRedisScriptFlushed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{srv.Addr}, Keyspaces: storetest.Keyspaces()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	set := func(v string) error {
		return s.Update(ctx, func(tx store.Txn) error { return tx.Set([]byte("plain/a"), []byte(v), 0) })
	}
	if err := set("1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pooled connections died with the server; the first calls may
	// fail on them.
	deadline := time.Now().Add(5 * time.Second)
	for set("2") != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no update succeeded after the restart: %v", set("2"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v, err := s.Get(ctx, []byte("plain/a")); err != nil || string(v) != "2" {
		t.Fatalf("after the restart = %q, %v", v, err)
	}
}
