// Package storetest is the conformance suite every store.Store implementation
// must pass.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushbackhq/pushback/pkg/store"
)

// Keyspaces are the declarations of the keys the suite uses; a store under
// test is opened with them.
func Keyspaces() []store.Keyspace {
	ks := []store.Keyspace{
		{Prefix: "missing/"}, {Prefix: "sgd/"}, {Prefix: "ryw/"}, {Prefix: "fail/"}, {Prefix: "ctr/"}, {Prefix: "retry/"},
		{Prefix: "plain/", HashTagParts: 1},
		{Prefix: "presumed/", PresumeAbsent: true},
		{Prefix: "ttl/", Scannable: true},
	}
	for _, p := range []string{"scan/", "scam/", "scao/", "scaz/"} {
		ks = append(ks, store.Keyspace{Prefix: p, Scannable: true})
	}
	return ks
}

// Run exercises the stores newStore returns, opened with Keyspaces.
func Run(t *testing.T, open func(t *testing.T, ks []store.Keyspace) store.Store) {
	ctx := context.Background()
	newStore := func(t *testing.T) store.Store { return open(t, Keyspaces()) }
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, []byte("missing/key")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing = %v, want ErrNotFound", err)
		}
	})
	t.Run("SetGetDelete", func(t *testing.T) {
		s := newStore(t)
		k := []byte("sgd/a")
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Set(k, []byte("v1"), 0) })
		got, err := s.Get(ctx, k)
		if err != nil || string(got) != "v1" {
			t.Fatalf("Get = %q, %v", got, err)
		}
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Delete(k) })
		if _, err := s.Get(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete Get = %v", err)
		}
	})
	t.Run("ReadYourWritesInTxn", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error {
			if err := tx.Set([]byte("ryw/a"), []byte("x"), 0); err != nil {
				return err
			}
			v, err := tx.Get([]byte("ryw/a"))
			if err != nil || string(v) != "x" {
				return fmt.Errorf("in-txn Get = %q, %v", v, err)
			}
			return nil
		})
	})
	t.Run("FailedTxnWritesNothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx store.Txn) error {
			if err := tx.Set([]byte("fail/a"), []byte("x"), 0); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v, want boom", err)
		}
		if _, err := s.Get(ctx, []byte("fail/a")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("half-written txn: Get = %v", err)
		}
	})
	t.Run("TTLExpires", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error {
			if err := tx.Set([]byte("ttl/a"), []byte("x"), time.Second); err != nil {
				return err
			}
			return tx.Set([]byte("ttl/b"), []byte("y"), 0)
		})
		if _, err := s.Get(ctx, []byte("ttl/a")); err != nil {
			t.Fatalf("fresh key: %v", err)
		}
		if got := fmt.Sprint(keys(t, s, store.ScanOptions{Prefix: []byte("ttl/")})); got != "[ttl/a ttl/b]" {
			t.Fatalf("scan before expiry = %v", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := s.Get(ctx, []byte("ttl/a"))
			if errors.Is(err, store.ErrNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key with 1s TTL still present after 5s: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Expired keys are gone from transactions and scans too, and
		// can be written again.
		mustUpdate(t, s, func(tx store.Txn) error {
			if v, err := tx.Get([]byte("ttl/a")); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("expired key in a transaction: %q, %v", v, err)
			}
			return nil
		})
		for _, reverse := range []bool{false, true} {
			if got := fmt.Sprint(keys(t, s, store.ScanOptions{Prefix: []byte("ttl/"), Reverse: reverse})); got != "[ttl/b]" {
				t.Fatalf("scan (reverse %v) after expiry = %v, want [ttl/b]", reverse, got)
			}
		}
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Set([]byte("ttl/a"), []byte("again"), 0) })
		if got := fmt.Sprint(keys(t, s, store.ScanOptions{Prefix: []byte("ttl/")})); got != "[ttl/a ttl/b]" {
			t.Fatalf("scan after writing the expired key again = %v", got)
		}
	})
	t.Run("ScanOrderPrefixCursorReverse", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error {
			for _, k := range []string{"scan/b", "scan/a", "scan/c", "scam/x", "scao/y"} {
				if err := tx.Set([]byte(k), []byte(k), 0); err != nil {
					return err
				}
			}
			return nil
		})
		cases := []struct {
			name string
			opts store.ScanOptions
			want string
		}{
			{"forward", store.ScanOptions{Prefix: []byte("scan/")}, "[scan/a scan/b scan/c]"},
			{"after a, limit 1", store.ScanOptions{Prefix: []byte("scan/"), After: []byte("scan/a"), Limit: 1}, "[scan/b]"},
			{"reverse", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true}, "[scan/c scan/b scan/a]"},
			{"reverse after c", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true, After: []byte("scan/c")}, "[scan/b scan/a]"},
			{"reverse after c, limit 1", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true, After: []byte("scan/c"), Limit: 1}, "[scan/b]"},
			{"reverse after a", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true, After: []byte("scan/a")}, "[]"},
			{"reverse after an absent key", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true, After: []byte("scan/bb")}, "[scan/b scan/a]"},
			{"reverse after a key past the range", store.ScanOptions{Prefix: []byte("scan/"), Reverse: true, After: []byte("scan/z")}, "[scan/c scan/b scan/a]"},
			{"after an absent key", store.ScanOptions{Prefix: []byte("scan/"), After: []byte("scan/bb")}, "[scan/c]"},
			{"after c", store.ScanOptions{Prefix: []byte("scan/"), After: []byte("scan/c")}, "[]"},
			{"narrower prefix", store.ScanOptions{Prefix: []byte("scan/b")}, "[scan/b]"},
			{"no match", store.ScanOptions{Prefix: []byte("scaz/")}, "[]"},
		}
		for _, tc := range cases {
			if got := fmt.Sprint(keys(t, s, tc.opts)); got != tc.want {
				t.Errorf("%s: scan = %v, want %v", tc.name, got, tc.want)
			}
		}
	})
	t.Run("ConflictRunsFnAgainOnFreshValues", func(t *testing.T) {
		s := newStore(t)
		k, side := []byte("retry/n"), []byte("retry/side")
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Set(k, []byte("1"), 0) })
		var seen []string
		calls := 0
		mustUpdate(t, s, func(tx store.Txn) error {
			calls++
			v, err := tx.Get(k)
			if err != nil {
				return err
			}
			seen = append(seen, string(v))
			if calls == 1 {
				// Only the first run writes side; a concurrent writer
				// changes k under it, so this run must not commit.
				if err := tx.Set(side, []byte("leak"), 0); err != nil {
					return err
				}
				if err := s.Update(ctx, func(tx store.Txn) error { return tx.Set(k, []byte("10"), 0) }); err != nil {
					return err
				}
			}
			return tx.Set(k, append(v, '+'), 0)
		})
		if got := fmt.Sprint(seen); calls != 2 || got != "[1 10]" {
			t.Fatalf("fn ran %d times and saw %v; want twice, the second time the concurrent write: [1 10]", calls, got)
		}
		if v, err := s.Get(ctx, k); err != nil || string(v) != "10+" {
			t.Fatalf("after the retry = %q, %v; want 10+", v, err)
		}
		if v, err := s.Get(ctx, side); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a write of the conflicting run leaked: %q, %v", v, err)
		}
	})
	t.Run("KeyspacesAreEnforced", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx store.Txn) error { return tx.Set([]byte("plain/a"), []byte("x"), 0) })
		for _, p := range []string{"plain/", "plain/a", "nowhere/", "sca", ""} {
			if items, err := s.Scan(ctx, store.ScanOptions{Prefix: []byte(p)}); !errors.Is(err, store.ErrKeyspace) {
				t.Errorf("scan of %q outside every scannable keyspace = %v, %v; want ErrKeyspace", p, items, err)
			}
		}
		if _, err := s.Get(ctx, []byte("nowhere/a")); !errors.Is(err, store.ErrKeyspace) {
			t.Errorf("Get outside every keyspace = %v, want ErrKeyspace", err)
		}
		for name, write := range map[string]func(tx store.Txn) error{
			"set":    func(tx store.Txn) error { return tx.Set([]byte("nowhere/a"), []byte("x"), 0) },
			"delete": func(tx store.Txn) error { return tx.Delete([]byte("nowhere/a")) },
			"get":    func(tx store.Txn) error { _, err := tx.Get([]byte("nowhere/a")); return err },
		} {
			err := s.Update(ctx, func(tx store.Txn) error {
				if err := tx.Set([]byte("plain/b"), []byte("x"), 0); err != nil {
					return err
				}
				return write(tx)
			})
			if !errors.Is(err, store.ErrKeyspace) {
				t.Errorf("%s outside every keyspace in a transaction = %v, want ErrKeyspace", name, err)
			}
		}
		if _, err := s.Get(ctx, []byte("plain/b")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a transaction that went outside the keyspaces wrote: %v", err)
		}
	})
	t.Run("PresumedAbsentKeysAreRead", func(t *testing.T) {
		// A keyspace whose keys are presumed absent still reads what is
		// there, inside transactions that write and that do not.
		s := newStore(t)
		k := []byte("presumed/a")
		mustUpdate(t, s, func(tx store.Txn) error {
			if _, err := tx.Get(k); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("absent key: %w", err)
			}
			return tx.Set(k, []byte("first"), 0)
		})
		var seen []byte
		mustUpdate(t, s, func(tx store.Txn) error {
			v, err := tx.Get(k)
			seen = v
			return err
		})
		if string(seen) != "first" {
			t.Fatalf("read-only transaction saw %q, want first", seen)
		}
		err := s.Update(ctx, func(tx store.Txn) error {
			if _, err := tx.Get(k); err == nil {
				return errExists
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return tx.Set(k, []byte("second"), 0)
		})
		if !errors.Is(err, errExists) {
			t.Fatalf("create-if-absent over an existing key = %v, want errExists", err)
		}
		if v, err := s.Get(ctx, k); err != nil || string(v) != "first" {
			t.Fatalf("key = %q, %v; want first", v, err)
		}
	})
	t.Run("ConcurrentCreateOfPresumedAbsentKey", func(t *testing.T) {
		s := newStore(t)
		creators := concurrentCreates(t, s, []byte("presumed/once"), 16)
		if creators != 1 {
			t.Fatalf("%d transactions created the key, want 1", creators)
		}
	})
	t.Run("ConcurrentIncrementsAreAtomic", func(t *testing.T) {
		s := newStore(t)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					err := s.Update(ctx, func(tx store.Txn) error {
						n := 0
						v, err := tx.Get([]byte("ctr/n"))
						if err == nil {
							_, _ = fmt.Sscan(string(v), &n)
						} else if !errors.Is(err, store.ErrNotFound) {
							return err
						}
						return tx.Set([]byte("ctr/n"), []byte(fmt.Sprint(n+1)), 0)
					})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		v, err := s.Get(ctx, []byte("ctr/n"))
		if err != nil || string(v) != fmt.Sprint(workers*each) {
			t.Fatalf("counter = %q, %v; want %d", v, err, workers*each)
		}
	})
}

var errExists = errors.New("storetest: key exists")

// concurrentCreates runs n transactions at once, spread over stores, each
// creating key with its own value unless it is there; it returns how many
// created it, and fails t unless every other one saw the value stored.
func concurrentCreates(t *testing.T, s store.Store, key []byte, n int, more ...store.Store) int {
	t.Helper()
	stores := append([]store.Store{s}, more...)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		created  int
		observed []string
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := fmt.Sprintf("v%d", i)
			var saw string
			err := stores[i%len(stores)].Update(context.Background(), func(tx store.Txn) error {
				saw = ""
				v, err := tx.Get(key)
				if err == nil {
					saw = string(v)
					return nil
				}
				if !errors.Is(err, store.ErrNotFound) {
					return err
				}
				return tx.Set(key, []byte(mine), 0)
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if saw == "" {
				created++
			} else {
				observed = append(observed, saw)
			}
		}()
	}
	wg.Wait()
	v, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("after the creates: %v", err)
	}
	for _, o := range observed {
		if o != string(v) {
			t.Errorf("a transaction saw %q, the store holds %q", o, v)
		}
	}
	return created
}

func mustUpdate(t *testing.T, s store.Store, fn func(tx store.Txn) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func keys(t *testing.T, s store.Store, opts store.ScanOptions) []string {
	t.Helper()
	items, err := s.Scan(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = string(it.Key)
	}
	return out
}
